"""PostgreSQL -> Kafka, end to end: the real daemon, real PostgreSQL, real Kafka."""

from __future__ import annotations

import base64
import os
import random
import signal
import string
import threading
import time

import pytest
from support import (
    assert_each_once,
    consume,
    daemon,
    peak_rss_mb,
    process_gone,
    worker_processes,
)

pytestmark = pytest.mark.integration


def by_topic(messages, topic):
    return [m for m in messages if m.topic == topic]


@pytest.mark.parametrize("reader", ["process", "inline"])
def test_changes_arrive_in_commit_order_with_keys_and_topics(pg_case, tmp_path, reader):
    s = pg_case.schema
    pg_case.execute(
        f"CREATE TABLE {s}.customers (id bigint PRIMARY KEY, name text NOT NULL)",
        f"CREATE TABLE {s}.orders (id int PRIMARY KEY, customer_id bigint, amount numeric(10,2), note text)",
    )
    config = pg_case.config(["customers", "orders"])
    config["source"]["reader"] = reader
    with daemon(tmp_path, config) as d:
        pg_case.execute(
            f"INSERT INTO {s}.customers VALUES (1, 'ann')",
            f"INSERT INTO {s}.orders VALUES (10, 1, 12.50, 'first'), (11, 1, 3.00, NULL)",
        )
        pg_case.execute(
            f"UPDATE {s}.orders SET amount = 13.75 WHERE id = 10",
            f"DELETE FROM {s}.orders WHERE id = 11",
            f"INSERT INTO {s}.customers VALUES (2, 'bob')",
        )
        pg_case.execute(f"UPDATE {s}.customers SET id = 3 WHERE id = 2")
        messages = consume(
            pg_case.bootstrap, [pg_case.topic("customers"), pg_case.topic("orders")], expect=10
        )
        assert d.terminate() == 0

    customers = by_topic(messages, pg_case.topic("customers"))
    orders = by_topic(messages, pg_case.topic("orders"))
    assert [(m.key, m.value and m.value["op"]) for m in customers] == [
        ({"id": 1}, "c"),
        ({"id": 2}, "c"),
        ({"id": 2}, "d"),  # a primary-key change: delete of the old key, its tombstone ...
        ({"id": 2}, None),
        ({"id": 3}, "c"),  # ... and a create of the new one, as Debezium does
    ]
    assert [(m.key, m.value and m.value["op"]) for m in orders] == [
        ({"id": 10}, "c"),
        ({"id": 11}, "c"),
        ({"id": 10}, "u"),
        ({"id": 11}, "d"),
        ({"id": 11}, None),  # tombstone after the delete
    ]
    # numeric(10,2) is a Kafka Connect Decimal: base64 of the unscaled big-endian integer.
    first = orders[0].value
    assert first["before"] is None
    assert first["after"] == {
        "id": 10,
        "customer_id": 1,
        "amount": base64.b64encode((1250).to_bytes(2, "big", signed=True)).decode(),
        "note": "first",
    }
    assert (
        orders[2].value["after"]["amount"] == base64.b64encode((1375).to_bytes(2, "big")).decode()
    )
    assert orders[2].value["before"] is None  # REPLICA IDENTITY DEFAULT: no old row on update
    assert orders[3].value["before"]["id"] == 11  # the key columns of the deleted row
    assert orders[3].value["after"] is None

    source = first["source"]
    assert source["connector"] == "postgresql"
    assert source["name"] == pg_case.name
    assert source["db"] == "cdcd_test"
    assert (source["schema"], source["table"]) == (s, "orders")
    assert source["snapshot"] == "false"
    assert isinstance(source["lsn"], int) and isinstance(source["txId"], int)
    assert abs(source["ts_ms"] - time.time() * 1000) < 120_000
    assert first["op"] == "c" and first["ts_ms"] >= source["ts_ms"]
    assert first["transaction"] is None

    # Commit order across tables: transactions' ids and LSNs rise in the order committed.
    events = sorted(
        (m.value["source"]["lsn"], m.value["source"]["txId"]) for m in messages if m.value
    )
    tx_order = [tx for _, tx in events]
    assert tx_order == sorted(tx_order)
    assert len(set(tx_order)) == 3

    # SIGTERM: drained, final position reported, the slot confirmed past the last commit.
    assert '"source closed"' in d.log_text()
    assert pg_case.slot_confirmed_lsn() >= max(lsn for lsn, _ in events)


def test_truncate_no_primary_key_nulls_and_toast(pg_case, tmp_path):
    s = pg_case.schema
    big = "".join(random.choices(string.ascii_letters + string.digits, k=200_000))  # TOASTed
    pg_case.execute(
        f"CREATE TABLE {s}.docs (id int PRIMARY KEY, title text, body text, n int)",
        f"CREATE TABLE {s}.logbook (line text, at int)",  # no primary key
        f"ALTER TABLE {s}.logbook REPLICA IDENTITY FULL",
    )
    with daemon(tmp_path, pg_case.config(["docs", "logbook"])) as d:
        pg_case.execute(f"INSERT INTO {s}.docs VALUES (1, NULL, '{big}', NULL)")
        pg_case.execute(f"UPDATE {s}.docs SET n = 5 WHERE id = 1")  # body unchanged: not sent
        pg_case.execute(f"INSERT INTO {s}.logbook VALUES ('a', 1), ('b', 2)")
        pg_case.execute(f"DELETE FROM {s}.logbook WHERE at = 2")
        pg_case.execute(f"TRUNCATE {s}.docs, {s}.logbook")
        topics = [pg_case.topic("docs"), pg_case.topic("logbook")]
        messages = consume(pg_case.bootstrap, topics, expect=7)
        assert d.terminate() == 0

    docs = by_topic(messages, pg_case.topic("docs"))
    assert [m.value["op"] for m in docs] == ["c", "u", "t"]
    assert docs[0].value["after"] == {"id": 1, "title": None, "body": big, "n": None}
    # An unchanged TOASTed value is not in the WAL: Debezium's placeholder stands for it.
    assert docs[1].value["after"] == {
        "id": 1,
        "title": None,
        "body": "__debezium_unavailable_value",
        "n": 5,
    }
    truncate = docs[2]
    assert (
        truncate.key is None
        and truncate.value["before"] is None
        and truncate.value["after"] is None
    )

    logbook = by_topic(messages, pg_case.topic("logbook"))
    assert [(m.key, m.value["op"]) for m in logbook] == [
        (None, "c"),
        (None, "c"),
        (None, "d"),
        (None, "t"),
    ]
    assert logbook[2].value["before"] == {"line": "b", "at": 2}  # REPLICA IDENTITY FULL


def test_transaction_of_100k_rows_keeps_memory_bounded(pg_case, tmp_path):
    s = pg_case.schema
    rows = 100_000
    pg_case.execute(f"CREATE TABLE {s}.items (id int PRIMARY KEY, label text, qty int)")
    with daemon(tmp_path, pg_case.config(["items"])) as d:
        pg_case.execute(
            f"INSERT INTO {s}.items SELECT g, 'label-' || g || repeat('x', 100), g % 7 "
            f"FROM generate_series(1, {rows}) g"
        )
        messages = consume(
            pg_case.bootstrap, [pg_case.topic("items")], expect=rows, timeout=240, settle=0.2
        )
        peak = peak_rss_mb(d.process.pid)
        assert d.terminate() == 0
    assert len(messages) == rows
    assert [m.key["id"] for m in messages] == list(range(1, rows + 1))
    print(f"\n100k-row transaction: daemon peak RSS {peak:.0f} MB")
    assert peak < 150, f"peak RSS {peak:.0f} MB: memory is not bounded"


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_sigkill_mid_stream_loses_nothing(pg_case, tmp_path, reader):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.ticks (id int PRIMARY KEY, v int)")
    total, per_tx = 20_000, 100
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            _write()
        except BaseException as exc:
            errors.append(exc)
            raise

    def _write() -> None:
        import psycopg

        with psycopg.connect(pg_case.dsn, autocommit=True) as conn:
            for start in range(0, total, per_tx):
                with conn.transaction():
                    conn.execute(
                        f"INSERT INTO {s}.ticks SELECT g, g FROM generate_series(%s::int, %s::int) g",
                        (start + 1, start + per_tx),
                    )
                time.sleep(0.002)
                if stop.is_set():
                    return

    config = pg_case.config(["ticks"])
    config["source"]["reader"] = reader
    with daemon(tmp_path, config) as d:
        writer = threading.Thread(target=write)
        writer.start()
        try:
            early = consume(
                pg_case.bootstrap, [pg_case.topic("ticks")], expect=3000, timeout=60, settle=0
            )
            assert len(early) >= 3000 and not errors, errors
            d.kill()  # SIGKILL in the middle of the stream
            time.sleep(0.5)
            d.start()
            writer.join(120)
            messages = consume(
                pg_case.bootstrap, [pg_case.topic("ticks")], expect=total, timeout=120, settle=2
            )
            assert d.terminate() == 0
        finally:
            stop.set()
            writer.join()

    assert not errors, errors
    assert_each_once(messages, total, "SIGKILL test")


def test_reader_process_ends_with_the_daemon_and_its_death_is_survived(pg_case, tmp_path):
    """The replication reader process never outlives the daemon (even one killed with
    SIGKILL), and when it dies the daemon starts over from its last committed offset with
    a new one: nothing lost, nothing twice. The positions the daemon acknowledges reach
    the slot through it."""
    s = pg_case.schema
    module = "cdcd.sources.postgres.reader"
    pg_case.execute(f"CREATE TABLE {s}.t (id int PRIMARY KEY)")
    config = pg_case.config(["t"])
    config["source"].update(reader="process", status_interval_s=0.5)
    with daemon(tmp_path, config) as d:
        [reader] = worker_processes(d.process.pid, module)
        os.kill(d.process.pid, signal.SIGKILL)
        d.process.wait(10)
        assert process_gone(reader, 10), "the reader process outlived a SIGKILLed daemon"
    second = tmp_path / "second"  # a log of its own
    second.mkdir()
    with daemon(second, config) as d:
        before = pg_case.slot_confirmed_lsn()
        for i in range(1, 4):
            pg_case.execute(f"INSERT INTO {s}.t VALUES ({i})")
        consume(pg_case.bootstrap, [pg_case.topic("t")], expect=3)  # written and committed
        deadline = time.monotonic() + 10
        while pg_case.slot_confirmed_lsn() <= before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pg_case.slot_confirmed_lsn() > before, "no acknowledgement reached the slot"
        [reader] = worker_processes(d.process.pid, module)
        os.kill(reader, signal.SIGKILL)
        d.wait_for_log("the replication reader process stopped (exit code -9)")
        for i in range(4, 7):
            pg_case.execute(f"INSERT INTO {s}.t VALUES ({i})")
        d.wait_for_log('"streaming"', count=2)
        readers = worker_processes(d.process.pid, module)
        assert [pid for pid in readers if pid != reader]
        messages = consume(pg_case.bootstrap, [pg_case.topic("t")], expect=6, settle=2)
        assert d.terminate() == 0
    assert sorted(m.key["id"] for m in messages) == [1, 2, 3, 4, 5, 6]
