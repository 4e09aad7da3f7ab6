"""Exactly-once from PostgreSQL: offsets in Kafka, resume, fast-forward, cut transactions,
fencing, transaction metadata, at-least-once mode. Real daemon, PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import psycopg
import pytest
from offsets_support import offset_history, start_again
from support import consume, daemon, run_cli, write_config

pytestmark = pytest.mark.integration


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def ids(messages):
    return [m.key["id"] for m in messages if m.value is not None]


def test_offsets_are_stored_with_the_changes_and_resumed(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.t (id int PRIMARY KEY, v text)")
    config = pg_case.config(["t"])
    with daemon(tmp_path, config) as d:
        for i in range(1, 4):
            pg_case.execute(f"INSERT INTO {s}.t VALUES ({i}, 'x')")
        consume(pg_case.bootstrap, [pg_case.topic("t")], expect=3)
        assert d.terminate() == 0
        history = offset_history(pg_case.bootstrap, pg_case.name)
        last = history[-1]
        assert last["kind"] == "postgres" and last["index"] == 0
        assert abs(last["ts_ms"] - time.time() * 1000) < 60_000
        # SIGTERM drained: the slot was told everything in Kafka (and, on keepalives,
        # WAL after it without changes for this daemon).
        assert lsn(last["lsn"]) <= pg_case.slot_confirmed_lsn()

        for i in range(4, 7):  # while the daemon is stopped
            pg_case.execute(f"INSERT INTO {s}.t VALUES ({i}, 'y')")
        start_again(d)
        assert f'"offset":"{last["lsn"]}#0"' in d.log_text()
        messages = consume(pg_case.bootstrap, [pg_case.topic("t")], expect=6, settle=2)
        assert d.terminate() == 0
    assert ids(messages) == [1, 2, 3, 4, 5, 6]


def test_reset_to_latest_fast_forwards_the_slot(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.t (id int PRIMARY KEY)")
    config = pg_case.config(["t"])
    path = write_config(tmp_path / "reset.toml", config)
    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.t VALUES (1)")
        consume(pg_case.bootstrap, [pg_case.topic("t")], expect=1)
        assert d.terminate() == 0
        pg_case.execute(f"INSERT INTO {s}.t VALUES (2)")  # skipped by the reset below
        pg_case.execute(f"INSERT INTO {s}.t VALUES (3)")
        result = run_cli("offsets", "reset", "--config", str(path), "--to", "latest", "--yes")
        assert result.returncode == 0, result.stderr
        stored = offset_history(pg_case.bootstrap, pg_case.name)[-1]
        assert pg_case.slot_confirmed_lsn() < lsn(stored["lsn"])  # the slot is behind
        start_again(d)
        assert '"fast-forwarding the slot past what Kafka already holds"' in d.log_text()
        pg_case.execute(f"INSERT INTO {s}.t VALUES (4)")
        messages = consume(pg_case.bootstrap, [pg_case.topic("t")], expect=2, settle=2)
        assert d.terminate() == 0
    assert ids(messages) == [1, 4]
    assert pg_case.slot_confirmed_lsn() > lsn(stored["lsn"])


def test_huge_transaction_is_cut_and_resumed_inside_after_sigkill(pg_case, tmp_path):
    s = pg_case.schema
    rows = 150_000
    pg_case.execute(f"CREATE TABLE {s}.big (id int PRIMARY KEY, label text)")
    config = pg_case.config(["big"])
    config["transactions"] = {"split_after_events": 2000}
    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.big VALUES (0, 'before')")
        pg_case.execute(
            f"INSERT INTO {s}.big SELECT g, 'row-' || g FROM generate_series(1, {rows}) g"
        )
        # Cut transactions are committed to Kafka before the source transaction ends.
        early = consume(
            pg_case.bootstrap, [pg_case.topic("big")], expect=6001, settle=0, timeout=120
        )
        d.kill()
        assert 6001 <= len(early) < rows + 1, "the kill came after the whole transaction"
        cut = offset_history(pg_case.bootstrap, pg_case.name)[-1]
        assert cut["index"] > 0 and cut["index"] % 2000 == 0
        assert ":" in cut["transaction"]["id"]  # the cut transaction, to check on resume
        # The slot may be past the cut LSN (WAL of the transaction before its commit,
        # confirmed on keepalives), never past the transaction's commit.
        start_again(d)
        assert f'"skip_events":{cut["index"]}' in d.log_text()
        messages = consume(
            pg_case.bootstrap, [pg_case.topic("big")], expect=rows + 1, settle=2, timeout=240
        )
        assert d.terminate() == 0
    counts = Counter(ids(messages))
    assert len(messages) == rows + 1 and set(counts.values()) == {1}
    assert ids(messages) == list(range(0, rows + 1))
    final = offset_history(pg_case.bootstrap, pg_case.name)[-1]
    assert final["index"] == 0 and "transaction" not in final

    # The old cut offset restored once the slot has moved past that transaction: the
    # daemon refuses to skip events of another transaction (since the slot only moves
    # past what Kafka holds, it now sees the slot ahead of the offset and stops first).
    asyncio.run(_store_raw_offset(pg_case.bootstrap, pg_case.name, cut))
    with daemon(tmp_path, config, start=False) as d:
        d.start(wait_for="")  # refused at start (the slot check) or at the next transaction
        pg_case.execute(f"INSERT INTO {s}.big VALUES (-1, 'after')")
        assert d.process is not None and d.process.wait(30) == 1
    assert (
        "cannot be read again" in d.log_text()
        or "sent it again with 1" in d.log_text()
        or "is before replication slot" in d.log_text()
    )


async def _store_raw_offset(bootstrap, name, value):
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"cdcd-{name}")
    await producer.start()
    try:
        async with producer.transaction():
            key = json.dumps([name, {"source": "postgres"}], separators=(",", ":")).encode()
            await producer.send("cdcd-offsets", json.dumps(value).encode(), key=key)
    finally:
        await producer.stop()


def test_a_fenced_daemon_stops_at_once(pg_case, tmp_path):
    """Without a pair (``ha.enabled = false``): the newest writer wins, the fenced one
    stops (tests/test_ha.py: with a pair, it stands by)."""
    from aiokafka import AIOKafkaProducer

    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.t (id int PRIMARY KEY)")
    with daemon(tmp_path, {**pg_case.config(["t"]), "ha": {"enabled": False}}) as d:
        pg_case.execute(f"INSERT INTO {s}.t VALUES (1)")
        consume(pg_case.bootstrap, [pg_case.topic("t")], expect=1)

        async def take_over() -> None:
            producer = AIOKafkaProducer(
                bootstrap_servers=pg_case.bootstrap, transactional_id=f"cdcd-{pg_case.name}"
            )
            await producer.start()  # InitProducerId: the daemon's producer is fenced
            await producer.stop()

        asyncio.run(take_over())
        pg_case.execute(f"INSERT INTO {s}.t VALUES (2)")
        assert d.process.wait(30) == 1
    log = d.log_text()
    assert "cdcd: error: the Kafka producer was fenced: another cdcd instance" in log
    assert "Traceback" not in log
    # Fenced before its transaction committed: the change is not in Kafka, and not acknowledged.
    assert ids(consume(pg_case.bootstrap, [pg_case.topic("t")], expect=2, timeout=3)) == [1]


def test_transaction_metadata_as_debezium_writes_it(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(
        f"CREATE TABLE {s}.a (id int PRIMARY KEY, v int)",
        f"CREATE TABLE {s}.b (id int PRIMARY KEY)",
    )
    config = pg_case.config(["a", "b"])
    config["transactions"] = {"metadata": True}
    transaction_topic = f"{pg_case.name}.transaction"
    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.a VALUES (1, 1), (2, 1)", f"INSERT INTO {s}.b VALUES (1)")
        pg_case.execute(f"UPDATE {s}.a SET v = 2 WHERE id = 1")
        changes = consume(pg_case.bootstrap, [pg_case.topic("a"), pg_case.topic("b")], expect=4)
        boundaries = consume(pg_case.bootstrap, [transaction_topic], expect=4)
        assert d.terminate() == 0
    assert [(m.value["status"], m.value["event_count"]) for m in boundaries] == [
        ("BEGIN", None),
        ("END", 3),
        ("BEGIN", None),
        ("END", 1),
    ]
    first_id = boundaries[0].value["id"]
    assert boundaries[1].value["id"] == first_id and boundaries[0].key == {"id": first_id}
    xid, commit_lsn = first_id.split(":")  # "<txId>:<LSN>", as Debezium's PostgreSQL ids
    assert boundaries[1].value["data_collections"] == [
        {"data_collection": f"{s}.a", "event_count": 2},
        {"data_collection": f"{s}.b", "event_count": 1},
    ]
    assert boundaries[0].value["data_collections"] is None
    assert boundaries[1].value["ts_ms"] > 0
    a = [m.value for m in changes if m.topic == pg_case.topic("a")]
    b = [m.value for m in changes if m.topic == pg_case.topic("b")]
    assert [v["transaction"] for v in a[:2]] == [
        {"id": first_id, "total_order": 1, "data_collection_order": 1},
        {"id": first_id, "total_order": 2, "data_collection_order": 2},
    ]
    assert b[0]["transaction"] == {"id": first_id, "total_order": 3, "data_collection_order": 1}
    assert a[0]["source"]["txId"] == int(xid)
    second = boundaries[2].value["id"]
    assert a[2]["transaction"] == {"id": second, "total_order": 1, "data_collection_order": 1}


def test_at_least_once_delivery_stores_offsets_too(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.t (id int PRIMARY KEY)")
    config = {**pg_case.config(["t"]), "delivery": "at-least-once"}
    with daemon(tmp_path, config) as d:
        assert '"delivery":"at-least-once"' in d.log_text()
        for i in range(1, 4):
            pg_case.execute(f"INSERT INTO {s}.t VALUES ({i})")
        consume(pg_case.bootstrap, [pg_case.topic("t")], expect=3)
        assert d.terminate() == 0
        stored = offset_history(pg_case.bootstrap, pg_case.name)[-1]
        assert lsn(stored["lsn"]) <= pg_case.slot_confirmed_lsn()
        pg_case.execute(f"INSERT INTO {s}.t VALUES (4)")
        start_again(d)
        messages = consume(pg_case.bootstrap, [pg_case.topic("t")], expect=4, settle=1)
        assert d.terminate() == 0
    assert ids(messages) == [1, 2, 3, 4]


def test_offsets_commands_on_a_stopped_daemon_and_refused_on_a_running_one(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.t (id int PRIMARY KEY)")
    config = pg_case.config(["t"])
    # No heartbeat offsets over other tests' WAL while this one compares offsets.
    config["source"]["heartbeat_interval_s"] = 3600
    path = str(write_config(tmp_path / "cli.toml", config))

    shown = run_cli("offsets", "show", "--config", path)
    assert shown.returncode == 0, shown.stderr
    assert "not running" in shown.stdout and "position: none stored" in shown.stdout

    with daemon(tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {s}.t VALUES (1)")
        consume(pg_case.bootstrap, [pg_case.topic("t")], expect=1)
        before = offset_history(pg_case.bootstrap, pg_case.name)[-1]

        # Running: show says so; set and reset refuse, change nothing, ask nothing.
        shown = run_cli("offsets", "show", "--config", path)
        assert shown.returncode == 0 and f"running: cdcd-{pg_case.name}" in shown.stdout
        for args in (["set", "--position", "0/0", "--yes"], ["reset", "--to", "latest", "--yes"]):
            refused = run_cli("offsets", *args, "--config", path)
            assert refused.returncode == 1, refused
            assert f"cdcd: error: cdcd '{pg_case.name}' is running" in refused.stderr
            assert "stop it first" in refused.stderr and "Traceback" not in refused.stderr
        assert offset_history(pg_case.bootstrap, pg_case.name)[-1] == before
        assert d.terminate() == 0

    # Stopped: show, then set (confirmation declined, then --yes), then reset.
    shown = run_cli("offsets", "show", "--config", path)
    assert "not running" in shown.stdout and f"position: {before['lsn']}#0" in shown.stdout
    target = f"{before['lsn']}"
    declined = _run_with_input(["offsets", "set", "--config", path, "--position", target], "n\n")
    assert declined.returncode == 1 and "nothing changed" in declined.stdout
    done = run_cli(
        "offsets",
        "set",
        "--config",
        path,
        "--position",
        json.dumps({"kind": "postgres", "lsn": target, "index": 0}),
        "--yes",
    )
    assert done.returncode == 0, done.stderr
    assert f"old position: {before['lsn']}#0" in done.stdout
    assert f"new position: {target}#0" in done.stdout
    pg_case.execute(f"INSERT INTO {s}.t VALUES (2)")
    reset = _run_with_input(["offsets", "reset", "--config", path, "--to", "end"], "y\n")
    assert reset.returncode == 0, reset.stderr
    assert "old position:" in reset.stdout and "new position:" in reset.stdout
    stored = offset_history(pg_case.bootstrap, pg_case.name)[-1]
    with psycopg.connect(pg_case.dsn) as conn:
        current = conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0]
    assert lsn(before["lsn"]) < lsn(stored["lsn"]) <= current
    assert f"stored: {before['lsn']}#0 -> {stored['lsn']}#0" in reset.stdout

    bad = run_cli("offsets", "set", "--config", path, "--position", "not-a-position", "--yes")
    assert bad.returncode == 1 and "--position: not a postgres position" in bad.stderr


def _run_with_input(args, text):
    import os
    import subprocess

    from support import ROOT, cdcd_command

    return subprocess.run(
        cdcd_command(*args),
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        cwd=ROOT,
    )
