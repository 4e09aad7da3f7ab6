"""Failover between database servers (``source.dsn`` listing a primary and its replica),
against the test environment's MariaDB and its GTID replica; and source-side fencing:
a second binlog reader with the same server id displaces the first."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from support import (
    Gate,
    assert_each_once,
    consume,
    daemon,
    mysql_ticks_writer,
    run_cli,
    through,
    unique_name,
    write_config,
)

from cdcd.errors import PositionLostError
from cdcd.positions import MysqlPosition
from cdcd.sources.mysql import binlog as bl
from cdcd.sources.mysql.config import MysqlSourceConfig
from cdcd.sources.mysql.source import MysqlSource

from .conftest import MyCase, connect

pytestmark = pytest.mark.integration


@pytest.fixture
def case(mysql_url, mysql_replica_url, kafka_bootstrap, tmp_path) -> Iterator[MyCase]:
    """A database of its own on the primary, replicated to the replica."""
    name = unique_name()
    conn = connect(mysql_url)
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield MyCase("mariadb", name, mysql_url, kafka_bootstrap, conn, tmp_path)
    finally:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


def caught_up(replica_url: str, primary: pymysql.connections.Connection) -> None:
    """Until the replica applied everything the primary wrote so far."""
    with primary.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos")
        target = cursor.fetchone()[0]
    replica = connect(replica_url)
    try:
        with replica.cursor() as cursor:
            cursor.execute("SELECT MASTER_GTID_WAIT(%s, 30)", (target,))
            assert cursor.fetchone()[0] == 0, f"the replica did not reach {target} in 30 s"
    finally:
        replica.close()


def sources_of(messages: list[Any]) -> list[dict[str, Any]]:
    return [m.value["source"] for m in messages if m.value is not None]


def assert_in_order_per_partition(messages: list[Any]) -> None:
    """Ids were written increasing: within a partition they must arrive increasing."""
    last: dict[int, int] = {}
    for m in messages:
        if m.value is None:
            continue
        key = m.key["id"]
        assert key > last.get(m.partition, 0), f"id {key} after {last[m.partition]}"
        last[m.partition] = key


def test_replica_of_the_test_environment(case, mysql_replica_url) -> None:
    replica = connect(mysql_replica_url)
    with replica.cursor() as cursor:
        cursor.execute("SHOW SLAVE STATUS")
        names = [d[0] for d in cursor.description]
        status = dict(zip(names, cursor.fetchone(), strict=True))
        cursor.execute(
            "SELECT @@server_id, @@gtid_domain_id, @@read_only, @@log_slave_updates, "
            "@@binlog_format, @@binlog_row_image"
        )
        settings = cursor.fetchone()
    assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes")
    assert status["Using_Gtid"] == "Slave_Pos"
    assert settings == (3, 0, 1, 1, "ROW", "FULL")
    case.ddl(f"CREATE TABLE {case.database}.t (id INT PRIMARY KEY)")
    case.execute(f"INSERT INTO {case.database}.t VALUES (7)")
    caught_up(mysql_replica_url, case.conn)
    with replica.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {case.database}.t")
        assert cursor.fetchall() == ((7,),)
    replica.close()


def test_a_daemon_cut_off_from_the_primary_continues_from_the_replica(
    case, mysql_replica_url, tmp_path
) -> None:
    db, total = case.database, 8000
    case.ddl(f"CREATE TABLE {db}.ticks (id INT PRIMARY KEY, v INT)")
    caught_up(mysql_replica_url, case.conn)
    gate = Gate("127.0.0.1", int(case.url.rsplit(":", 1)[1].strip("/")))
    gate.open()
    config = case.config(["ticks"], dsn=[through(case.url, gate), mysql_replica_url])
    # Transactions of 50 rows cut every 16: a start over may resume inside one.
    config["transactions"] = {"split_after_events": 16}
    writer = mysql_ticks_writer(lambda: connect(case.url), f"{db}.ticks", total, 50, 0.01)
    topic = case.topic("ticks")
    try:
        with daemon(tmp_path, config) as d:
            writer.start()
            consume(case.bootstrap, [topic], expect=1000, settle=0)
            writer.wait_for(3000)
            cut_at, cut_written = time.monotonic(), writer.written
            gate.close()  # the primary is unreachable for the daemon, not for the writer
            d.wait_for_log('"skipping a server of source.dsn"', timeout=30)
            d.wait_for_log('"streaming"', count=2, timeout=30)
            resumed_in = time.monotonic() - cut_at
            writer.finish()
            messages = consume(case.bootstrap, [topic], expect=total, timeout=90, settle=2)
            assert d.process is not None and d.process.poll() is None, "the daemon exited"
            assert d.terminate() == 0
    finally:
        gate.close()
    assert cut_written < total, "the writer had finished: no load"
    print(f"\ncut off at id {cut_written}; streaming from the replica {resumed_in:.1f} s later")
    assert_each_once(messages, total, "primary cut off, continued on the replica")
    assert_in_order_per_partition(messages)
    files = [s["file"] for s in sources_of(sorted(messages, key=lambda m: m.key["id"]))]
    assert files[0].startswith("mariadb-bin.") and files[-1].startswith("mariadb-replica-bin.")
    # server_id: the server that wrote the event (the primary's, 1), as Debezium's is.
    assert {s["server_id"] for s in sources_of(messages)} == {1}
    log = [json.loads(x) for x in d.log_text().splitlines() if x.startswith("{")]
    streaming = [x for x in log if x["event"] == "streaming"]
    print(
        f"resumed on the replica at {streaming[-1]['gtid_set']}, {streaming[-1]['skip_events']}"
        " events of its first transaction written already"
    )
    assert streaming[-1]["server"] == mysql_replica_url.split("@")[1].strip("/")


def test_an_offset_taken_on_the_primary_resumes_on_the_replica_alone(
    case, mysql_replica_url, tmp_path
) -> None:
    db = case.database
    case.ddl(f"CREATE TABLE {db}.ticks (id INT PRIMARY KEY, v INT)")
    first = mysql_ticks_writer(lambda: connect(case.url), f"{db}.ticks", 2000, 100, 0)
    topic = case.topic("ticks")
    with daemon(tmp_path, case.config(["ticks"])) as d:
        first.start()
        first.finish()
        consume(case.bootstrap, [topic], expect=2000, settle=0)
        assert d.terminate() == 0
    # Written while no daemon runs, then read from the replica only.
    case.execute(
        f"INSERT INTO {db}.ticks VALUES " + ", ".join(f"({i}, {i})" for i in range(2001, 3001))
    )
    caught_up(mysql_replica_url, case.conn)
    config = case.config(["ticks"], dsn=mysql_replica_url)
    shown = run_cli("offsets", "show", "--config", str(write_config(tmp_path / "r.toml", config)))
    assert "mariadb-bin." in shown.stdout, shown.stdout  # the primary's file/pos is stored
    with daemon(tmp_path, {**config, "name": case.name}) as d:
        messages = consume(case.bootstrap, [topic], expect=3000, timeout=60, settle=2)
        assert d.terminate() == 0
    assert_each_once(messages, 3000, "offset of the primary resumed on the replica")
    assert_in_order_per_partition(messages)
    after = [s for s in sources_of(messages) if s["file"].startswith("mariadb-replica-bin.")]
    assert len(after) == 1000


async def test_a_position_no_listed_server_has_is_one_error_naming_each(
    mysql_url, mysql_replica_url
) -> None:
    config = MysqlSourceConfig(kind="mysql", dsn=[mysql_url, mysql_replica_url])
    source = MysqlSource(config, name=unique_name())
    ahead = MysqlPosition("mariadb", "0-1-999999999", "mariadb-bin.000001", 4, server="id:1")
    with pytest.raises(PositionLostError) as caught:
        await source.prepare(ahead)
    text = str(caught.value)
    print(f"\n{text}")
    assert text.startswith("no server of source.dsn can stream: (1) 127.0.0.1:23306: ")
    assert "(2) 127.0.0.1:23308: the stored offset (0-1-999999999) is ahead" in text


def test_cdcd_check_checks_every_listed_server(case, mysql_replica_url, tmp_path) -> None:
    """The user may read the primary's binlog but only SELECT on the replica (made on each
    server alone, sql_log_bin = 0); a third server is not there."""
    case.ddl(f"CREATE TABLE {case.database}.t (id INT PRIMARY KEY)")
    caught_up(mysql_replica_url, case.conn)
    user = f"cdc_{case.name}"
    grants = {
        case.url: "REPLICATION SLAVE, REPLICATION CLIENT, SELECT",
        mysql_replica_url: "SELECT",
    }
    for url, privileges in grants.items():
        on_one_server(url, f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'")
        on_one_server(url, f"GRANT {privileges} ON *.* TO '{user}'@'127.0.0.1'")
    try:
        urls = [f"mysql://{user}:pw@127.0.0.1:{port}/" for port in (23306, 23308, 1)]
        config = case.config(["t"], dsn=urls)
        result = run_cli("check", "--config", str(write_config(tmp_path / "c.toml", config)))
    finally:
        for url in grants:
            on_one_server(url, f"DROP USER '{user}'@'127.0.0.1'")
    print(f"\n{result.stdout}{result.stderr}")
    assert result.returncode == 1
    findings = [x for x in result.stdout.splitlines() if x.startswith(("ERROR", "WARNING"))]
    assert all("source.dsn entry" in x for x in findings[:-1]), findings
    replica = "MariaDB at 127.0.0.1:23308 (source.dsn entry 2): "
    assert any(x.startswith(f"ERROR: {replica}") and "REPLICATION" in x for x in findings)
    assert not any("entry 1" in x for x in findings), "the primary has no finding"
    assert "ERROR: source.dsn entry 3: cannot connect to MySQL/MariaDB at 127.0.0.1:1" in (
        result.stdout
    )


def on_one_server(url: str, statement: str) -> None:
    """Run ``statement`` on that server only (not replicated)."""
    conn = connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION sql_log_bin = 0")
            cursor.execute(statement)
    finally:
        conn.close()


def test_a_reader_with_the_same_server_id_displaces_the_daemon(my_case, tmp_path) -> None:
    """The server ends the older dump of a server id when a newer one registers (MariaDB:
    error 4052, MySQL: 1236): the daemon hears of it at once and stops, saying why,
    instead of waiting for an idle stream's timeout or starting over (which would
    displace the other in turn). Without a pair (``ha.enabled = false``; in a pair the
    displaced instance stands by: tests/test_ha.py)."""
    case = my_case
    db, server_id = case.database, 700_000 + int(time.time() * 1000) % 100_000
    case.ddl(f"CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    config = {**case.config(["t"], server_id=server_id), "ha": {"enabled": False}}
    with daemon(tmp_path, config) as d:
        case.execute(f"INSERT INTO {db}.t VALUES (1)")
        consume(case.bootstrap, [case.topic("t")], expect=1, settle=0)
        with case.conn.cursor() as cursor:
            mariadb = case.flavor == "mariadb"
            cursor.execute(f"SELECT @@GLOBAL.{'gtid_binlog_pos' if mariadb else 'gtid_executed'}")
            gtid = cursor.fetchone()[0].replace("\n", "")
        other = bl.BinlogStream(
            lambda: connect(case.url),
            server_id=server_id,
            flavor=case.flavor,
            gtid_set=gtid,
            file=None,
            pos=None,
            heartbeat_s=10,
        )
        other.open()
        opened = time.monotonic()
        assert d.process is not None
        code = d.process.wait(30)
        noticed = time.monotonic() - opened
        threading.Thread(target=other.close, daemon=True).start()
    last = d.log_text().splitlines()[-1]
    print(f"\n{case.flavor}: the daemon exited {noticed:.2f} s after the other reader: {last}")
    assert code == 1
    where = case.url.split("@")[1].strip("/")
    assert last.startswith(
        f"cdcd: error: another binlog reader with this server id connected to {where}"
    ), last
    assert noticed < 10  # at once, not after 4 heartbeat intervals of silence (40 s)
    assert '"source unavailable: starting over' not in d.log_text()


async def test_a_list_mixing_mysql_and_mariadb_is_a_finding(mysql_url, mysql8_url) -> None:
    if mysql8_url is None:
        pytest.skip("no MySQL 8 server in this test environment")
    source = MysqlSource(MysqlSourceConfig(kind="mysql", dsn=[mysql_url, mysql8_url]), name="t")
    problems = await source.check()
    mixed = [p for p in problems if p.what.startswith("source.dsn mixes MySQL and MariaDB")]
    assert len(mixed) == 1 and mixed[0].fatal, problems
    assert source.server_index == 0 and source.info is not None
    assert source.info.flavor == "mariadb"  # the first server's, for captured_tables()


def test_a_snapshot_and_stream_from_the_second_listed_server(
    case, mysql_replica_url, tmp_path
) -> None:
    """The first server is not there: the snapshot process and the reader process read
    the replica (the server the start chose), rows then changes."""
    db = case.database
    case.ddl(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    case.execute(f"INSERT INTO {db}.t VALUES " + ", ".join(f"({i}, 0)" for i in range(1, 501)))
    caught_up(mysql_replica_url, case.conn)
    config = case.config(["t"], dsn=["mysql://root:root@127.0.0.1:1/", mysql_replica_url])
    with daemon(tmp_path, {**config, "snapshot": {"mode": "initial"}}) as d:
        case.execute(
            f"INSERT INTO {db}.t VALUES " + ", ".join(f"({i}, 1)" for i in range(501, 601))
        )
        messages = consume(case.bootstrap, [case.topic("t")], expect=600, timeout=60, settle=1)
        assert d.terminate() == 0
    assert_each_once(messages, 600, "snapshot and stream of the replica")
    ops = [m.value["op"] for m in sorted(messages, key=lambda m: m.key["id"])]
    assert ops == ["r"] * 500 + ["c"] * 100
    streamed = sources_of([m for m in messages if m.value["op"] == "c"])
    assert all(s["file"].startswith("mariadb-replica-bin.") for s in streamed)


def test_a_position_inside_a_transaction_resumes_inside_it_on_the_replica(
    case, mysql_replica_url, tmp_path
) -> None:
    """An offset of the primary with 20 events of the next transaction written (a split
    transaction's Commit), set for a daemon reading the replica alone: the replica sends
    that transaction again (the same GTID), its first 20 events are skipped."""
    db = case.database
    case.ddl(f"CREATE TABLE {db}.ticks (id INT PRIMARY KEY, v INT)")
    topic = case.topic("ticks")
    with daemon(tmp_path, case.config(["ticks"])) as d:
        case.execute(
            f"INSERT INTO {db}.ticks VALUES " + ", ".join(f"({i}, 0)" for i in range(1, 101))
        )
        consume(case.bootstrap, [topic], expect=100, settle=0)
        assert d.terminate() == 0
    case.execute(
        f"INSERT INTO {db}.ticks VALUES " + ", ".join(f"({i}, 1)" for i in range(101, 151))
    )
    case.execute(
        f"INSERT INTO {db}.ticks VALUES " + ", ".join(f"({i}, 2)" for i in range(151, 201))
    )
    caught_up(mysql_replica_url, case.conn)
    config = case.config(["ticks"], dsn=mysql_replica_url)
    path = str(write_config(tmp_path / "r.toml", config))
    shown = run_cli("offsets", "show", "--config", path).stdout
    stored = json.loads(
        next(x for x in shown.splitlines() if x.startswith("position:")).split("  ", 1)[1]
    )
    assert stored["server"] == "id:1" and stored["file"].startswith("mariadb-bin.")
    inside = json.dumps({**stored, "index": 20})
    result = run_cli("offsets", "set", "--config", path, "--position", inside, "--yes")
    assert result.returncode == 0, result.stderr
    with daemon(tmp_path, {**config, "name": case.name}) as d:
        messages = consume(case.bootstrap, [topic], expect=180, timeout=60, settle=2)
        assert d.terminate() == 0
    ids = sorted(m.key["id"] for m in messages if m.value is not None)
    assert ids == list(range(1, 101)) + list(range(121, 201)), ids[95:130]
