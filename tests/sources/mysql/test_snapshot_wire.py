"""The snapshot's SELECT read off the socket (``snapshot_wire``): the raw values of every
length the text protocol codes, on both servers the same as pymysql reads them, and a
connection that goes on working after a result and after an error."""

from __future__ import annotations

import pymysql
import pytest

from cdcd.sources.mysql.snapshot_text import pymysql_form
from cdcd.sources.mysql.snapshot_wire import row_reader, select_rows, values


def test_values_of_every_length_code() -> None:
    long, longer = b"x" * 300, b"y" * 70_000
    packet = (
        b"\xfb"  # NULL
        + b"\x00"  # ''
        + b"\x03abc"
        + b"\xfc" + len(long).to_bytes(2, "little") + long
        + b"\xfd" + len(longer).to_bytes(3, "little") + longer
        + b"\xfe" + (2).to_bytes(8, "little") + b"zz"
    )  # fmt: skip
    assert values(packet, 6) == [None, b"", b"abc", long, longer, b"zz"]
    read = row_reader("abcdef", [(len, "null")] * 6)
    assert read(packet) == {"a": "null", "b": 0, "c": 3, "d": 300, "e": 70_000, "f": 2}


@pytest.mark.integration
def test_rows_as_pymysql_reads_them_and_the_connection_goes_on(my_case) -> None:
    my_case.ddl(
        "CREATE TABLE w (id INT PRIMARY KEY, t MEDIUMTEXT, v VARCHAR(400), b VARBINARY(10), "
        "d DECIMAL(5,2), ts DATETIME(3))"
    )
    my_case.execute(
        "INSERT INTO w VALUES (1, REPEAT('é', 40000), REPEAT('v', 300), X'00FF', -1.5, "
        "'2024-02-29 12:00:00.5'), (2, '', '', X'', NULL, NULL), (3, NULL, 'x%', NULL, 0, "
        "'1000-01-01 00:00:00')"
    )
    sql = f"SELECT * FROM {my_case.database}.w WHERE v LIKE %s OR id > %s ORDER BY id"
    conn = my_case.conn
    forms, packets = select_rows(conn, sql, ("x%%", 0))
    raw = [values(packet, len(forms)) for packet in packets]
    with conn.cursor() as cursor:
        cursor.execute(sql, ("x%%", 0))
        expected = [list(row) for row in cursor.fetchall()]
    decoded = [
        [None if v is None else pymysql_form(form)(v) for v, form in zip(row, forms, strict=True)]
        for row in raw
    ]
    assert decoded == expected and len(raw) == 3
    with pytest.raises(pymysql.err.OperationalError, match="nope"):
        select_rows(conn, f"SELECT nope FROM {my_case.database}.w", ())
    assert values(select_rows(conn, "SELECT 1, NULL", ())[1][0], 2) == [b"1", None]
    assert conn.get_autocommit()
    with conn.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
