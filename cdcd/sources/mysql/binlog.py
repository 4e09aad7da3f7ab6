"""The binlog replication protocol, read directly: raw events off the socket.

python-mysql-replication wraps every event in several Python objects before any byte of
it is looked at; on a stream of small transactions that framing, not the rows, was most
of cdcd's time. Here pymysql still does the handshake (authentication, TLS), and this
module sends the dump command itself and cuts the socket's bytes into events with one
buffered read per packet. Events are handed on as the packet's payload (``bytes``: the
OK byte, then the 19-byte v4 event header at offset 1, then the event).

The library is still used, on raw bytes, for the rare events whose layout is intricate:
TABLE_MAP (column types, metadata and optional metadata) and, for tables the fast row
decoder does not handle, rows events (see ``library_event``).

MariaDB is asked for a file/position start with the plain dump command (the library
always asks MariaDB for the first binlog when it has no GTID to start from).
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import pymysql
from pymysql.protocol import MysqlPacket
from pymysqlreplication.gtid import GtidSet
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, event_size, log_pos, flags
HEADER_AT = 1  # after the packet's OK byte
BODY_AT = HEADER_AT + HEADER.size  # 20

# Event types (binlog_event.h, MariaDB log_event.h)
QUERY = 0x02
ROTATE = 0x04
FORMAT_DESCRIPTION = 0x0F
XID = 0x10
TABLE_MAP = 0x13
WRITE_ROWS_V1, UPDATE_ROWS_V1, DELETE_ROWS_V1 = 0x17, 0x18, 0x19
HEARTBEAT = 0x1B
WRITE_ROWS_V2, UPDATE_ROWS_V2, DELETE_ROWS_V2 = 0x1E, 0x1F, 0x20
GTID = 0x21
ANONYMOUS_GTID = 0x22
XA_PREPARE = 0x26
HEARTBEAT_V2 = 0x29
MARIADB_GTID = 0xA2

WRITE_ROWS = frozenset({WRITE_ROWS_V1, WRITE_ROWS_V2})
UPDATE_ROWS = frozenset({UPDATE_ROWS_V1, UPDATE_ROWS_V2})
DELETE_ROWS = frozenset({DELETE_ROWS_V1, DELETE_ROWS_V2})
ROWS_V2 = frozenset({WRITE_ROWS_V2, UPDATE_ROWS_V2, DELETE_ROWS_V2})

_COM_BINLOG_DUMP = 0x12
_COM_BINLOG_DUMP_GTID = 0x1E
_MAX_PACKET = 0xFFFFFF
_READ_BUFFER = 1 << 18


class BinlogStream:
    """One dump connection (made by ``connect``, a pymysql connection): ``open`` it, then
    iterate ``packets()``; ``close`` from any thread wakes a blocked read.

    ``gtid_set`` (MySQL GTID set or MariaDB GTID position, as text) starts after those
    transactions; otherwise ``file``/``pos`` (MariaDB: an empty ``gtid_set`` with a file
    is a file/position start too).
    """

    def __init__(
        self,
        connect: Callable[[], pymysql.connections.Connection],
        *,
        server_id: int,
        flavor: str,
        gtid_set: str | None,
        file: str | None,
        pos: int | None,
        heartbeat_s: float,
        server_heartbeat_s: float | None = None,
    ) -> None:
        self.connect = connect
        self.server_id = server_id
        self.flavor = flavor
        self.gtid_set = gtid_set
        self.file = file
        self.pos = pos
        self.heartbeat_s = heartbeat_s  # silence for 4 of these: the connection is lost
        self.server_heartbeat_s = server_heartbeat_s or heartbeat_s  # asked of the server
        self.checksum = True
        self._conn: pymysql.connections.Connection | None = None
        self._sock: socket.socket | None = None

    def open(self) -> None:
        """Connect (``connect`` says what to fix when it cannot) and ask for the binlog."""
        conn = self._conn = self.connect()
        self._sock = conn._sock
        with conn.cursor() as cursor:
            cursor.execute("SHOW GLOBAL VARIABLES LIKE 'binlog_checksum'")
            row = cursor.fetchone()
            self.checksum = row is not None and str(row[1]).upper() != "NONE"
            if self.checksum:
                cursor.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
            cursor.execute(
                "SET @master_heartbeat_period = %s", (int(self.server_heartbeat_s * 1e9),)
            )
            if self.flavor == "mariadb":
                cursor.execute("SET @mariadb_slave_capability = 4")  # GTID-aware replica
                if self.gtid_set is not None and not self.file:
                    cursor.execute("SET @slave_connect_state = %s", (self.gtid_set,))
                    cursor.execute("SET @slave_gtid_strict_mode = 1")
                    cursor.execute("SET @slave_gtid_ignore_duplicates = 0")
        if self.gtid_set is not None and not self.file:
            command = self._dump_from_gtid()
        else:
            if not self.file:
                raise ValueError("a binlog file and position, or a GTID set, is needed")
            command = (
                bytes([_COM_BINLOG_DUMP])
                + struct.pack("<IHI", self.pos or 4, 0, self.server_id)
                + self.file.encode()
            )
        conn._write_bytes(struct.pack("<I", len(command))[:3] + b"\x00" + command)
        # Silence beyond the heartbeat period means the connection is dead (a server gone
        # without closing it): the read then fails instead of waiting for ever.
        conn._sock.settimeout(max(30.0, 4 * self.heartbeat_s))

    def _dump_from_gtid(self) -> bytes:
        if self.flavor == "mariadb":
            # The start is @slave_connect_state; an empty file name asks for it.
            return bytes([_COM_BINLOG_DUMP]) + struct.pack("<IHI", 4, 0, self.server_id)
        encoded = GtidSet(self.gtid_set or "").encoded()
        flags = 0x04  # BINLOG_THROUGH_GTID
        return (
            bytes([_COM_BINLOG_DUMP_GTID])
            + struct.pack("<HII", flags, self.server_id, 0)  # no file name
            + struct.pack("<QI", 4, len(encoded))
            + encoded
        )

    def packets(self) -> Any:
        """Every event packet (payload starting with the OK byte), as the server sends them.

        Raises ``pymysql.err.OperationalError`` for an error packet or a lost connection.
        """
        assert self._sock is not None
        read = self._sock.makefile("rb", buffering=_READ_BUFFER).read
        lost = pymysql.err.OperationalError(2013, "Lost connection to server during query")

        def payload() -> bytes:
            header = read(4)
            if len(header) < 4:
                raise lost
            length = header[0] | header[1] << 8 | header[2] << 16
            data = read(length)
            if len(data) < length:
                raise lost
            return data

        try:
            while True:
                packet = payload()
                if len(packet) == _MAX_PACKET:  # an event of 16 MiB or more: continued
                    parts = [packet]
                    while len(parts[-1]) == _MAX_PACKET:
                        parts.append(payload())
                    packet = b"".join(parts)
                first = packet[0]
                if first == 0:
                    yield packet
                elif first == 0xFF:
                    raise _error(packet)
                elif first == 0xFE and len(packet) < 9:
                    return  # end of the binlog (not sent to a blocking replica)
        except TimeoutError:
            raise pymysql.err.OperationalError(
                2013, f"no event nor heartbeat from the server for {self._sock.gettimeout():.0f} s"
            ) from None
        except OSError as exc:
            raise pymysql.err.OperationalError(2013, f"Lost connection to server: {exc}") from None

    def close(self) -> None:
        """Wake a read blocked in another thread, and close."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()


def _error(packet: bytes) -> pymysql.err.OperationalError:
    code = int.from_bytes(packet[1:3], "little")
    message = packet[3:]
    if message[:1] == b"#":
        message = message[6:]  # SQL state
    return pymysql.err.OperationalError(code, message.decode("utf-8", "replace"))


# -- event fields: pure functions over a packet (OK byte, header, body) ----------------


def header(packet: bytes) -> tuple[int, int, int, int, int, int]:
    """The event header: timestamp, type, server_id, event_size, log_pos (where the next
    event starts), flags."""
    fields: tuple[int, int, int, int, int, int] = HEADER.unpack_from(packet, HEADER_AT)
    return fields


def event_start(packet: bytes) -> int:
    """Where the event starts in its binlog file."""
    _, _, _, size, log_pos, _ = HEADER.unpack_from(packet, HEADER_AT)
    return int(log_pos - size)


def body_end(packet: bytes, checksum: bool) -> int:
    """Where the event's body ends in ``packet`` (before its CRC32, when it has one)."""
    size: int = HEADER.unpack_from(packet, HEADER_AT)[3]
    return HEADER_AT + size - (4 if checksum else 0)


def mysql_gtid(packet: bytes) -> tuple[bytes, int]:
    """A MySQL GTID event's source id (the server's UUID, 16 bytes) and transaction number."""
    # flags (1 byte), SID (16), GNO (8), then logical timestamps the source does not use
    return packet[BODY_AT + 1 : BODY_AT + 17], int.from_bytes(
        packet[BODY_AT + 17 : BODY_AT + 25], "little"
    )


_MARIADB_GTID = struct.Struct("<QIB")  # seq_no, domain_id, flags
_FL_STANDALONE = 0x01


def mariadb_gtid(packet: bytes) -> tuple[str, bool]:
    """A MariaDB GTID event's GTID (``domain-server-seq``), and whether it is standalone:
    a statement committed by itself (DDL), not the start of a transaction."""
    seq, domain, flags = _MARIADB_GTID.unpack_from(packet, BODY_AT)
    server_id = int.from_bytes(packet[HEADER_AT + 5 : HEADER_AT + 9], "little")
    return f"{domain}-{server_id}-{seq}", bool(flags & _FL_STANDALONE)


class Query(NamedTuple):
    """The fields of a QUERY event the source reads."""

    thread_id: int  # the session that ran the statement
    schema: str  # its default database ("" when none)
    statement: str  # without surrounding white space


_QUERY_HEAD = struct.Struct("<IIBHH")  # thread id, exec time, schema length, error, status length


def query(packet: bytes, end: int) -> Query:
    """A QUERY event whose body ends at ``end`` (see ``body_end``)."""
    thread_id, _, schema_length, _, status_length = _QUERY_HEAD.unpack_from(packet, BODY_AT)
    at = BODY_AT + _QUERY_HEAD.size + status_length
    schema = packet[at : at + schema_length].decode("utf-8", "replace")
    statement = packet[at + schema_length + 1 : end].decode("utf-8", "replace").strip()
    return Query(thread_id, schema, statement)


def rotate_file(packet: bytes, end: int) -> str:
    """The binlog file a ROTATE event whose body ends at ``end`` names (the next one)."""
    return packet[BODY_AT + 8 : end].decode()  # after the 8-byte position


def length_coded(buf: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer at ``pos``: the value and where the next field starts."""
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(buf[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def heartbeat_position(packet: bytes, checksum: bool) -> tuple[str, int] | None:
    """The binlog file and position a heartbeat says the server has sent everything up
    to (None when it does not say). HEARTBEAT: the file in the body, the position in the
    header; HEARTBEAT_V2 (MySQL 8.0.26+): both in the body's type-length-value fields
    (0: file, 1: position as a length-encoded integer, 2: the end)."""
    end = body_end(packet, checksum)
    log_pos = HEADER.unpack_from(packet, HEADER_AT)[4]
    if packet[HEADER_AT + 4] != HEARTBEAT_V2:
        return packet[BODY_AT:end].decode("utf-8", "replace"), log_pos
    file, pos, at = "", None, BODY_AT
    try:
        while at < end:
            kind = packet[at]
            if kind == 2:
                break
            length, at = length_coded(packet, at + 1)
            value = packet[at : at + length]
            at += length
            if kind == 0:
                file = value.decode("utf-8", "replace")
            elif kind == 1:
                pos = length_coded(value, 0)[0]
    except (IndexError, KeyError):
        return None
    return (file, pos) if pos is not None else None


def table_id(packet: bytes) -> int:
    """The table id of a TABLE_MAP or rows event."""
    return int.from_bytes(packet[BODY_AT : BODY_AT + 6], "little")


def table_map_names(packet: bytes) -> tuple[str, str]:
    """Database and table of a TABLE_MAP event, without decoding the rest."""
    pos = BODY_AT + 8  # table id, flags
    schema_length = packet[pos]
    schema = packet[pos + 1 : pos + 1 + schema_length].decode()
    pos += 1 + schema_length + 1
    table_length = packet[pos]
    table = packet[pos + 1 : pos + 1 + table_length].decode()
    return schema, table


def full_bitmaps(columns: int) -> frozenset[bytes]:
    """The columns-present bitmaps of a row image holding all ``columns`` columns: the
    unused bits of the last byte clear (as MariaDB writes them) or set (MySQL 8)."""
    size = (columns + 7) // 8
    full = (1 << columns) - 1
    return frozenset({full.to_bytes(size, "little"), b"\xff" * size})


def all_columns(bitmap: bytes, columns: int) -> bool:
    """Whether a columns-present bitmap names each of ``columns`` columns, whatever its
    unused bits."""
    full = (1 << columns) - 1
    return len(bitmap) == (columns + 7) // 8 and int.from_bytes(bitmap, "little") & full == full


def rows_body(packet: bytes, event_type: int, end: int) -> tuple[bytes, bytes, bytes]:
    """Columns-present bitmap(s) and the row images of a rows event ending at ``end``."""
    pos = BODY_AT + 8  # table id, flags
    if event_type in ROWS_V2:
        pos += packet[pos] | packet[pos + 1] << 8  # extra data (its length counts itself)
    columns, pos = length_coded(packet, pos)
    size = (columns + 7) // 8
    present = packet[pos : pos + size]
    pos += size
    present_after = present
    if event_type in UPDATE_ROWS:
        present_after = packet[pos : pos + size]
        pos += size
    return present, present_after, packet[pos:end]


class _Ctl:
    """What the library's event classes ask of a control connection."""

    charset = "utf8mb4"

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor

    def _get_dbms(self) -> str:
        return self.flavor

    def cursor(self) -> Any:
        # Only reached when the TABLE_MAP has no column names (binlog_row_metadata is not
        # FULL), which cdcd refuses at start; never guess names from today's schema.
        raise pymysql.err.OperationalError(
            0, "the TABLE_MAP event has no column names: set binlog_row_metadata = FULL"
        )


_LIBRARY_EVENTS = frozenset({TableMapEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent})


def library_event(
    packet: bytes,
    *,
    flavor: str,
    version: tuple[int, ...],
    checksum: bool,
    table_map: dict[int, Any] | None = None,
) -> Any:
    """python-mysql-replication's decoding of one event (a TABLE_MAP, or a rows event whose
    table is in ``table_map``), from its packet bytes."""
    wrapper = BinLogPacketWrapper(
        MysqlPacket(packet, "utf8"),
        {} if table_map is None else table_map,
        _Ctl(flavor),
        version,
        checksum,
        _LIBRARY_EVENTS,
        None,  # only_tables
        None,  # ignored_tables
        None,  # only_schemas
        None,  # ignored_schemas
        False,  # freeze_schema
        False,  # ignore_decode_errors
        False,  # verify_checksum
        True,  # optional_meta_data
        False,  # enable_logging
    )
    return wrapper.event
