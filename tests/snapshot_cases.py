"""The snapshot tests every source runs (real daemon, real database, real Kafka): a source's
test module binds ``target`` and imports these (tests/sources/<db>/test_snapshot.py)."""

from __future__ import annotations

import os
import time

from snapshot_support import (
    ChurnWriter,
    Target,
    assert_replay_equals,
    insert_rows,
    reads,
    replay,
    snapshot_marks,
)
from support import consume, daemon, peak_rss_mb, run_cli, write_config

LONG = os.environ.get("CDCD_TEST_LONG") == "1"


def test_initial_snapshot_then_the_stream_under_a_concurrent_writer(target: Target, tmp_path):
    target.create("orders", 3000)
    writer = ChurnWriter(target, "orders", 3000)
    writer.start()
    config = target.config(["orders"], chunk_size=200)
    with daemon(tmp_path, config, start=False) as d:
        d.start(wait_for="snapshot completed", timeout=120)
        time.sleep(0.5)
        writer.finish()
        state, messages = replay(target, "orders", expect=3000)
    assert_replay_equals(state, target.table("orders"), messages)
    counts = reads(messages)
    assert counts and max(counts.values()) == 1, "a row read twice"
    assert writer.transactions > 10
    marks = snapshot_marks(messages)
    assert marks[0] == "first" and marks[-1] == "last" and set(marks[1:-1]) == {"true"}


def test_killed_during_the_initial_snapshot_it_resumes_after_the_last_chunk(
    target: Target, tmp_path
):
    total = 200_000 if LONG else 30_000
    target.create("big", total)
    # Small chunks, one Kafka transaction each: slow enough to be killed half-way.
    config = target.config(["big"], chunk_size=100)
    config.setdefault("pipeline", {})["max_batch_events"] = 100
    with daemon(tmp_path, config, start=False) as d:
        d.start(wait_for='"snapshot"', timeout=60)
        before = []
        deadline = time.monotonic() + 60
        while len(before) < total // 4 and time.monotonic() < deadline:
            before = consume(target.bootstrap, [target.topic("big")], expect=total // 4, timeout=5)
        assert len(before) >= total // 4, "the snapshot did not get going"
        d.kill()
        target.run(f"UPDATE {target.namespace}.big SET v = 5 WHERE id IN (1, {total})")
        target.run(f"DELETE FROM {target.namespace}.big WHERE id = {total - 1}")
        d.start(wait_for="snapshot completed", timeout=180)
        target.run(f"INSERT INTO {target.namespace}.big (id, v, note) VALUES (-1, 0, 'end')")
        state, messages = replay(target, "big", expect=total)
        log = d.log_text()
    assert_replay_equals(state, target.table("big"), messages)
    counts = reads(messages)
    assert max(counts.values()) == 1, "a row written twice to Kafka"
    resumed = [line for line in log.splitlines() if '"why":"resumed"' in line]
    assert resumed, "the second start did not resume the snapshot"
    # It went on after what Kafka held when it was killed, not from the first row.
    assert _rows_so_far(resumed[0]) >= len(before)
    assert _rows_so_far(resumed[0]) < total


def _rows_so_far(line: str) -> int:
    import json

    return int(json.loads(line)["rows_so_far"])


def test_an_incremental_snapshot_on_a_signal_under_updates_and_deletes(target: Target, tmp_path):
    target.create("items", 4000)
    config = target.config(["items"], mode="no_data", chunk_size=300)
    with daemon(tmp_path, config) as d:
        writer = ChurnWriter(target, "items", 4000, seed=11)
        writer.start()
        result = run_cli(
            "snapshot",
            "--config",
            str(d.config_path),
            "--table",
            target.table_id("items"),
            timeout=180,
        )
        writer.finish()
        assert result.returncode == 0, result.stdout + result.stderr
        assert "COMPLETED" in result.stdout
        state, messages = replay(target, "items", expect=4000)
    assert_replay_equals(state, target.table("items"), messages)
    counts = reads(messages)
    assert max(counts.values()) == 1
    assert set(snapshot_marks(messages)) == {"incremental"}
    # Debezium's notifications, in the order Debezium sends them, with its fields.
    notes = [
        m.value
        for m in consume(target.bootstrap, ["cdcd-notifications"], expect=10**6, timeout=5)
        if m.key == target.name
    ]
    kinds = [n["type"] for n in notes]
    assert kinds[0] == "STARTED" and kinds[-2:] == ["TABLE_SCAN_COMPLETED", "COMPLETED"]
    assert set(kinds[1:-2]) == {"IN_PROGRESS"}
    assert {n["aggregate_type"] for n in notes} == {"Incremental Snapshot"}
    assert all(
        set(n) == {"id", "aggregate_type", "type", "additional_data", "timestamp"} for n in notes
    )
    progress = notes[1]["additional_data"]
    assert progress["current_collection_in_progress"] == target.table_id("items")
    assert progress["connector_name"] == target.name and "last_processed_key" in progress


def test_additional_conditions_pause_resume_stop_and_refusals(target: Target, tmp_path):
    target.create("parts", 20_000)
    target.run(f"CREATE TABLE {target.namespace}.nokey (id INT, v INT)")
    config = target.config(["parts", "nokey"], mode="no_data", chunk_size=10)
    with daemon(tmp_path, config) as d:
        cfg = str(d.config_path)
        where = run_cli(
            "snapshot", "-c", cfg, "-t", target.table_id("parts"), "--where", "id <= 150"
        )
        assert where.returncode == 0, where.stderr
        refused = run_cli("snapshot", "-c", cfg, "-t", target.table_id("nokey"))
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"{target.table_id('nokey')} has no primary key" in refused.stderr
        idle = run_cli("snapshot", "-c", cfg, "--pause")
        assert idle.returncode == 1 and "no snapshot is running" in idle.stderr
        # A snapshot of every row, paused at once (both signals sent back to back).
        send_signals(
            target, config, ("execute-snapshot", [target.table_id("parts")]), ("pause-snapshot", [])
        )
        _wait_status(cfg, "paused")
        resumed = run_cli("snapshot", "-c", cfg, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        stopped = run_cli("snapshot", "-c", cfg, "--stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "ABORTED" in stopped.stdout
        assert "no snapshot is running" in run_cli("snapshot", "-c", cfg, "--status").stdout
    messages = consume(target.bootstrap, [target.topic("parts")], expect=150, timeout=10)
    counts = reads(messages)
    # The conditioned snapshot read ids 1..150 exactly once; the stopped one fewer than all.
    assert max(counts.values()) <= 2
    assert {i for i in counts if i <= 150} == set(range(1, 151))
    assert len(counts) < 20_000


def send_signals(target: Target, config: dict, *signals: tuple[str, list[str]]) -> None:
    """Signals written straight to the signal topic, one after the other."""
    import asyncio
    import uuid

    from cdcd.sinks.kafka.signals import send_signal
    from cdcd.snapshot.signals import Signal, signal_value

    async def send() -> None:
        for kind, tables in signals:
            signal = Signal(str(uuid.uuid4()), kind, tuple(tables))
            value = signal_value(signal)
            await send_signal(
                {"bootstrap_servers": target.bootstrap},
                "cdcd-signals",
                config["sink"]["topic_prefix"],
                value,
            )

    asyncio.run(send())


def _wait_status(config_path: str, word: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = run_cli("snapshot", "-c", config_path, "--status").stdout
        if word in status or time.monotonic() > deadline:
            assert word in status, status
            return status
        time.sleep(0.5)


def test_the_snapshot_is_refused_by_a_stopped_daemon(target: Target, tmp_path):
    target.create("quiet", 1)
    path = write_config(tmp_path / "quiet.toml", target.config(["quiet"]))
    result = run_cli("snapshot", "-c", str(path), "-t", target.table_id("quiet"))
    assert result.returncode == 1
    assert "is not running" in result.stderr


def test_memory_stays_bounded_over_a_large_table(target: Target, tmp_path):
    total = 1_000_000 if LONG else 100_000
    target.create("huge", total)
    config = target.config(["huge"])
    with daemon(tmp_path, config, start=False) as d:
        d.start(wait_for="snapshot completed", timeout=600)
        assert d.process is not None
        rss = peak_rss_mb(d.process.pid)
    assert rss < 150, f"peak RSS {rss:.0f} MB over a {total}-row snapshot"


def test_killed_during_an_incremental_snapshot_it_resumes_after_the_last_chunk(
    target: Target, tmp_path
):
    total = 30_000
    target.create("again", total)
    config = target.config(["again"], mode="no_data", chunk_size=100)
    config.setdefault("pipeline", {})["max_batch_events"] = 100
    with daemon(tmp_path, config) as d:
        send_signals(target, config, ("execute-snapshot", [target.table_id("again")]))
        before: list = []
        deadline = time.monotonic() + 60
        while len(before) < total // 4 and time.monotonic() < deadline:
            before = consume(
                target.bootstrap, [target.topic("again")], expect=total // 4, timeout=5
            )
        assert len(before) >= total // 4, "the snapshot did not get going"
        d.kill()
        target.run(f"UPDATE {target.namespace}.again SET v = 9 WHERE id IN (2, {total - 2})")
        d.start(wait_for="snapshot completed", timeout=180)
        target.run(f"INSERT INTO {target.namespace}.again (id, v, note) VALUES (-1, 0, 'end')")
        state, messages = replay(target, "again", expect=total)
        log = d.log_text()
    assert_replay_equals(state, target.table("again"), messages)
    assert max(reads(messages).values()) == 1, "a row written twice to Kafka"
    resumed = [line for line in log.splitlines() if '"why":"resumed"' in line]
    assert resumed and len(before) <= _rows_so_far(resumed[0]) < total


def test_composite_keys_and_a_column_added_during_an_incremental_snapshot(target: Target, tmp_path):
    third = "c UUID" if target.kind == "postgres" else "c BINARY(16)"
    value = (
        (lambda i: f"'00000000-0000-0000-0000-{i:012d}'")
        if target.kind == "postgres"
        else (lambda i: f"UNHEX('{i:032d}')")
    )
    table = f"{target.namespace}.combo"
    target.run(
        f"CREATE TABLE {table} (a INT, b VARCHAR(10), {third}, v INT, PRIMARY KEY (a, b, c))"
    )
    texts = ["NULL", "", "null", "\\\\N", "x"]
    rows = [(a, b, i) for i, (a, b) in enumerate((a, b) for a in range(40) for b in texts)]
    values = ", ".join(f"({a}, '{b}', {value(i)}, {i})" for a, b, i in rows)
    target.run(f"INSERT INTO {table} (a, b, c, v) VALUES {values}")
    config = target.config(["combo"], mode="no_data", chunk_size=2)
    with daemon(tmp_path, config) as d:
        cfg = str(d.config_path)
        started = run_cli("snapshot", "-c", cfg, "-t", target.table_id("combo"), "--no-wait")
        assert started.returncode == 0, started.stderr
        target.run(f"ALTER TABLE {table} ADD COLUMN extra INT DEFAULT 7")
        target.run(f"UPDATE {table} SET v = -1 WHERE a = 39")
        d.wait_for_log("snapshot completed", timeout=120)
    messages = consume(target.bootstrap, [target.topic("combo")], expect=len(rows), timeout=30)
    read = [m for m in messages if m.value is not None and m.value["op"] == "r"]
    keys = [(m.key["a"], m.key["b"], m.key["c"]) for m in read]
    assert len(keys) == len(set(keys)), "a row read twice"
    changed = {
        (m.key["a"], m.key["b"], m.key["c"]) for m in messages if m.value and m.value["op"] == "u"
    }
    # Every row is in the topic: read, or changed by the stream while the snapshot ran.
    assert len(set(keys) | changed) == len(rows)
    # a set in Python: MySQL's DISTINCT would fold 'NULL' and 'null' (case-insensitive collation)
    stored = {row[0] for row in target.query(f"SELECT b FROM {table}")}
    assert {m.key["b"] for m in read} == stored and len(stored) == len(texts)  # NULL-looking
    assert any("extra" in m.value["after"] for m in read), "no chunk read after the new column"


def test_an_initial_snapshot_reads_a_table_without_a_key_whole(target: Target, tmp_path):
    table = f"{target.namespace}.logbook"
    target.run(f"CREATE TABLE {table} (id INT, v INT, note VARCHAR(40))")
    insert_rows(target.run, table, list(range(1, 501)) + [7, 7])  # repeated rows too
    config = target.config(["logbook"], chunk_size=64)
    with daemon(tmp_path, config, start=False) as d:
        d.start(wait_for="snapshot completed", timeout=60)
        target.run(f"INSERT INTO {table} (id, v, note) VALUES (1000, 1, 'after')")
        messages = consume(target.bootstrap, [target.topic("logbook")], expect=503, timeout=30)
    read = [m for m in messages if m.value["op"] == "r"]
    assert sorted(m.value["after"]["id"] for m in read) == sorted(list(range(1, 501)) + [7, 7])
    assert all(m.key is None for m in read)
    assert [m.value["op"] for m in messages if m.value["after"]["id"] == 1000] == ["c"]


def test_two_tables_read_at_once_with_debeziums_marks(target: Target, tmp_path):
    target.create("left_t", 700)
    target.create("right_t", 500)
    config = target.config(["left_t", "right_t"], max_threads=2, chunk_size=64)
    with daemon(tmp_path, config, start=False) as d:
        d.start(wait_for="snapshot completed", timeout=60)
        target.run(f"INSERT INTO {target.namespace}.left_t (id, v, note) VALUES (-1, 0, 'end')")
        target.run(f"INSERT INTO {target.namespace}.right_t (id, v, note) VALUES (-1, 0, 'end')")
        left, left_messages = replay(target, "left_t", expect=700)
        right, right_messages = replay(target, "right_t", expect=500)
    assert_replay_equals(left, target.table("left_t"), left_messages)
    assert_replay_equals(right, target.table("right_t"), right_messages)
    marks = snapshot_marks(left_messages) + snapshot_marks(right_messages)
    # One table's first record is the snapshot's first, the other's is first of its own;
    # one table's last record is the snapshot's last, the other's last of its own.
    assert sorted(m for m in marks if m != "true") == [
        "first",
        "first_in_data_collection",
        "last",
        "last_in_data_collection",
    ]
