"""Binlog event packets made into the source's items: changes, DDL and commits.

The decoder holds what the events before the current one said: the tables by id (their
TABLE_MAPs), the binlog file, the current GTID and session, the open transaction (its
start, for a position that cuts it) and the GTID set committed so far. Transactions are
assembled (counted, cut when huge, their already-written start skipped on resume) by the
``TransactionAssembler`` both sources share. Rows events are most of the stream: their
path stays short.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from cdcd.errors import DecodeError
from cdcd.events import (
    HEARTBEAT,
    OP_CREATE,
    OP_DELETE,
    ChangeEvent,
    Commit,
    SchemaChange,
    SourceItem,
)
from cdcd.positions import MysqlPosition
from cdcd.sources.common import TransactionAssembler, update_events
from cdcd.sources.mysql import binlog as bl
from cdcd.sources.mysql.ddl import ddl_database
from cdcd.sources.mysql.gtid import MariadbGtidPosition, MysqlGtidSet
from cdcd.sources.mysql.start import Start
from cdcd.sources.mysql.tables import Table, TableMaps

CHUNK_ITEMS = 2000  # items handed over at once (and at every commit)
_ROWS_EVENTS = bl.WRITE_ROWS | bl.UPDATE_ROWS | bl.DELETE_ROWS
_WRITE_ROWS, _UPDATE_ROWS, _DELETE_ROWS = bl.WRITE_ROWS, bl.UPDATE_ROWS, bl.DELETE_ROWS
_unpack_header = bl.HEADER.unpack_from
_rows_body = bl.rows_body

# Event types that carry no row change and need no handling: skipping them is safe. Any
# other event not handled below (compressed transactions, compressed MariaDB events,
# incidents) stops the stream: a position must never move past data not delivered.
_HARMLESS_EVENT_TYPES = frozenset(
    {
        0x03,  # STOP
        0x05,  # INTVAR
        0x0D,  # RAND
        0x0E,  # USER_VAR
        0x0F,  # FORMAT_DESCRIPTION
        0x1C,  # IGNORABLE
        0x1D,  # ROWS_QUERY
        0x23,  # PREVIOUS_GTIDS
        0x24,  # TRANSACTION_CONTEXT (group replication)
        0x25,  # VIEW_CHANGE (group replication)
        # XA_PREPARE: the rows of an XA transaction come before it, between XA START and
        # XA END; they are emitted when its XA COMMIT (a query event) is read.
        bl.XA_PREPARE,
        0xA0,  # MARIADB_ANNOTATE_ROWS
        0xA1,  # MARIADB_BINLOG_CHECKPOINT
        0xA3,  # MARIADB_GTID_LIST
        0xA4,  # MARIADB_START_ENCRYPTION
    }
)
_UNREADABLE_EVENT_TYPES = {
    0x1A: "an INCIDENT event (the server lost binlog events)",
    0x28: "a compressed transaction (binlog_transaction_compression = ON): set it OFF",
    0xA5: "a compressed MariaDB event (log_bin_compress = ON): set it OFF",
    **{
        event_type: "a compressed MariaDB event (log_bin_compress = ON): set it OFF"
        for event_type in range(0xA6, 0xAC)  # compressed WRITE/UPDATE/DELETE rows, v1 and v2
    },
}


class Stopped(Exception):
    """The stream was asked to stop (or nobody takes its items any more)."""


class BinlogDecoder:
    """Decodes one stream's event packets (each the dump protocol's payload: the OK
    byte, the event header, the event) from ``start``, handing items over in chunks.

    ``server`` names the server in positions; ``captures_ddl`` says whether a DDL
    statement of a database is published (None: schema changes are not).
    """

    __slots__ = (
        "_assembler",
        "_captures_ddl",
        "_connector",
        "_crc",
        "_file",
        "_flavor",
        "_gtid",
        "_gtids",
        "_hand_over",
        "_heartbeat",
        "_in_transaction",
        "_items",
        "_server",
        "_sids",
        "_stop",
        "_table_maps",
        "_tables",
        "_thread",
        "_tx_file",
        "_tx_start",
    )

    def __init__(
        self,
        start: Start,
        *,
        flavor: str,
        server: str,
        connector: str,
        split_after_events: int,
        checksum: bool,
        table_maps: TableMaps,
        captures_ddl: Callable[[str], bool] | None,
        stop: threading.Event,
        hand_over: Callable[[list[SourceItem]], None],
        heartbeat: threading.Event | None = None,
    ) -> None:
        self._flavor = flavor
        self._server = server
        self._connector = connector
        self._crc = 4 if checksum else 0
        self._table_maps = table_maps
        self._captures_ddl = captures_ddl
        self._stop = stop
        self._hand_over = hand_over
        self._heartbeat = heartbeat  # set: a heartbeat Commit is wanted
        self._assembler = TransactionAssembler(split_after_events, skip=start.skip_events)
        self._gtids: MysqlGtidSet | MariadbGtidPosition | None = None
        if start.gtid_set is not None:
            self._gtids = (
                MariadbGtidPosition.parse(start.gtid_set)
                if flavor == "mariadb"
                else MysqlGtidSet.parse(start.gtid_set)
            )
        self._file = start.file or ""
        self._tables: dict[int, Table] = {}
        self._items: list[SourceItem] = []
        self._gtid: str | None = None
        self._thread: int | None = None
        self._in_transaction = False
        self._tx_start: int | None = None  # where the open transaction's first event starts
        self._tx_file = self._file
        self._sids: dict[bytes, str] = {}  # MySQL server UUIDs, as text

    def consume(self, packets: Iterable[bytes]) -> None:
        """Decode every packet; what is left is handed over at the end."""
        on_rows, on_table_map = self._on_rows, self._on_table_map
        handlers: dict[int, Callable[[bytes], None]] = {
            bl.XID: self._on_xid,
            bl.QUERY: self._on_query,
            bl.GTID: self._on_mysql_gtid,
            bl.MARIADB_GTID: self._on_mariadb_gtid,
            bl.ANONYMOUS_GTID: self._on_anonymous_gtid,
            bl.ROTATE: self._on_rotate,
            bl.HEARTBEAT: self._on_heartbeat,
            bl.HEARTBEAT_V2: self._on_heartbeat,
        }
        handler_of = handlers.get
        rows_events, table_map = _ROWS_EVENTS, bl.TABLE_MAP
        stopping = self._stop.is_set
        for packet in packets:
            kind = packet[5]
            if kind in rows_events:
                on_rows(packet, kind)
            elif kind == table_map:
                on_table_map(packet)
            else:
                handler = handler_of(kind)
                if handler is not None:
                    handler(packet)
                elif kind not in _HARMLESS_EVENT_TYPES:
                    raise self._unreadable(packet, kind)
            if stopping():
                raise Stopped
        if self._items:
            self._hand_over(self._items)

    # -- rows (the hot path) ---------------------------------------------------------

    def _on_rows(self, packet: bytes, kind: int) -> None:
        table = self._tables.get(int.from_bytes(packet[20:26], "little"))  # bl.table_id
        if table is None:
            raise self._unknown_table(packet)
        if not table.included:
            return
        ts, _, server_id, size, log_pos, _ = _unpack_header(packet, 1)
        ts_ms = ts * 1000
        source = {
            "connector": self._connector,
            "ts_ms": ts_ms,
            "ts_us": ts * 1_000_000,
            "ts_ns": ts * 1_000_000_000,
            "db": table.schema,
            "sequence": None,
            "table": table.name,
            "server_id": server_id,
            "gtid": self._gtid,
            "file": self._file,
            "pos": log_pos - size,
            "row": 0,
            "thread": self._thread,
            "query": None,
        }
        present, present_after, body = _rows_body(packet, kind, 1 + size - self._crc)
        decoder, full = table.decoder, table.full_bitmaps  # FULL images, any usual padding
        rows: list[Any]
        if decoder is None or present not in full or present_after not in full:
            rows = self._table_maps.rows(kind, table, packet, (present, present_after), body)
        elif kind not in _UPDATE_ROWS:
            rows = decoder.images(body)
        else:
            rows = decoder.image_pairs(body)
        assembler, items = self._assembler, self._items
        assembler.ts_ms = ts_ms  # a Commit cutting the transaction here carries this time
        add, key, gtid = assembler.add, table.key, self._gtid
        schema, name = table.schema, table.name
        row_source = source
        if kind in _WRITE_ROWS:
            for index, after in enumerate(rows):
                if index:
                    row_source = {**source, "row": index}
                add(
                    ChangeEvent(OP_CREATE, schema, name, key(after), None, after, row_source, gtid),
                    items,
                )
        elif kind in _DELETE_ROWS:
            for index, before in enumerate(rows):
                if index:
                    row_source = {**source, "row": index}
                add(
                    ChangeEvent(
                        OP_DELETE, schema, name, key(before), before, None, row_source, gtid
                    ),
                    items,
                )
        else:
            for index, (before, after) in enumerate(rows):
                if index:
                    row_source = {**source, "row": index}
                for event in update_events(schema, name, key, before, after, row_source, gtid):
                    add(event, items)
        if len(items) >= CHUNK_ITEMS:
            self._hand_over_items()

    def _on_table_map(self, packet: bytes) -> None:
        table_id = int.from_bytes(packet[20:26], "little")
        body = packet[bl.BODY_AT : 1 + _unpack_header(packet, 1)[3] - self._crc]
        known = self._tables.get(table_id)
        if known is None or known.map_body != body:
            # A table id names one table until the server reuses it (after a restart or
            # an ALTER): the map's bytes, not only its id, decide.
            table = self._tables[table_id] = self._table_maps.table(packet, body)
            if table.schema_item is not None:
                self._items.append(table.schema_item)  # before the table's rows

    # -- transactions ------------------------------------------------------------------

    def _begin(self, packet: bytes) -> None:
        """A transaction starts at this event."""
        ts, _, _, size, log_pos, _ = _unpack_header(packet, 1)
        self._tx_start, self._tx_file = log_pos - size, self._file
        self._assembler.begin(self._gtid, ts * 1000, self._cut)

    def _cut(self, count: int) -> MysqlPosition | None:
        """Where to resume with ``count`` changes of the open transaction written: at its
        start, those changes skipped."""
        if self._tx_start is None:
            return None
        gtids = self._gtids  # moves at commits only: still the set before the transaction
        return MysqlPosition(
            self._flavor,
            str(gtids) if gtids is not None else None,
            self._tx_file,
            self._tx_start,
            count,
            self._server,
        )

    def _commit(self, next_pos: int, ts: int) -> None:
        """The transaction's Commit, and everything so far handed over."""
        gtid, gtids = self._gtid, self._gtids
        if gtid is not None and gtids is not None:
            gtids = self._gtids = (
                gtids.advance_gtid(gtid)
                if isinstance(gtids, MariadbGtidPosition)
                else gtids.add_gtid(gtid)
            )
        position = MysqlPosition(
            self._flavor,
            str(gtids) if gtids is not None else None,
            self._file,
            next_pos,
            0,
            self._server,
        )
        self._assembler.commit(position, self._items, ts * 1000)
        self._in_transaction = False
        self._tx_start = None
        self._hand_over_items()

    def _hand_over_items(self) -> None:
        items, self._items = self._items, []
        self._hand_over(items)

    # -- the other events --------------------------------------------------------------

    def _on_xid(self, packet: bytes) -> None:
        ts, _, _, _, log_pos, _ = _unpack_header(packet, 1)
        self._commit(log_pos, ts)

    def _on_mysql_gtid(self, packet: bytes) -> None:
        sid, gno = bl.mysql_gtid(packet)
        text = self._sids.get(sid)
        if text is None:
            text = self._sids[sid] = str(uuid.UUID(bytes=sid))
        self._gtid, self._thread = f"{text}:{gno}", None
        self._begin(packet)

    def _on_mariadb_gtid(self, packet: bytes) -> None:
        self._gtid, standalone = bl.mariadb_gtid(packet)
        self._thread = None
        # MariaDB writes no BEGIN: the GTID event opens a transaction unless it is
        # flagged standalone (a DDL statement, committed by itself).
        self._in_transaction = not standalone
        self._begin(packet)

    def _on_anonymous_gtid(self, packet: bytes) -> None:
        # MySQL without GTIDs: a transaction starts.
        self._gtid, self._thread = None, None
        self._begin(packet)

    def _on_query(self, packet: bytes) -> None:
        ts, _, server_id, size, log_pos, _ = _unpack_header(packet, 1)
        query = bl.query(packet, 1 + size - self._crc)
        upper = query.statement[:16].upper()
        if upper == "BEGIN" or upper.startswith("XA START"):
            self._in_transaction = True
            self._thread = query.thread_id
            if self._tx_start is None:  # no GTID event opened it
                self._begin(packet)
        elif upper in ("COMMIT", "ROLLBACK") or upper.startswith("XA COMMIT"):
            self._commit(log_pos, ts)
        elif not self._in_transaction:
            # DDL: committed by itself; row events after it have the new shape.
            self._on_ddl(query, ts, server_id, log_pos - size)
            self._commit(log_pos, ts)

    def _on_ddl(self, query: bl.Query, ts: int, server_id: int, pos: int) -> None:
        database = ddl_database(query.statement, query.schema)
        if self._captures_ddl is None or not self._captures_ddl(database):
            return
        source = {
            "connector": self._connector,
            "ts_ms": ts * 1000,
            "db": database,
            "table": None,
            "server_id": server_id,
            "gtid": self._gtid,
            "file": self._file,
            "pos": pos,
            "row": 0,
            "thread": query.thread_id,
            "query": None,
        }
        self._items.append(SchemaChange(database or "", query.statement, source))

    def _on_rotate(self, packet: bytes) -> None:
        self._file = bl.rotate_file(packet, bl.body_end(packet, self._crc != 0))

    def _on_heartbeat(self, packet: bytes) -> None:
        """The server is idle at the end of its binlog (it sends heartbeats only then):
        everything before the heartbeat's position was sent. When one was asked for
        (``MysqlSource.heartbeat_soon``) and no transaction is open, a heartbeat Commit
        at that position goes with what is handed over."""
        wanted = self._heartbeat
        if wanted is not None and wanted.is_set() and self._tx_start is None:
            at = bl.heartbeat_position(packet, self._crc != 0)
            if at is not None:
                wanted.clear()
                gtids = self._gtids
                position = MysqlPosition(
                    self._flavor,
                    str(gtids) if gtids is not None else None,
                    at[0] or self._file,
                    at[1],
                    0,
                    self._server,
                )
                self._items.append(Commit(position, extra=HEARTBEAT))
        if self._items:
            self._hand_over_items()

    def _unknown_table(self, packet: bytes) -> DecodeError:
        return DecodeError(
            f"a rows event at {self._file}:{bl.event_start(packet)} names table id "
            f"{bl.table_id(packet)}, which no TABLE_MAP event described; cdcd stops rather "
            "than skip it"
        )

    def _unreadable(self, packet: bytes, kind: int) -> DecodeError:
        what = _UNREADABLE_EVENT_TYPES.get(kind, f"an event of unknown type 0x{kind:02x}")
        return DecodeError(
            f"the binlog holds {what} at {self._file}:{bl.event_start(packet)}; "
            "cdcd stops rather than skip it"
        )
