"""Positions the slot cannot continue from exactly: the daemon stops, saying what is gone
and between which positions, instead of creating a slot and streaming on past a gap; and
`cdcd offsets set/reset` refuse positions the server never had. Real PostgreSQL and Kafka:
rows written are counted against the rows a read_committed consumer sees."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from offsets_support import offset_history, start_again
from support import RangeWriter, consume, daemon, run_cli, write_config

pytestmark = pytest.mark.integration


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def slot_exists(pg_case) -> bool:
    row = pg_case.conn.execute(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (f"cdcd_{pg_case.name}",)
    ).fetchone()
    return row is not None


def drop_slot_under_the_daemon(pg_case, timeout: float = 30) -> None:
    """Terminate the daemon's walsender and drop its slot before it reconnects."""
    slot = f"cdcd_{pg_case.name}"
    deadline = time.monotonic() + timeout
    while True:
        pg_case.conn.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE slot_name = %s AND active_pid IS NOT NULL",
            (slot,),
        )
        try:
            pg_case.conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            return
        except psycopg.errors.ObjectInUse:
            assert time.monotonic() < deadline, "the slot stayed in use"
            time.sleep(0.01)


def ticks_writer(pg_case, total: int) -> RangeWriter:
    s = pg_case.schema

    def write(ranges: Iterator[tuple[int, int]]) -> None:
        with psycopg.connect(pg_case.dsn, autocommit=True) as conn:
            for first, last in ranges:
                conn.execute(
                    f"INSERT INTO {s}.ticks SELECT g, g FROM generate_series(%s::int, %s::int) g",
                    (first, last),
                )

    return RangeWriter(write, total, per_tx=10, pause=0.01)  # ~1,000 rows/s


def assert_a_prefix_and_stopped(messages, written: int, label: str) -> int:
    """What Kafka holds is ids 1..k, each once, k < ``written``: nothing after a gap."""
    seen = [m.key["id"] for m in messages if m.value is not None]
    k = len(seen)
    print(f"\n{label}: {written} rows written, {k} in Kafka, {written - k} not streamed")
    assert sorted(seen) == list(range(1, k + 1)), "a gap or a duplicate in Kafka"
    assert k < written, "the daemon streamed everything: the loss was not provoked"
    return k


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_a_slot_dropped_while_streaming_stops_the_daemon(pg_case, tmp_path, reader):
    pg_case.execute(f"CREATE TABLE {pg_case.schema}.ticks (id int PRIMARY KEY, v int)")
    config = pg_case.config(["ticks"])
    config["source"]["reader"] = reader
    writer = ticks_writer(pg_case, 6000)
    topic = pg_case.topic("ticks")
    with daemon(tmp_path, config) as d:
        writer.start()
        consume(pg_case.bootstrap, [topic], expect=1000, settle=0)
        drop_slot_under_the_daemon(pg_case)
        assert d.process is not None
        assert d.process.wait(60) == 1, "the daemon went on without its slot"
        writer.finish()
    last = d.log_text().splitlines()[-1]
    print(f"\n{last}")
    assert last.startswith(f"cdcd: error: replication slot 'cdcd_{pg_case.name}' does not exist")
    assert "cdcd offsets reset --to latest" in last
    assert not slot_exists(pg_case), "cdcd created a new slot over its stored offset"
    assert "replication slot created" not in d.log_text().split('"started"', 1)[1]
    messages = consume(pg_case.bootstrap, [topic], expect=6000, timeout=10, settle=1)
    assert_a_prefix_and_stopped(messages, 6000, f"slot dropped while streaming ({reader})")


def test_a_slot_created_again_while_stopped_is_refused(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.ticks (id int PRIMARY KEY, v int)")
    config = pg_case.config(["ticks"])
    topic = pg_case.topic("ticks")
    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.ticks SELECT g, g FROM generate_series(1, 100) g")
        consume(pg_case.bootstrap, [topic], expect=100, settle=0)
        assert d.terminate() == 0
        slot = f"cdcd_{pg_case.name}"
        pg_case.conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        pg_case.execute(f"INSERT INTO {s}.ticks SELECT g, g FROM generate_series(101, 150) g")
        pg_case.conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        pg_case.execute(f"INSERT INTO {s}.ticks SELECT g, g FROM generate_series(151, 160) g")
        result = run_cli("run", "--config", str(d.config_path), timeout=60)
    print(f"\n{result.stderr.splitlines()[-1]}")
    assert result.returncode == 1
    assert "is before replication slot" in result.stderr and "confirmed position" in result.stderr
    assert "cdcd offsets reset --to earliest" in result.stderr
    messages = consume(pg_case.bootstrap, [topic], expect=160, timeout=10, settle=1)
    assert_a_prefix_and_stopped(messages, 160, "slot dropped and created again")


def test_offsets_set_refuses_positions_the_slot_cannot_stream_from(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.t (id int PRIMARY KEY)")
    config = pg_case.config(["t"])
    path = write_config(tmp_path / "offsets.toml", config)
    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.t VALUES (1)")
        consume(pg_case.bootstrap, [pg_case.topic("t")], expect=1, settle=0)
        assert d.terminate() == 0
    before = offset_history(pg_case.bootstrap, pg_case.name)

    future = run_cli("offsets", "set", "--config", str(path), "--position", "FF/0", "--yes")
    print(f"\n{future.stderr.strip()}")
    assert future.returncode == 1
    assert "FF/0 is past the end of the WAL" in future.stderr

    past = run_cli("offsets", "set", "--config", str(path), "--position", "0/10", "--yes")
    print(past.stderr.strip())
    assert past.returncode == 1
    assert "0/10 is before replication slot" in past.stderr
    assert offset_history(pg_case.bootstrap, pg_case.name) == before, "something was stored"

    # Without its slot, only a reset can go on: it creates the slot and stores its start.
    pg_case.conn.execute("SELECT pg_drop_replication_slot(%s)", (f"cdcd_{pg_case.name}",))
    refused = run_cli(
        "offsets", "set", "--config", str(path), "--position", before[-1]["lsn"], "--yes"
    )
    assert refused.returncode == 1 and "does not exist" in refused.stderr
    reset = run_cli("offsets", "reset", "--config", str(path), "--to", "latest", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert slot_exists(pg_case)
    stored = offset_history(pg_case.bootstrap, pg_case.name)[-1]
    assert lsn(stored["lsn"]) >= pg_case.slot_confirmed_lsn()
    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.t VALUES (2)")
        messages = consume(pg_case.bootstrap, [pg_case.topic("t")], expect=2, settle=1)
        assert d.terminate() == 0
    assert [m.key["id"] for m in messages if m.value is not None] == [1, 2]


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_wal_without_changes_moves_the_slot_only_through_kafka(pg_case, tmp_path, reader):
    """Keepalives over WAL that holds nothing for the daemon (another table's writes):
    heartbeat offsets are stored, the slot follows them and never passes them, and a
    restart resumes without taking the slot for a lost one."""
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.t (id int PRIMARY KEY)", f"CREATE TABLE {s}.other (id int)")
    config = pg_case.config(["t"])
    config["source"].update(reader=reader, heartbeat_interval_s=0.5)
    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.t VALUES (1)")
        consume(pg_case.bootstrap, [pg_case.topic("t")], expect=1, settle=0)
        first = lsn(offset_history(pg_case.bootstrap, pg_case.name)[-1]["lsn"])
        deadline = time.monotonic() + 60
        while True:
            pg_case.execute(f"INSERT INTO {s}.other SELECT generate_series(1, 100)")
            confirmed = pg_case.slot_confirmed_lsn()  # first: the stored offset is as late
            stored = lsn(offset_history(pg_case.bootstrap, pg_case.name)[-1]["lsn"])
            assert confirmed <= stored, "the slot moved past what Kafka holds"
            if confirmed > first:
                break
            assert time.monotonic() < deadline, "the slot never moved over idle WAL"
            time.sleep(0.3)
        assert d.terminate() == 0
        assert pg_case.slot_confirmed_lsn() <= lsn(
            offset_history(pg_case.bootstrap, pg_case.name)[-1]["lsn"]
        )
        start_again(d)
        pg_case.execute(f"INSERT INTO {s}.t VALUES (2)")
        messages = consume(pg_case.bootstrap, [pg_case.topic("t")], expect=2, settle=1)
        assert d.terminate() == 0
    assert [m.key["id"] for m in messages if m.value is not None] == [1, 2]
