"""A snapshot's SELECT read off the socket: rows as the text protocol sends them.

pymysql parses a result row by row in Python, several method calls a value, then turns
each value into a Python object (``datetime``, ``Decimal``) that a snapshot only takes
apart again; that was most of a snapshot's time. Here pymysql still sends the query and
reads the column definitions (``MySQLResult._get_descriptions``: its ``converters`` say
how pymysql would decode each column); the rows are then cut out of the connection's
buffered reader with one loop a row, each value left as the server's bytes (None for
NULL), for ``snapshot_values.TableRows`` to convert column by column (as
``binlog.py`` does for the dump stream).
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql.connections import Connection, MySQLResult
from pymysql.constants import COMMAND
from pymysql.protocol import MysqlPacket

_MAX_PACKET = 0xFFFFFF  # a payload this long continues in the next packet
_NULL = 0xFB

Row = list[bytes | None]


def select_rows(conn: Connection, sql: str, args: Any) -> tuple[list[Any], list[Row]]:
    """Run ``sql`` with ``args`` (as ``cursor.execute`` formats them) and read its result:
    pymysql's ``(encoding, converter)`` of each column, and the rows' raw values.

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
        rows = _rows(conn, result.field_count)
    except OSError as exc:
        conn._force_close()
        raise pymysql.err.OperationalError(2013, f"Lost connection to server: {exc}") from None
    return result.converters, rows


def _rows(conn: Connection, columns: int) -> list[Row]:
    read = conn._rfile.read
    rows: list[Row] = []
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
        append(_values(data, columns))


def _values(data: bytes, columns: int) -> Row:
    """The length-coded values of one row packet."""
    row: Row = []
    append = row.append
    at = 0
    for _ in range(columns):
        size = data[at]
        if size < 0xFB:
            at += 1
        elif size == _NULL:
            append(None)
            at += 1
            continue
        elif size == 0xFC:
            size = data[at + 1] | data[at + 2] << 8
            at += 3
        elif size == 0xFD:
            size = int.from_bytes(data[at + 1 : at + 4], "little")
            at += 4
        else:
            size = int.from_bytes(data[at + 1 : at + 9], "little")
            at += 9
        append(data[at : at + size])
        at += size
    return row
