"""``[http] listen`` on a real daemon (PostgreSQL and MariaDB into Kafka): /readyz is 503
until the source is connected, then 200; /healthz answers; /metrics, read with
Prometheus's own text parser, moves as changes flow; the Grafana dashboard queries only
metrics that a scrape has."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import ROOT, Gate, consume, daemon, free_port, pg_schema, through, unique_name

pytestmark = pytest.mark.integration

DASHBOARD = ROOT / "conf" / "grafana" / "cdcd.json"


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(port: int) -> dict[str, Any]:
    status, text = http_get(port, "/metrics")
    assert status == 200
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(families: dict[str, Any], family: str, name: str | None = None, **labels: str) -> float:
    """The value of one sample of ``family`` (0 when it has none with those labels yet)."""
    for each in families[family].samples:
        if each.name == (name or family) and each.labels == labels:
            return float(each.value)
    return 0.0


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def ready_after_the_source_connects(d: Any, port: int, gate: Gate) -> None:
    """The daemon runs and is reaching its source through the closed gate: /readyz is
    503 and says why, /healthz is 200; once the gate opens, /readyz is 200."""
    d.wait_for_log("http: serving /metrics, /healthz and /readyz")
    assert gate.accepted.wait(30), "the daemon never tried to reach its source"
    status, body = http_get(port, "/readyz")
    assert (status, body) == (503, "not ready: connecting\n")
    assert http_get(port, "/healthz") == (200, "ok\n")
    families = scrape(port)
    assert sample(families, "cdcd_source_connected") == 0
    assert sample(families, "cdcd_sink_connected") == 1  # Kafka is reached first
    assert sample(families, "cdcd_state", state="starting") == 1
    gate.open()
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, "/readyz 200 once connected")
    status, body = http_get(port, "/readyz")
    assert body.startswith("ready: streaming from ")


def counted(port: int, table: str) -> dict[str, float]:
    families = scrape(port)
    return {
        op: sample(families, "cdcd_events", "cdcd_events_total", table=table, op=op) for op in "cud"
    }


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_table(pg_dsn: str) -> Iterator[str]:
    with pg_schema(pg_dsn, "metrics", "id int PRIMARY KEY, v text NOT NULL") as name:
        yield name


def pg_config(name: str, dsn: str, kafka: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"kind": "postgres", "dsn": dsn, "tables": [f"{name}.t"]},
        "sink": {"kind": "kafka", "bootstrap_servers": kafka, "topic_prefix": name},
        "http": {"listen": f"127.0.0.1:{port}"},
        "log": {"level": "info", "format": "json"},
    }


def test_postgres_daemon_ready_once_connected_and_its_metrics_move(
    pg_table: str, pg_dsn: str, kafka_bootstrap: str, tmp_path: Path
):
    name, port = pg_table, free_port()
    gate = Gate(urlsplit(pg_dsn).hostname or "127.0.0.1", urlsplit(pg_dsn).port or 5432)
    config = pg_config(name, through(pg_dsn, gate), kafka_bootstrap, port)
    table = f"{name}.t"
    try:
        with daemon(tmp_path, config, start=False) as d:
            d.start(wait_for="http: serving")
            ready_after_the_source_connects(d, port, gate)
            before = scrape(port)
            lsn_before = sample(before, "cdcd_source_lsn")
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                with conn.transaction():
                    conn.execute(f"INSERT INTO {table} SELECT g, 'x' FROM generate_series(1, 40) g")
                conn.execute(f"UPDATE {table} SET v = 'y' WHERE id <= 7")
                conn.execute(f"DELETE FROM {table} WHERE id > 37")
            expected = {"c": 40.0, "u": 7.0, "d": 3.0}
            wait_for(lambda: counted(port, table) == expected, f"events of {table} counted")
            consume(kafka_bootstrap, [f"{name}.{table}"], expect=40 + 7 + 3 + 3)
            after = wait_for(
                lambda: (f := scrape(port)) and sample(f, "cdcd_source_lsn") > lsn_before and f,
                "the acknowledged LSN moves",
            )
            assert counted(port, table) == expected  # each change counted once
            moved = {
                "cdcd_source_transactions": ("cdcd_source_transactions_total", 3),
                "cdcd_records": ("cdcd_records_total", 53),  # 3 tombstones too
                "cdcd_kafka_commit_seconds": ("cdcd_kafka_commit_seconds_count", 1),
                "cdcd_behind_source_milliseconds": ("cdcd_behind_source_milliseconds_count", 1),
            }
            for family, (name_, at_least) in moved.items():
                grown = sample(after, family, name_) - sample(before, family, name_)
                assert grown >= at_least, (family, grown)
            assert sample(after, "cdcd_bytes_written", "cdcd_bytes_written_total") > sample(
                before, "cdcd_bytes_written", "cdcd_bytes_written_total"
            )
            assert sample(after, "cdcd_source_connected") == 1
            assert sample(after, "cdcd_sink_connected") == 1
            assert sample(after, "cdcd_role", role="active") == 1
            assert sample(after, "cdcd_milliseconds_behind_source") >= 0
            assert sample(after, "cdcd_milliseconds_since_last_event") > 0
            assert sample(after, "cdcd_queue_capacity", queue="deliveries") == 8
            assert sample(after, "cdcd_events_erroneous", "cdcd_events_erroneous_total") == 0
            assert "cdcd_slot_lag_bytes" in after
            # Kafka holds all of it (and the offset after it): a restart in the process
            # reads none of it again, and the counters go on from where they were.
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                wait_for(lambda: terminate_walsender(conn, f"cdcd_{name}"), "the walsender killed")
                wait_for(
                    lambda: sample(scrape(port), "cdcd_restarts", "cdcd_restarts_total") == 1,
                    "an in-process restart",
                )
                wait_for(lambda: http_get(port, "/readyz")[0] == 200, "/readyz 200 again")
                conn.execute(f"INSERT INTO {table} SELECT g, 'x' FROM generate_series(41, 50) g")
            expected = {"c": 50.0, "u": 7.0, "d": 3.0}
            wait_for(lambda: counted(port, table) == expected, "the counters go on")
            assert d.terminate() == 0
    finally:
        gate.close()


def terminate_walsender(conn: Any, slot: str) -> bool:
    row = conn.execute(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
        "WHERE slot_name = %s AND active_pid IS NOT NULL",
        (slot,),
    ).fetchone()
    return row is not None and bool(row[0])


# -- MariaDB ------------------------------------------------------------------------------


@pytest.fixture
def maria(mysql_url: str) -> Iterator[tuple[str, pymysql.connections.Connection]]:
    name = unique_name("metrics")
    parts = urlsplit(mysql_url)
    conn = pymysql.connect(
        host=parts.hostname, port=parts.port, user=parts.username,
        password=parts.password or "", autocommit=True,
    )  # fmt: skip
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
        cursor.execute(f"CREATE TABLE {name}.t (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL)")
    try:
        yield name, conn
    finally:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name}")
        conn.close()


def test_mariadb_daemon_ready_once_connected_and_its_position_as_numbers(
    maria: tuple[str, Any], mysql_url: str, kafka_bootstrap: str, tmp_path: Path
):
    name, conn = maria
    port = free_port()
    gate = Gate(urlsplit(mysql_url).hostname or "127.0.0.1", urlsplit(mysql_url).port or 3306)
    config = {
        "name": name,
        "source": {"kind": "mysql", "dsn": through(mysql_url, gate), "tables": [f"{name}.t"]},
        "sink": {"kind": "kafka", "bootstrap_servers": kafka_bootstrap, "topic_prefix": name},
        "http": {"listen": f"127.0.0.1:{port}"},
        "log": {"level": "info", "format": "json"},
    }
    table = f"{name}.t"
    try:
        with daemon(tmp_path, config, start=False) as d:
            d.start(wait_for="http: serving")
            ready_after_the_source_connects(d, port, gate)
            with conn.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(
                    f"INSERT INTO {table} VALUES " + ", ".join(f"({i}, 'x')" for i in range(1, 26))
                )
                cursor.execute("COMMIT")
                cursor.execute(f"UPDATE {table} SET v = 'y' WHERE id <= 4")
                cursor.execute(f"DELETE FROM {table} WHERE id = 25")
                cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos")
                (gtid_pos,) = cursor.fetchone()
            expected = {"c": 25.0, "u": 4.0, "d": 1.0}
            wait_for(lambda: counted(port, table) == expected, f"events of {table} counted")
            # The acknowledged position reaches the server's last GTID of that domain.
            last = {g.split("-")[0]: int(g.split("-")[2]) for g in gtid_pos.split(",")}

            def reached() -> Any:
                families = scrape(port)
                sequences = {
                    s.labels["gtid_source"]: s.value
                    for s in families["cdcd_source_gtid_sequence"].samples
                }
                ours = [d for d in last if sequences.get(d, 0) >= last[d]]
                return families if ours else None

            after = wait_for(reached, f"the acknowledged GTID reaches {gtid_pos}")
            assert sample(after, "cdcd_source_binlog_file") >= 1
            assert sample(after, "cdcd_source_binlog_position") > 4
            assert sample(after, "cdcd_source_transactions", "cdcd_source_transactions_total") >= 3
            assert not after["cdcd_source_lsn"].samples
            assert d.terminate() == 0
    finally:
        gate.close()


# -- the Grafana dashboard ----------------------------------------------------------------


def queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    """The metric names in every PromQL expression of the dashboard (its panels, rows'
    panels and template variables)."""
    expressions: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query") and isinstance(value, str):
                    expressions.append(value)
                elif key == "query" and isinstance(value, dict) and "query" in value:
                    expressions.append(value["query"])
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    names: set[str] = set()
    for expression in expressions:
        without_labels = re.sub(r"\{[^}]*\}", "", expression)
        names |= set(re.findall(r"\b((?:cdcd|process|python)_[a-z0-9_]+)\b", without_labels))
    return names


def known_names(families: dict[str, Any]) -> set[str]:
    """Every name a query may use for the scrape's metrics: each sample's, each family's,
    and the samples a family of no samples yet would have (``x_total`` of a counter,
    ``x_bucket``, ``x_count``, ``x_sum`` of a histogram)."""
    names = set(families)
    for family in families.values():
        names |= {s.name for s in family.samples}
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum")}
    return names


def test_every_metric_the_dashboard_queries_is_in_a_real_scrape(
    pg_table: str, pg_dsn: str, kafka_bootstrap: str, tmp_path: Path
):
    """A daemon that snapshots a table, then streams: the dashboard's metrics are all in
    its scrape, and the snapshot's rows are counted as events of operation r."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert any(i.get("name") == "DS_PROMETHEUS" for i in dashboard["__inputs"])
    queried = queried_metrics(dashboard)
    assert {"cdcd_events_total", "cdcd_slot_lag_bytes", "cdcd_role"} <= queried
    name, port = pg_table, free_port()
    table = f"{name}.t"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {table} SELECT g, 'x' FROM generate_series(1, 30) g")
    config = {**pg_config(name, pg_dsn, kafka_bootstrap, port), "snapshot": {"mode": "initial"}}
    with daemon(tmp_path, config, start=False) as d:
        d.start(wait_for="snapshot completed", timeout=120)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {table} VALUES (31, 'x')")
        wait_for(lambda: counted(port, table)["c"] == 1, "the insert counted")
        families = scrape(port)
        assert d.terminate() == 0
    assert sample(families, "cdcd_events", "cdcd_events_total", table=table, op="r") == 30
    assert sample(families, "cdcd_snapshot_running") == 0  # done
    missing = sorted(queried - known_names(families))
    assert not missing, f"the dashboard queries metrics no scrape has: {missing}"
