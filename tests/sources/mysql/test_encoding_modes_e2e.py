"""Every encoding mode of MySQL/MariaDB set to another value than its default, end to
end: the real daemon, MariaDB (and MySQL 8), Kafka; a row read by the initial snapshot, the
same values streamed as a full row image (the fast reader) and as a MINIMAL one (the
library's decoding) are encoded alike, and as Debezium encodes them."""

from __future__ import annotations

import base64

import pytest
from support import consume, daemon

pytestmark = pytest.mark.integration

DDL = (
    "CREATE TABLE modes (id INT PRIMARY KEY, t6 TIME(6), t0 TIME NOT NULL, "
    "dt6 DATETIME(6), dt0 DATETIME, d DATE, bn BINARY(3), vb VARBINARY(10), bl BLOB, "
    "biu BIGINT UNSIGNED, far TIME(6))"
)
VALUES = (
    "'13:14:15.678901', '00:00:01', '2024-02-29 13:14:15.678901', '2024-02-29 13:14:15', "
    "'1969-12-31', X'FBFF', X'FBFF00', X'00', 18446744073709551615, '-01:00:00'"
)
COLUMNS = "t6, t0, dt6, dt0, d, bn, vb, bl, biu, far"

# time.precision.mode=connect (Connect's Time and Timestamp in ms; a TIME outside a day
# has none: null), binary.handling.mode=hex (BINARY(3) padded back), precise BIGINT UNSIGNED
EXPECTED = {
    "t6": 47_655_678,
    "t0": 1_000,
    "dt6": 1_709_212_455_678,
    "dt0": 1_709_212_455_000,
    "d": -1,
    "bn": "fbff00",
    "vb": "fbff00",
    "bl": "00",
    "biu": base64.b64encode((2**64 - 1).to_bytes(9, "big")).decode(),
    "far": None,
}


@pytest.mark.parametrize("reader", ["process", "thread"])
def test_non_default_modes_in_snapshot_and_stream(my_case, tmp_path, reader):
    my_case.ddl(DDL)
    my_case.execute(f"INSERT INTO modes (id, {COLUMNS}) VALUES (1, {VALUES})")
    config = my_case.config(["modes"], reader=reader)
    config["snapshot"] = {"mode": "initial"}
    config["encoding"] = {
        "time.precision.mode": "connect",  # Debezium's spelling and ours, mixed
        "binary_handling_mode": "hex",
        "bigint.unsigned.handling.mode": "precise",
    }
    topic = my_case.topic("modes")
    with daemon(tmp_path, config) as d:
        [snapshot] = consume(my_case.bootstrap, [topic], expect=1)
        my_case.execute(f"INSERT INTO modes (id, {COLUMNS}) VALUES (2, {VALUES})")
        with my_case.conn.cursor() as cursor:
            # a partial row image: decoded by the library and types.RowConverter
            cursor.execute("SET SESSION binlog_row_image = 'MINIMAL'")
            cursor.execute(f"INSERT INTO modes (id, {COLUMNS}) VALUES (3, {VALUES})")
            cursor.execute("SET SESSION binlog_row_image = 'FULL'")
        messages = consume(my_case.bootstrap, [topic], expect=3)
        assert d.terminate() == 0
    assert [m.value["op"] for m in messages] == ["r", "c", "c"]
    assert snapshot.value["after"] == {"id": 1, **EXPECTED}
    assert [m.value["after"] for m in messages[1:]] == [
        {"id": 2, **EXPECTED},
        {"id": 3, **EXPECTED},
    ]
