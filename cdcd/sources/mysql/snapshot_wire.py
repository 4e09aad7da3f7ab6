"""A snapshot's SELECT read off the socket: rows as the text protocol sends them.

pymysql parses a result row by row in Python, several method calls a value, then turns
each value into a Python object (``datetime``, ``Decimal``) that a snapshot only takes
apart again; that was most of a snapshot's time. Here pymysql still sends the query and
reads the column definitions (``MySQLResult._get_descriptions``: its ``converters`` say
how pymysql would decode each column); the rows are then cut out of the connection's
buffered reader (as ``binlog.py`` does for the dump stream), and each row packet is read
by one generated function a table (``row_reader``) that cuts out its values and converts
them column by column (``snapshot_values.TableRows``, ``snapshot_text``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pymysql
from pymysql.connections import Connection, MySQLResult
from pymysql.constants import COMMAND
from pymysql.protocol import MysqlPacket

_MAX_PACKET = 0xFFFFFF  # a payload this long continues in the next packet
_NULL = 0xFB

Row = list[bytes | None]


def select_rows(conn: Connection, sql: str, args: Any) -> tuple[list[Any], list[bytes]]:
    """Run ``sql`` with ``args`` (as ``cursor.execute`` formats them) and read its result:
    pymysql's ``(encoding, converter)`` of each column, and its row packets (``row_reader``
    reads them; ``values`` gives a packet's raw values).

    Raises what pymysql raises for an error (the server's, or a lost connection: then the
    connection is closed)."""
    with conn.cursor() as cursor:
        query = cursor.mogrify(sql, args)
    conn._execute_command(COMMAND.COM_QUERY, query)
    conn._result = None
    first = conn._read_packet()  # raises the server's error for a failed query
    if first.is_ok_packet():
        return [], []
    result = MySQLResult(conn)
    result.field_count = first.read_length_encoded_integer()
    result._get_descriptions()
    try:
        rows = _rows(conn)
    except OSError as exc:
        conn._force_close()
        raise pymysql.err.OperationalError(2013, f"Lost connection to server: {exc}") from None
    return result.converters, rows


def _rows(conn: Connection) -> list[bytes]:
    read = conn._rfile.read
    rows: list[bytes] = []
    append = rows.append

    def payload() -> bytes:
        header = read(4)
        length = header[0] | header[1] << 8 | header[2] << 16 if len(header) == 4 else -1
        data = read(length) if length >= 0 else b""
        if len(data) != length:
            conn._force_close()
            raise pymysql.err.OperationalError(2013, "Lost connection to server during query")
        if header[3] != conn._next_seq_id:
            conn._force_close()
            raise pymysql.err.InternalError(f"packet number {header[3]}, not {conn._next_seq_id}")
        conn._next_seq_id = (conn._next_seq_id + 1) & 0xFF
        return data

    while True:
        data = payload()
        if len(data) == _MAX_PACKET:  # a row of 16 MiB or more: continued
            parts = [data]
            while len(parts[-1]) == _MAX_PACKET:
                parts.append(payload())
            data = b"".join(parts)
        first = data[0]
        if first == 0xFE and len(data) < 9:  # EOF: warnings, status flags
            conn.server_status = int.from_bytes(data[3:5], "little")
            return rows
        if first == 0xFF:
            MysqlPacket(data, conn.encoding).raise_for_error()
        append(data)


def row_reader(
    names: Sequence[str], decoders: Sequence[tuple[Callable[[bytes], Any], Any]]
) -> Callable[[bytes], dict[str, Any]]:
    """The function of a table that turns a row packet into its dict: for each column
    (``names[i]``), its length-coded value cut out, then ``decoders[i]``: (what a value
    becomes, what NULL becomes). Generated, its columns unrolled, the names and decoders
    bound as variables (``n0``, ``d0``, ``u0``): a loop over the columns costs twice as
    much."""
    scope: dict[str, Any] = {"_long": _long}
    lines = ["def read_row(data):", "    at = 0"]
    for at, (name, (decode, null)) in enumerate(zip(names, decoders, strict=True)):
        scope[f"n{at}"], scope[f"d{at}"], scope[f"u{at}"] = name, decode, null
        lines += [
            "    size = data[at]",
            "    if size < 0xFB:",
            f"        v{at} = data[at + 1 : at + 1 + size]",
            "        at += 1 + size",
            "    else:",
            f"        v{at}, at = _long(data, at)",
        ]
    items = ", ".join(
        f"n{at}: u{at} if v{at} is None else d{at}(v{at})" for at in range(len(names))
    )
    lines.append(f"    return {{{items}}}")
    exec("\n".join(lines), scope)
    return scope["read_row"]  # type: ignore[no-any-return]


def _long(data: bytes, at: int) -> tuple[bytes | None, int]:
    """NULL, or a value of 251 bytes or more: its length in 2, 3 or 8 bytes."""
    code = data[at]
    if code == _NULL:
        return None, at + 1
    width = 2 if code == 0xFC else 3 if code == 0xFD else 8
    at += 1 + width
    size = int.from_bytes(data[at - width : at], "little")
    return data[at : at + size], at + size


def values(packet: bytes, columns: int) -> Row:
    """The raw values of a row packet of ``columns`` columns, in order."""
    read = _raw_readers.get(columns)
    if read is None:
        read = _raw_readers[columns] = row_reader(
            [str(i) for i in range(columns)], [(bytes, None)] * columns
        )
    return list(read(packet).values())


_raw_readers: dict[int, Callable[[bytes], dict[str, Any]]] = {}
