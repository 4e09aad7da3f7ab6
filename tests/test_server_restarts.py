"""Every way a database server stops and comes back is waited for in-process: PostgreSQL
smart, fast and immediate shutdowns, MariaDB and MySQL 8 SHUTDOWN, SIGTERM and SIGKILL,
and a server that stays away longer than the longest pause between attempts. Under a
steady load; a read_committed consumer then finds every row exactly once, and the daemon
said at warning level what it waits for. Throwaway servers, real Kafka.

``CDCD_TEST_LONG=1`` (``make test-long``) keeps one server down for three minutes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import RangeWriter, assert_each_once, consume, daemon, unique_name
from throwaway import Server, mariadb, mysql8
from throwaway_pg import PgServer, postgres

pytestmark = pytest.mark.integration

LONG = os.environ.get("CDCD_TEST_LONG") == "1"
AWAY_S = 180.0 if LONG else 35.0  # past the longest pause between attempts (30 s)


@dataclass
class Target:
    kind: str
    dsn: str
    table: str  # as the topic names it: schema.table
    restart: Callable[[str, float], None]
    write: Callable[[Iterator[tuple[int, int]]], None]


def _pg_target(server: PgServer) -> Target:
    server.sql("CREATE TABLE ticks (id int PRIMARY KEY, v int)")

    def write(ranges: Iterator[tuple[int, int]]) -> None:
        for first, last in ranges:
            while True:  # the server goes away under the writer too: write again
                try:
                    # A session per transaction: a smart shutdown waits for sessions to end.
                    with psycopg.connect(server.dsn, autocommit=True, connect_timeout=5) as conn:
                        conn.execute(
                            "INSERT INTO ticks SELECT g, g FROM generate_series(%s::int, "
                            "%s::int) g ON CONFLICT DO NOTHING",
                            (first, last),
                        )
                    break
                except psycopg.OperationalError:
                    _pause()

    return Target("postgres", server.dsn, "public.ticks", server.restart, write)


def _mysql_target(server: Server) -> Target:
    server.sql("CREATE DATABASE shop", "CREATE TABLE shop.ticks (id INT PRIMARY KEY, v INT)")
    import pymysql

    def write(ranges: Iterator[tuple[int, int]]) -> None:
        for first, last in ranges:
            values = ", ".join(f"({i}, {i})" for i in range(first, last + 1))
            while True:
                try:
                    server.sql(f"INSERT IGNORE INTO shop.ticks VALUES {values}")
                    break
                except pymysql.err.MySQLError:
                    _pause()

    def restart(how: str, down_s: float) -> None:
        server.restart(down_s=down_s, how=how)

    return Target("mysql", server.url, "shop.ticks", restart, write)


def _pause() -> None:
    import time

    time.sleep(0.2)


@pytest.fixture(params=["postgres", "mariadb", "mysql8"])
def target(request) -> Iterator[Target]:
    server: AbstractContextManager[Any]
    if request.param == "postgres":
        with postgres() as pg:
            yield _pg_target(pg)
        return
    server = mariadb() if request.param == "mariadb" else mysql8("gtid_mode = ON", "enforce_gtid_consistency = ON")
    with server as my:
        yield _mysql_target(my)


MODES = {"postgres": ["smart", "fast", "immediate"], "mysql": ["shutdown", "term", "kill"]}


def _config(target: Target, bootstrap: str) -> dict[str, Any]:
    name = unique_name("restart")
    return {
        "name": name,
        "source": {"kind": target.kind, "dsn": target.dsn, "tables": [target.table]},
        "sink": {"kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": name},
        "log": {"level": "info", "format": "json"},
    }


def _warnings(log_text: str) -> list[dict[str, Any]]:
    log = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    return [x for x in log if x["event"].startswith("source unavailable")]


def test_every_shutdown_mode_is_waited_for(target, kafka_bootstrap, tmp_path: Path):
    total = 9000
    config = _config(target, kafka_bootstrap)
    topic = f"{config['name']}.{target.table}"
    writer = RangeWriter(target.write, total, per_tx=20, pause=0.01)
    modes = MODES[target.kind]
    with daemon(tmp_path, config) as d:
        writer.start()
        for i, mode in enumerate(modes, start=1):
            writer.wait_for(i * 2000)
            target.restart(mode, 2.0)
            d.wait_for_log('"streaming"', count=i + 1, timeout=90)
        writer.finish(timeout=300)
        messages = consume(kafka_bootstrap, [topic], expect=total, timeout=120, settle=2)
        assert d.process is not None and d.process.poll() is None, "the daemon exited"
        assert d.terminate() == 0
    assert_each_once(messages, total, f"{target.kind} restarted: {', '.join(modes)}")
    warnings = _warnings(d.log_text())
    print("\n".join(f"{w['event']} | {w['error']}" for w in warnings))
    assert len(warnings) >= len(modes)
    flavor = {"postgres": "PostgreSQL at ", "mysql": " at 127.0.0.1:"}[target.kind]
    assert all(w["level"] == "warning" for w in warnings)
    assert all(flavor in w["event"] and "answers (next attempt in" in w["event"] for w in warnings)


def test_a_server_away_for_long_is_waited_for(kafka_bootstrap, tmp_path: Path):
    with postgres() as pg:
        target = _pg_target(pg)
        config = _config(target, kafka_bootstrap)
        topic = f"{config['name']}.{target.table}"
        with daemon(tmp_path, config) as d:
            target.write(iter([(1, 100)]))
            consume(kafka_bootstrap, [topic], expect=100, settle=0)
            target.restart("fast", AWAY_S)
            target.write(iter([(101, 200)]))
            d.wait_for_log('"streaming"', count=2, timeout=90)
            messages = consume(kafka_bootstrap, [topic], expect=200, timeout=60, settle=1)
            assert d.process is not None and d.process.poll() is None, "the daemon exited"
            assert d.terminate() == 0
    assert_each_once(messages, 200, f"PostgreSQL away for {AWAY_S:.0f} s")
    pauses = [w["pause_s"] for w in _warnings(d.log_text())]
    print(f"\npauses between attempts: {pauses}")
    assert max(pauses) == 30.0 and sum(pauses[:-1]) >= AWAY_S - 30
