"""Heartbeats and the idle slot, and the slot-lag alarm: real PostgreSQL and Kafka.

The daemon's slot is on a database of its own (A) that no test writes to but these. Its
confirmed position must still follow the server's WAL while another database (B) is
busy, or while every change is to a table it does not capture, or, with
``heartbeat_action_query``, through WAL the daemon writes in A itself; and never ahead
of the offset a read_committed consumer sees in Kafka (the ack rule).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
import pytest
from offsets_support import offset_history, start_again
from support import consume, daemon, run_cli, unique_name, write_config

pytestmark = pytest.mark.integration

INTERVAL_S = 1.0
A_FEW_INTERVALS_S = 10 * INTERVAL_S  # a loaded machine shared with other tests


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass
class Databases:
    name: str  # the daemon's name; its slot is cdcd_<name>
    dsn_a: str
    a: psycopg.Connection[Any]  # to A, where the slot is
    b: psycopg.Connection[Any]  # to B, busy
    bootstrap: str

    @property
    def slot(self) -> str:
        return f"cdcd_{self.name}"

    def config(self, **source: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": {
                "kind": "postgres",
                "dsn": self.dsn_a,
                "tables": ["public.t"],
                "heartbeat_interval_s": INTERVAL_S,
                **source,
            },
            "sink": {
                "kind": "kafka",
                "bootstrap_servers": self.bootstrap,
                "topic_prefix": self.name,
            },
            "offsets": {"topic": f"{self.name}-offsets"},
            "log": {"level": "debug", "format": "json"},
        }

    def confirmed(self) -> int:
        row = self.a.execute(
            "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = %s",
            (self.slot,),
        ).fetchone()
        assert row is not None, "the slot does not exist"
        return int(row[0])

    def stored(self) -> int:
        """The LSN of the last offset record Kafka committed (read_committed)."""
        history = offset_history(self.bootstrap, self.name, topic=f"{self.name}-offsets")
        assert history and history[-1] is not None, history
        return lsn(history[-1]["lsn"])

    def wal_end(self) -> int:
        row = self.a.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()
        assert row is not None
        return int(row[0])


def _dsn_of(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@pytest.fixture
def dbs(pg_dsn: str, kafka_bootstrap: str) -> Iterator[Databases]:
    name = unique_name("hb")
    admin = psycopg.connect(pg_dsn, autocommit=True)
    a_name, b_name = f"{name}_a", f"{name}_b"
    admin.execute(f"CREATE DATABASE {a_name}")
    admin.execute(f"CREATE DATABASE {b_name}")
    a = psycopg.connect(_dsn_of(pg_dsn, a_name), autocommit=True)
    b = psycopg.connect(_dsn_of(pg_dsn, b_name), autocommit=True)
    a.execute("CREATE TABLE t (id int PRIMARY KEY)")
    a.execute("CREATE TABLE other (id int)")
    b.execute("CREATE TABLE busy (id int, filler text)")
    try:
        yield Databases(name, _dsn_of(pg_dsn, a_name), a, b, kafka_bootstrap)
    finally:
        a.close()
        b.close()
        deadline = time.monotonic() + 30
        while True:  # a database with a slot cannot be dropped; a walsender may linger
            admin.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE database = %s AND active_pid IS NOT NULL",
                (a_name,),
            )
            try:
                admin.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE database = %s",
                    (a_name,),
                )
                break
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        admin.execute(f"DROP DATABASE {a_name} WITH (FORCE)")
        admin.execute(f"DROP DATABASE {b_name} WITH (FORCE)")
        admin.close()


def _write_elsewhere(dbs: Databases, where: str) -> None:
    if where == "another database":
        dbs.b.execute("INSERT INTO busy SELECT g, 'x' FROM generate_series(1, 100) g")
    else:  # a table of A that the daemon does not capture: its changes are filtered out
        dbs.a.execute("INSERT INTO other SELECT generate_series(1, 100)")


@pytest.mark.parametrize(
    ("where", "reader"),
    [
        ("another database", "inline"),
        ("another database", "process"),
        ("table not captured", "inline"),
    ],
)
def test_an_idle_slot_follows_the_wal_through_kafka(dbs: Databases, tmp_path, where, reader):
    """A's slot moves within a few heartbeat intervals (status updates every 10 s, the
    default, would take longer), and only to offsets Kafka holds."""
    with daemon(tmp_path, dbs.config(reader=reader)) as d:
        start = dbs.confirmed()
        began = time.monotonic()
        moves = 0
        while moves < 3:  # three heartbeats through Kafka, at least
            _write_elsewhere(dbs, where)
            confirmed = dbs.confirmed()  # first: the stored offset can only be later
            stored = dbs.stored()
            assert confirmed <= stored, "the slot moved past what Kafka holds"
            if confirmed > start:
                moves += 1
                start = confirmed
            waited = time.monotonic() - began
            assert waited < moves * A_FEW_INTERVALS_S + A_FEW_INTERVALS_S, (
                f"the slot moved {moves} times in {waited:.1f} s"
            )
            time.sleep(0.2)
        print(f"\n{where}, {reader}: 3 moves of the slot in {time.monotonic() - began:.1f} s")
        assert d.terminate() == 0
    assert dbs.confirmed() <= dbs.stored()


def test_heartbeat_action_query_runs_every_interval_and_moves_the_slot(dbs: Databases, tmp_path):
    """Nothing is written by the test while the daemon runs: the WAL of A comes from the
    action query (an upsert into a table that is not captured), every interval, and the
    slot follows it through Kafka."""
    dbs.a.execute("CREATE TABLE heartbeat (id int PRIMARY KEY, ts timestamptz, n int)")
    query = (
        "INSERT INTO heartbeat VALUES (1, now(), 1) "
        "ON CONFLICT (id) DO UPDATE SET ts = now(), n = heartbeat.n + 1"
    )

    def beats() -> int:
        row = dbs.a.execute("SELECT n FROM heartbeat").fetchone()
        return 0 if row is None else int(row[0])

    with daemon(tmp_path, dbs.config(heartbeat_action_query=query)) as d:
        first = beats()
        time.sleep(5 * INTERVAL_S)
        ran = beats() - first
        assert 3 <= ran <= 7, f"the action query ran {ran} times in 5 intervals"
        written = dbs.wal_end()  # at or past the last beat's upsert
        deadline = time.monotonic() + A_FEW_INTERVALS_S
        while dbs.confirmed() < written:
            assert time.monotonic() < deadline, "the slot did not follow the heartbeats"
            time.sleep(0.2)
        assert dbs.confirmed() <= dbs.stored()
        assert d.terminate() == 0
    assert dbs.confirmed() <= dbs.stored()


def test_an_action_query_that_fails_at_start_stops_the_daemon_with_one_line(dbs, tmp_path):
    path = write_config(
        tmp_path / "bad.toml",
        dbs.config(heartbeat_action_query="INSERT INTO no_such_table VALUES (1)"),
    )
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == (
        'cdcd: error: source.heartbeat_action_query fails: relation "no_such_table" does not '
        "exist; fix: fix source.heartbeat_action_query"
    ), result.stderr
    assert not [line for line in lines if "Traceback" in line]


def test_an_action_query_failing_later_is_one_warning_and_the_stream_goes_on(dbs, tmp_path):
    dbs.a.execute("CREATE TABLE heartbeat (id int PRIMARY KEY)")
    query = "INSERT INTO heartbeat VALUES (1) ON CONFLICT DO NOTHING"
    with daemon(tmp_path, dbs.config(heartbeat_action_query=query)) as d:
        dbs.a.execute("DROP TABLE heartbeat")
        d.wait_for_log("source.heartbeat_action_query failed")
        dbs.a.execute("INSERT INTO t VALUES (1)")
        (message,) = consume(
            dbs.bootstrap, [f"{dbs.name}.public.t"], expect=1, settle=3 * INTERVAL_S
        )
        assert message.key == {"id": 1}
        assert d.log_text().count("source.heartbeat_action_query failed") == 1  # not each time
        assert 'relation \\"heartbeat\\" does not exist' in d.log_text()
        dbs.a.execute("CREATE TABLE heartbeat (id int PRIMARY KEY)")
        d.wait_for_log("source.heartbeat_action_query runs again", timeout=A_FEW_INTERVALS_S)
        assert d.terminate() == 0


def _log_lines(text: str, needle: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if needle in line]


def test_the_slot_lag_alarm_fires_once_and_says_when_it_is_back(dbs: Databases, tmp_path):
    """WAL written while the daemon is stopped: at its next start the slot is behind by
    more than the alarm; one warning names the slot and its lag, and once the heartbeats
    have moved the slot an info line says it is back."""
    alarm = 4_000_000
    config = dbs.config(slot_lag_alarm_bytes=alarm)
    with daemon(tmp_path, config) as d:
        assert d.terminate() == 0
        dbs.b.execute(
            "INSERT INTO busy SELECT g, repeat('x', 1000) FROM generate_series(1, 10000) g"
        )
        behind = dbs.wal_end() - dbs.confirmed()
        assert behind > 2 * alarm, behind
        start_again(d)
        d.wait_for_log("is back within source.slot_lag_alarm_bytes", timeout=60)
        assert d.terminate() == 0
    text = d.log_text()
    warnings = _log_lines(text, "bytes behind the server's WAL end")
    assert len(warnings) == 1, warnings  # not once per check
    (warning,) = warnings
    assert warning["level"] == "warning" and warning["slot"] == dbs.slot
    assert warning["lag_bytes"] >= behind and warning["alarm_bytes"] == alarm
    assert warning["event"].startswith(
        f"replication slot {dbs.slot!r} is {warning['lag_bytes']} bytes"
    )
    (back,) = _log_lines(text, "is back within")
    assert back["level"] == "info" and back["lag_bytes"] <= alarm
