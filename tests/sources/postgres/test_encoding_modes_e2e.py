"""Every encoding mode of PostgreSQL set to another value than its default, end to end:
the real daemon, PostgreSQL and Kafka; a row read by the initial snapshot and the same
values streamed afterwards are encoded alike, and as Debezium encodes them."""

from __future__ import annotations

import base64

import pytest
from support import consume, daemon

pytestmark = pytest.mark.integration

COLUMNS = (
    "t3 time(3), t6 time, ts timestamp(6), d date, b bytea, i interval, h hstore, "
    "m money, ms money[], ta time[]"
)
VALUES = (
    "'13:14:15.678', '13:14:15.678901', '2024-02-29 13:14:15.678901', '1969-12-31', "
    "'\\xfbff00', '1 year 2 mons 3 days 04:05:06.78', '\"a\"=>\"1\", \"b\"=>NULL', "
    "'-$1,234.5', '{\"$1.25\"}', '{\"00:00:01.5\"}'"
)


def money(unscaled: int) -> str:
    length = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() + 8) >> 3
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


# time.precision.mode=connect: Connect's Time and Timestamp in ms, Date in days;
# binary.handling.mode=hex; interval.handling.mode=string; hstore.handling.mode=map;
# money.fraction.digits=3 (precise decimals)
EXPECTED = {
    "t3": 47_655_678,
    "t6": 47_655_678,
    "ts": 1_709_212_455_678,
    "d": -1,
    "b": "fbff00",
    "i": "P1Y2M3DT4H5M6.78S",
    "h": {"a": "1", "b": None},
    "m": money(-1_234_500),
    "ms": [money(1_250)],
    "ta": [1_500],
}


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_non_default_modes_in_snapshot_and_stream(pg_case, tmp_path, reader):
    s = pg_case.schema
    pg_case.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    pg_case.execute(f"CREATE TABLE {s}.modes (id int PRIMARY KEY, {COLUMNS})")
    pg_case.execute(f"INSERT INTO {s}.modes VALUES (1, {VALUES})")
    config = pg_case.config(["modes"])
    config["source"]["reader"] = reader
    config["snapshot"] = {"mode": "initial"}
    config["encoding"] = {
        "time.precision.mode": "connect",  # Debezium's spelling and ours, mixed
        "binary_handling_mode": "hex",
        "interval.handling.mode": "string",
        "hstore_handling_mode": "map",
        "money.fraction.digits": 3,
    }
    topic = pg_case.topic("modes")
    with daemon(tmp_path, config) as d:
        [snapshot] = consume(pg_case.bootstrap, [topic], expect=1)
        pg_case.execute(f"INSERT INTO {s}.modes VALUES (2, {VALUES})")
        messages = consume(pg_case.bootstrap, [topic], expect=2)
        assert d.terminate() == 0
    streamed = messages[1]
    assert (snapshot.value["op"], streamed.value["op"]) == ("r", "c")
    assert snapshot.value["after"] == {"id": 1, **EXPECTED}
    assert streamed.value["after"] == {"id": 2, **EXPECTED}


def test_adaptive_time_microseconds_in_snapshot_and_stream(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.times (id int PRIMARY KEY, t3 time(3), ts timestamp(3))")
    pg_case.execute(f"INSERT INTO {s}.times VALUES (1, '00:00:01.5', '1970-01-01 00:00:01.5')")
    config = pg_case.config(["times"])
    config["snapshot"] = {"mode": "initial"}
    config["encoding"] = {"time_precision_mode": "adaptive_time_microseconds"}
    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.times VALUES (2, '00:00:01.5', '1970-01-01 00:00:01.5')")
        messages = consume(pg_case.bootstrap, [pg_case.topic("times")], expect=2)
        assert d.terminate() == 0
    # TIME always MicroTime; a timestamp(3) still a Timestamp in ms
    assert [m.value["after"] for m in messages] == [
        {"id": 1, "t3": 1_500_000, "ts": 1_500},
        {"id": 2, "t3": 1_500_000, "ts": 1_500},
    ]
