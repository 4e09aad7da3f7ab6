"""MySQL/MariaDB -> Kafka, end to end: the real daemon, real servers, real Kafka."""

from __future__ import annotations

import base64
import datetime as dt
import os
import signal
import time

import orjson
import pytest
from support import (
    assert_each_once,
    consume,
    daemon,
    peak_rss_mb,
    process_gone,
    worker_processes,
)

from .conftest import connect

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unscaled(value: int) -> str:
    """Kafka Connect Decimal: big-endian two's complement of the unscaled value, base64."""
    length = (value.bit_length() + 8) // 8
    return b64(value.to_bytes(length, "big", signed=True))


def epoch_days(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def epoch_micros(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


TYPES_DDL = """
CREATE TABLE types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED, biu_small BIGINT UNSIGNED,
  dec1 DECIMAL(12,2), dec0 DECIMAL(30,0), dec55 DECIMAL(5,5), f FLOAT, d DOUBLE,
  c CHAR(4), vc VARCHAR(20), t TEXT, l1 VARCHAR(20) CHARACTER SET latin1,
  bin BINARY(4), vb VARBINARY(8), bl BLOB,
  day DATE, tm TIME(3), tm_long TIME(6), dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL,
  y YEAR, e ENUM('a','b','c'), s SET('x','y','z'), b1 BIT(1), b12 BIT(12),
  j JSON, g GEOMETRY, nothing INT
)
"""

TYPES_ROW = (
    "INSERT INTO types VALUES (1, -128, 255, -32768, 8388607, -2147483648, 4294967295, "
    "-9223372036854775808, 18446744073709551615, 42, -1234.56, 123456789012345678901234567890, -0.12345, "
    "1.5, -2.25, 'ab', 'héllo 🎉', 'text', 'café', 'ab', X'00ff', X'000102', '2024-02-29', "
    "'12:34:56.789', '838:59:59.000000', '2024-01-02 03:04:05', '2024-01-02 03:04:05.123456', "
    "'2024-01-02 03:04:05.120', 2024, 'b', 'x,z', b'1', b'101000000001', "
    '\'{"a": [1, 2.5, "x"], "b": null}\', ST_GeomFromText(\'POINT(1 2)\'), NULL)'
)


def expected_types_row(flavor: str) -> dict:
    return {
        "id": 1,
        "ti": -128,
        "tiu": 255,
        "si": -32768,
        "mi": 8388607,
        "i": -2147483648,
        "iu": 4294967295,
        "bi": -9223372036854775808,
        # bigint.unsigned.handling.mode=long: beyond 2^63 the value wraps, as in Debezium.
        "biu": -1,
        "biu_small": 42,
        "dec55": unscaled(-12345),
        "dec1": unscaled(-123456),
        "dec0": unscaled(123456789012345678901234567890),
        "f": 1.5,
        "d": -2.25,
        "c": "ab",
        "vc": "héllo 🎉",
        "t": "text",
        "l1": "café",
        "bin": b64(b"ab\x00\x00"),
        "vb": b64(b"\x00\xff"),
        "bl": b64(b"\x00\x01\x02"),
        "day": epoch_days(dt.date(2024, 2, 29)),
        # adaptive_time_microseconds: TIME is always microseconds.
        "tm": (12 * 3600 + 34 * 60 + 56) * 1_000_000 + 789_000,
        "tm_long": (838 * 3600 + 59 * 60 + 59) * 1_000_000,
        "dtm": epoch_micros(dt.datetime(2024, 1, 2, 3, 4, 5)) // 1000,  # DATETIME(0-3): ms
        "dtm6": epoch_micros(dt.datetime(2024, 1, 2, 3, 4, 5, 123456)),  # DATETIME(4-6): µs
        "ts": "2024-01-02T03:04:05.120Z",  # ZonedTimestamp, UTC, the column's precision
        "y": 2024,
        "e": "b",
        "s": "x,z",
        "b1": True,
        "b12": b64((0b101000000001).to_bytes(2, "little")),
        "j": '{"a":[1,2.5,"x"],"b":null}'
        if flavor == "mysql"
        else '{"a": [1, 2.5, "x"], "b": null}',
        "g": {
            "wkb": b64(bytes.fromhex("0101000000000000000000f03f0000000000000040")),
            "srid": None,  # BinlogGeometry.fromBytes: SRID 0 is null
        },
        "nothing": None,
    }


@pytest.mark.parametrize("reader", ["process", "thread"])
def test_every_type_round_trips(my_case, tmp_path, reader):
    my_case.ddl(TYPES_DDL)
    my_case.ddl("SET time_zone = '+00:00'")
    with daemon(tmp_path, my_case.config(["types"], reader=reader)) as d:
        my_case.execute(TYPES_ROW)
        [message] = consume(my_case.bootstrap, [my_case.topic("types")], expect=1)
        assert d.terminate() == 0
    assert message.key == {"id": 1}
    after = message.value["after"]
    expected = expected_types_row(my_case.flavor)
    mismatched = {k: (after.get(k), v) for k, v in expected.items() if after.get(k) != v}
    assert not mismatched, mismatched
    assert set(after) == set(expected)


def test_transactions_statements_key_changes_and_ddl(my_case, tmp_path):
    db = my_case.database
    my_case.ddl(f"CREATE TABLE {db}.orders (id INT PRIMARY KEY, qty INT, note VARCHAR(20))")
    my_case.ddl(f"CREATE TABLE {db}.lines (id INT PRIMARY KEY, order_id INT)")
    with daemon(tmp_path, my_case.config(["orders", "lines"])) as d:
        my_case.execute(
            f"INSERT INTO {db}.orders VALUES (1, 5, 'a'), (2, 6, 'b'), (3, 7, 'c')",  # multi-row
            f"INSERT INTO {db}.lines VALUES (10, 1)",
            f"UPDATE {db}.orders SET qty = qty + 1 WHERE id <= 2",  # one statement, two rows
        )
        my_case.execute(f"UPDATE {db}.orders SET id = 4 WHERE id = 3")  # key change
        my_case.execute(f"DELETE FROM {db}.orders WHERE id = 2", f"DELETE FROM {db}.lines")
        my_case.ddl(f"ALTER TABLE {db}.orders ADD COLUMN color VARCHAR(10) DEFAULT 'red'")
        my_case.execute(f"INSERT INTO {db}.orders (id, qty) VALUES (5, 1)")
        my_case.ddl(f"ALTER TABLE {db}.orders DROP COLUMN note")
        my_case.ddl(f"ALTER TABLE {db}.orders RENAME COLUMN color TO colour")
        my_case.ddl(f"ALTER TABLE {db}.orders MODIFY qty BIGINT")
        my_case.execute(f"UPDATE {db}.orders SET qty = 10000000000 WHERE id = 5")
        topics = [my_case.topic("orders"), my_case.topic("lines"), my_case.name]
        messages = consume(my_case.bootstrap, topics, expect=19)
        assert d.terminate() == 0

    orders = [m for m in messages if m.topic == my_case.topic("orders")]
    assert [(m.key["id"], m.value and m.value["op"]) for m in orders] == [
        (1, "c"),
        (2, "c"),
        (3, "c"),
        (1, "u"),
        (2, "u"),
        (3, "d"),
        (3, None),
        (4, "c"),  # key change: delete + tombstone + create
        (2, "d"),
        (2, None),
        (5, "c"),
        (5, "u"),
    ]
    assert orders[3].value["before"] == {"id": 1, "qty": 5, "note": "a"}
    assert orders[3].value["after"] == {"id": 1, "qty": 6, "note": "a"}
    # Rows of one statement share the event position; "row" tells them apart.
    assert (orders[3].value["source"]["pos"], orders[3].value["source"]["row"]) == (
        orders[4].value["source"]["pos"],
        0,
    )
    assert orders[4].value["source"]["row"] == 1
    assert orders[10].value["after"] == {"id": 5, "qty": 1, "note": None, "color": "red"}
    # Events after the DDL carry the new shape, with the names the binlog wrote them with.
    assert orders[11].value["before"] == {"id": 5, "qty": 1, "colour": "red"}
    assert orders[11].value["after"] == {"id": 5, "qty": 10000000000, "colour": "red"}

    source = orders[0].value["source"]
    assert source["connector"] == my_case.flavor
    assert (source["db"], source["table"], source["snapshot"]) == (
        my_case.database,
        "orders",
        "false",
    )
    assert source["gtid"] and source["file"] and source["pos"] > 0 and source["server_id"] > 0
    lines = [m for m in messages if m.topic == my_case.topic("lines")]
    assert lines[0].value["source"]["gtid"] == source["gtid"]  # one transaction

    ddl = [m for m in messages if m.topic == my_case.name]
    assert [m.value["ddl"].split()[0:2] for m in ddl] == [["ALTER", "TABLE"]] * 4
    assert all(m.key == {"databaseName": my_case.database} for m in ddl)
    assert ddl[0].value["databaseName"] == my_case.database


def test_ddl_elsewhere_does_not_lose_rows(my_case, tmp_path):
    """Other tables' DDL between two transactions of a captured table (regression: the
    table map cache was cleared on any DDL while the library, with frozen schemas, sends
    a table's map only once, so the captured table's next rows were dropped)."""
    db = my_case.database
    my_case.ddl(f"CREATE TABLE {db}.kept (id INT PRIMARY KEY)")
    with daemon(tmp_path, my_case.config(["kept"])) as d:
        for i in range(1, 6):
            my_case.execute(f"INSERT INTO {db}.kept VALUES ({i})")
            my_case.ddl(f"CREATE TABLE {db}.other{i} (id INT PRIMARY KEY)")
            my_case.ddl(f"CREATE DATABASE {db}_x{i}")
            my_case.ddl(f"DROP DATABASE {db}_x{i}")
        messages = consume(my_case.bootstrap, [my_case.topic("kept")], expect=5, timeout=30)
        assert d.terminate() == 0
    assert [m.key["id"] for m in messages] == [1, 2, 3, 4, 5]


def test_backlog_read_after_alter_keeps_the_names_it_was_written_with(my_case, tmp_path):
    db = my_case.database
    my_case.ddl(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, colour VARCHAR(10))")
    with my_case.conn.cursor() as cursor:
        if my_case.flavor == "mariadb":
            cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos")
        else:
            cursor.execute("SELECT @@GLOBAL.gtid_executed")
        before_writes = cursor.fetchone()[0].replace("\n", "")
    my_case.execute(f"INSERT INTO {db}.items VALUES (1, 'red')")
    my_case.ddl(f"ALTER TABLE {db}.items RENAME COLUMN colour TO color")
    my_case.ddl(f"ALTER TABLE {db}.items ADD COLUMN size INT")
    my_case.execute(f"INSERT INTO {db}.items VALUES (2, 'blue', 3)")
    # The daemon starts only now, from a position before all of it: a backlog.
    config = my_case.config(["items"], initial_position=before_writes)
    with daemon(tmp_path, config) as d:
        messages = consume(my_case.bootstrap, [my_case.topic("items")], expect=2)
        assert d.terminate() == 0
    assert [m.value["after"] for m in messages] == [
        {"id": 1, "colour": "red"},  # as written, not as the table is now
        {"id": 2, "color": "blue", "size": 3},
    ]


def test_transaction_of_100k_rows_keeps_memory_bounded(my_case, tmp_path):
    if my_case.flavor == "mysql":
        pytest.skip("run on MariaDB only, to keep the suite's time down (same code path)")
    db, rows = my_case.database, 100_000
    my_case.ddl(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, label VARCHAR(120), qty INT)")
    my_case.ddl("SET SESSION max_recursive_iterations = 1000000")
    with daemon(tmp_path, my_case.config(["items"])) as d:
        my_case.execute(
            f"INSERT INTO {db}.items WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
            f"FROM seq WHERE n < {rows}) SELECT n, CONCAT('label-', n, REPEAT('x', 100)), n % 7 FROM seq"
        )
        messages = consume(
            my_case.bootstrap, [my_case.topic("items")], expect=rows, timeout=300, settle=0.2
        )
        peak = peak_rss_mb(d.process.pid)
        assert d.terminate() == 0
    assert [m.key["id"] for m in messages] == list(range(1, rows + 1))
    print(f"\n100k-row transaction ({my_case.flavor}): daemon peak RSS {peak:.0f} MB")
    assert peak < 150, f"peak RSS {peak:.0f} MB: memory is not bounded"


def test_sigkill_mid_stream_resumes_from_the_stored_gtid_position(my_case, tmp_path):
    import threading
    import time

    db, total, per_tx = my_case.database, 20_000, 100
    my_case.ddl(f"CREATE TABLE {db}.ticks (id INT PRIMARY KEY, v INT)")
    errors: list[BaseException] = []

    def write() -> None:
        try:
            conn = connect(my_case.url)
            with conn.cursor() as cursor:
                for start in range(0, total, per_tx):
                    cursor.execute("BEGIN")
                    cursor.execute(
                        f"INSERT INTO {db}.ticks VALUES "
                        + ", ".join(f"({i}, {i})" for i in range(start + 1, start + per_tx + 1))
                    )
                    cursor.execute("COMMIT")
                    time.sleep(0.002)
            conn.close()
        except BaseException as exc:
            errors.append(exc)

    with daemon(tmp_path, my_case.config(["ticks"])) as d:
        writer = threading.Thread(target=write)
        writer.start()
        try:
            early = consume(my_case.bootstrap, [my_case.topic("ticks")], expect=3000, settle=0)
            assert len(early) >= 3000 and not errors, errors
            d.kill()  # SIGKILL in the middle of the stream
            time.sleep(0.5)
            d.start()
            writer.join(120)
            messages = consume(
                my_case.bootstrap, [my_case.topic("ticks")], expect=total, timeout=120, settle=2
            )
            assert d.terminate() == 0
        finally:
            writer.join()
    assert not errors, errors
    restarts = [line for line in d.log_text().splitlines() if '"streaming"' in line]
    assert len(restarts) == 2 and '"gtid_set":' in restarts[1]
    # Exactly-once: the stored offset and the records commit together.
    assert_each_once(messages, total, f"SIGKILL ({my_case.flavor})")


def test_reader_process_ends_with_the_daemon_and_its_death_is_survived(my_case, tmp_path):
    """The binlog reader process never outlives the daemon (even one killed with SIGKILL),
    and when the reader process dies the daemon starts over from its last committed
    offset with a new one: nothing lost, nothing twice."""
    if my_case.flavor == "mysql":
        pytest.skip("process handling does not depend on the flavour: MariaDB only")
    db = my_case.database
    my_case.ddl(f"CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    with daemon(tmp_path, my_case.config(["t"])) as d:
        [reader] = worker_processes(d.process.pid, "cdcd.sources.mysql.reader")
        os.kill(d.process.pid, signal.SIGKILL)
        d.process.wait(10)
        assert process_gone(reader, 10), "the reader process outlived a SIGKILLed daemon"
    with daemon(tmp_path, {**my_case.config(["t"]), "name": my_case.name + "b"}) as d:
        my_case.execute(*(f"INSERT INTO {db}.t VALUES ({i})" for i in range(1, 4)))
        consume(my_case.bootstrap, [my_case.topic("t")], expect=3)  # written and committed
        [reader] = worker_processes(d.process.pid, "cdcd.sources.mysql.reader")
        os.kill(reader, signal.SIGKILL)
        d.wait_for_log("the binlog reader process stopped (exit code -9)")
        my_case.execute(*(f"INSERT INTO {db}.t VALUES ({i})" for i in range(4, 7)))
        d.wait_for_log('"streaming"', count=2)
        readers = worker_processes(d.process.pid, "cdcd.sources.mysql.reader")
        assert [pid for pid in readers if pid != reader]
        messages = consume(my_case.bootstrap, [my_case.topic("t")], expect=6, settle=2)
        assert d.terminate() == 0
    assert sorted(m.key["id"] for m in messages) == [1, 2, 3, 4, 5, 6]


def test_an_event_of_more_than_16_mib_is_read_whole(my_case, tmp_path):
    """The protocol cuts a binlog event of 16 MiB or more into several packets: the row
    must arrive whole (written here to standard output, Kafka's default limits being far
    below such a record)."""
    if my_case.flavor == "mysql":
        pytest.skip("packet framing does not depend on the flavour: MariaDB only")
    size = 17 * 1024 * 1024 + 3
    with my_case.conn.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
        (allowed,) = cursor.fetchone()
        cursor.execute("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    try:
        big = connect(my_case.url)  # a new session sees the new max_allowed_packet
        my_case.ddl(f"CREATE TABLE {my_case.database}.blobs (id INT PRIMARY KEY, body LONGTEXT)")
        config = my_case.config(["blobs"], reader="process")
        config["sink"] = {"kind": "stdout"}
        with daemon(tmp_path, config) as d:
            with big.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {my_case.database}.blobs VALUES (1, REPEAT('ab', {size // 2})), "
                    f"(2, 'small')"
                )
            deadline = time.monotonic() + 60
            while d.out_path.read_bytes().count(b"\n") < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert d.terminate() == 0
        big.close()
    finally:
        with my_case.conn.cursor() as cursor:
            cursor.execute(f"SET GLOBAL max_allowed_packet = {allowed}")
    records = [orjson.loads(line) for line in d.out_path.read_bytes().splitlines()]
    assert [r["key"] for r in records] == [{"id": 1}, {"id": 2}]
    body = records[0]["value"]["after"]["body"]
    assert len(body) == size // 2 * 2 and body[:4] == "abab"
    assert records[1]["value"]["after"]["body"] == "small"


def test_sigkill_inside_a_huge_transaction_resumes_inside_it(my_case, tmp_path):
    """A transaction larger than transactions.split_after_events goes to Kafka in several
    Kafka transactions, each with a position inside it (its start and the count of its
    events written); killed in the middle, the daemon reads it again from its start and
    skips exactly what it had written."""
    # ~8 s of streaming: the kill lands inside. The split is not the default (20,000), nor
    # one of its divisors: the cuts must follow the configuration (reader process too).
    db, rows, split = my_case.database, 300_000, 7_000
    my_case.ddl(f"CREATE TABLE {db}.bulk (id INT PRIMARY KEY, label VARCHAR(40))")
    depth = "max_recursive_iterations" if my_case.flavor == "mariadb" else "cte_max_recursion_depth"
    my_case.ddl(f"SET SESSION {depth} = 1000000")
    config = {**my_case.config(["bulk"]), "transactions": {"split_after_events": split}}
    with daemon(tmp_path, config) as d:
        my_case.execute(
            f"INSERT INTO {db}.bulk WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
            f"FROM seq WHERE n < {rows}) SELECT n, CONCAT('row ', n) FROM seq"
        )
        early = consume(my_case.bootstrap, [my_case.topic("bulk")], expect=2000, settle=0)
        d.kill()
        assert len(early) >= 2000, len(early)
        d.start()
        messages = consume(
            my_case.bootstrap, [my_case.topic("bulk")], expect=rows, timeout=180, settle=2
        )
        assert d.terminate() == 0
    starts = [orjson.loads(line) for line in d.log_text().splitlines() if '"streaming"' in line]
    assert [start["skip_events"] for start in starts][0] == 0
    assert starts[1]["skip_events"] > 0 and starts[1]["skip_events"] % split == 0, starts
    assert_each_once(messages, rows, f"SIGKILL inside a transaction ({my_case.flavor})")
    assert len(early) < rows, "the kill came after the whole transaction was written"
