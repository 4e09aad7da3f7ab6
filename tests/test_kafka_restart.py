"""The Kafka broker restarted (cleanly, then killed) while changes stream: no change lost,
none repeated for a read_committed consumer, and the daemon keeps running. The broker is
a private one (the shared test broker is never restarted)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from offsets_support import Broker, SteadyWriter, check_exactly_once
from support import consume, daemon, pg_schema

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    kafka = Broker(tmp_path_factory.mktemp("kafka"))
    kafka.format()
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop(signal.SIGKILL)


@pytest.fixture
def table(pg_dsn: str) -> Iterator[str]:
    with pg_schema(pg_dsn, "restart", "id int PRIMARY KEY, v int NOT NULL") as name:
        yield name


def test_broker_restarted_during_the_stream(
    broker: Broker, table: str, pg_dsn: str, tmp_path: Path
):
    name = table
    writer_conn = psycopg.connect(pg_dsn, autocommit=True)

    def write(plan: list[tuple[int, int]]) -> None:
        with writer_conn.transaction():
            for key, version in plan:
                if version == 1:
                    writer_conn.execute(f"INSERT INTO {name}.t VALUES (%s, 1)", (key,))
                else:
                    writer_conn.execute(f"UPDATE {name}.t SET v = %s WHERE id = %s", (version, key))

    config = {
        "name": name,
        "source": {"kind": "postgres", "dsn": pg_dsn, "tables": [f"{name}.t"]},
        "sink": {"kind": "kafka", "bootstrap_servers": broker.bootstrap, "topic_prefix": name},
        "log": {"level": "info", "format": "json"},
    }
    topic = f"{name}.{name}.t"
    writer = SteadyWriter(write, pause=0.01)
    with daemon(tmp_path, config) as d:
        writer.start()
        try:
            seen = 0
            for how in (signal.SIGTERM, signal.SIGKILL):
                seen += 300
                early = consume(broker.bootstrap, [topic], expect=seen, settle=0, timeout=120)
                assert len(early) >= seen
                broker.stop(how)  # clean shutdown, then a crash
                time.sleep(3)
                broker.start()
                assert d.process.poll() is None, d.log_text()[-3000:]
                seen = len(
                    consume(
                        broker.bootstrap, [topic], expect=len(early) + 300, settle=0, timeout=180
                    )
                )
            time.sleep(2)
        finally:
            ledger = writer.finish()
            writer_conn.close()
        messages = consume(broker.bootstrap, [topic], expect=ledger.changes, timeout=180, settle=3)
        assert d.process.poll() is None, "the daemon stopped"
        # The drain waits at most 20 s for Kafka, closing at most ~25 s more.
        assert d.terminate(timeout=90) == 0
    counts = check_exactly_once(messages, ledger)
    restarts = d.log_text().count("Kafka unavailable: starting over")
    print(
        f"\nbroker restarted twice (SIGTERM, SIGKILL): {counts['changes']} changes, "
        f"{counts['records']} records read_committed, {counts['duplicates']} duplicates, "
        f"{counts['missing']} missing; the daemon started over {restarts} time(s)"
    )


def test_while_kafka_is_away_every_log_line_is_json_and_cdcd_says_so(
    broker: Broker, table: str, pg_dsn: str, tmp_path: Path
):
    name = table
    config = {
        "name": name,
        "source": {"kind": "postgres", "dsn": pg_dsn, "tables": [f"{name}.t"]},
        "sink": {"kind": "kafka", "bootstrap_servers": broker.bootstrap, "topic_prefix": name},
        "log": {"level": "info"},  # format "auto": JSON, standard error being a file
    }
    topic = f"{name}.{name}.t"
    conn = psycopg.connect(pg_dsn, autocommit=True)
    try:
        with daemon(tmp_path, config) as d:
            conn.execute(f"INSERT INTO {name}.t VALUES (1, 1)")
            consume(broker.bootstrap, [topic], expect=1, settle=0)
            broker.stop(signal.SIGKILL)
            try:
                conn.execute(f"INSERT INTO {name}.t VALUES (2, 1)")  # its commit waits
                d.wait_for_log(
                    f"waiting for Kafka at {broker.bootstrap}: nothing committed for", 30
                )
            finally:
                broker.start()
            d.wait_for_log(f"Kafka at {broker.bootstrap} is back after", 180)
            assert len(consume(broker.bootstrap, [topic], expect=2, timeout=120)) == 2
            assert d.terminate(timeout=90) == 0
    finally:
        conn.close()
    lines = d.log_text().splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line that is not JSON: {line!r}")
    assert all({"event", "level", "timestamp"} <= entry.keys() for entry in parsed)
    library = [e for e in parsed if str(e.get("logger", "")).startswith("aiokafka")]
    assert library, "aiokafka said nothing while its broker was away"
    waiting = [e for e in parsed if e["event"].startswith("waiting for Kafka")]
    assert waiting[0]["level"] == "warning" and waiting[0]["waited_s"] >= 5
