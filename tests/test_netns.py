"""tests/netns.py: hosts in network namespaces reach the real test servers at their usual
addresses, and each of their two links (Kafka, database) can be cut and restored."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import netns
import psycopg
import pymysql
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from netns import Host
from support import ROOT, consume, free_port, pg_schema, unique_name

CUT_FAILS_WITHIN_S = 8  # a probe over a cut link must give up (fail) by then


def _pg(pg_dsn: str) -> int:
    with psycopg.connect(pg_dsn, connect_timeout=2) as conn:
        conn.execute("SET statement_timeout = 2000")
        row = conn.execute("SELECT 41 + 1").fetchone()
        assert row is not None
        return int(row[0])


def _mariadb(mysql_url: str) -> int:
    conn = pymysql.connect(
        host="127.0.0.1",
        port=int(mysql_url.rsplit(":", 1)[1].strip("/")),
        user="root",
        password="root",
        connect_timeout=2,
        read_timeout=2,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 41 + 1")
            return int(cursor.fetchone()[0])
    finally:
        conn.close()


async def _kafka_round_trip(bootstrap: str) -> int:
    """Produce one record to a fresh topic and read it back; its value."""
    topic = unique_name("netns")
    timeouts = {"request_timeout_ms": 2000, "metadata_max_age_ms": 1000}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **timeouts)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"42")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **timeouts)
    await consumer.start()
    try:
        tp = TopicPartition(topic, sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        record = await consumer.getone()
        assert record.value is not None
        return int(record.value)
    finally:
        await consumer.stop()


def _kafka(bootstrap: str) -> int:
    return asyncio.run(asyncio.wait_for(_kafka_round_trip(bootstrap), CUT_FAILS_WITHIN_S))


@pytest.fixture
def probes(pg_dsn: str, mysql_url: str, kafka_bootstrap: str) -> dict[str, Callable[[], int]]:
    """Each server answering 42 over a fresh connection, by the link it needs."""
    return {
        "kafka": lambda: _kafka(kafka_bootstrap),
        "postgres": lambda: _pg(pg_dsn),
        "mariadb": lambda: _mariadb(mysql_url),
    }


LINK_OF = {"kafka": "kafka", "postgres": "db", "mariadb": "db"}


def _failure(host: Host, probe: Callable[[], int]) -> Exception | None:
    """None if ``probe`` answers 42 on ``host``, else why not (refused, timed out...)."""
    started = time.monotonic()
    try:
        with host.inside():
            assert probe() == 42
        return None
    except Exception as exc:
        assert time.monotonic() - started < CUT_FAILS_WITHIN_S + 2, "the probe hung"
        return exc


def test_a_host_reaches_every_server_at_its_usual_address(netns_hosts, probes, pg_dsn):
    a = netns_hosts("a")
    for name, probe in probes.items():
        assert _failure(a, probe) is None, f"{name} does not answer inside {a.netns}"
    # The servers see 127.0.0.1 (their access rules apply unchanged); the host has only
    # its loopback and its two links.
    with a.inside(), psycopg.connect(pg_dsn) as conn:
        assert str(conn.execute("SELECT inet_client_addr()").fetchone()[0]) == "127.0.0.1"
    inner = netns.ip("-o", "link", "show", netns=a.netns)
    assert sorted(line.split(":")[1].strip().split("@")[0] for line in inner.splitlines()) == [
        "db",
        "kafka",
        "lo",
    ]


def test_popen_runs_on_the_host_with_its_own_pid(netns_hosts, pg_dsn):
    a = netns_hosts("a")
    code = (
        "import os, socket, psycopg; "
        f"c = psycopg.connect({pg_dsn!r}); "
        "print(os.getpid(), c.execute('SELECT 7').fetchone()[0], socket.if_nameindex())"
    )
    process = a.popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=30)
    pid, answer, interfaces = out.split(" ", 2)
    assert int(pid) == process.pid  # ip netns exec execs: signals reach the process itself
    assert answer == "7"
    assert "kafka" in interfaces and "eth0" not in interfaces


@pytest.mark.parametrize("link", ["kafka", "db"])
def test_cut_one_link_the_other_works_restore_it_all_work(netns_hosts, probes, link):
    a, b = netns_hosts("a"), netns_hosts("b")
    a.cut(link)
    for name, probe in probes.items():
        failure = _failure(a, probe)
        if LINK_OF[name] == link:
            assert failure is not None, f"{name} answers with {link} cut"
            print(f"\n{name} with {link} cut: {type(failure).__name__}: {failure}")
        else:
            assert failure is None, f"{name} with {link} cut"
        assert _failure(b, probe) is None, f"{name} on the other host with a's {link} cut"
    a.restore(link)
    for name, probe in probes.items():
        assert _failure(a, probe) is None, f"{name} after {link} restored"


def test_a_cut_stalls_an_established_connection_without_reset(netns_hosts, pg_dsn):
    a = netns_hosts("a")
    with a.inside():
        conn = psycopg.connect(pg_dsn, autocommit=True)
    answers: list[object] = []
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        a.cut("db")
        query = threading.Thread(
            target=lambda: answers.append(_fetch_or_error(conn, "SELECT 2")), daemon=True
        )
        query.start()
        query.join(1.5)
        assert query.is_alive() and not answers, f"no stall during the cut: {answers}"
        restored = time.monotonic()
        a.restore("db")
        query.join(5)
        assert answers == [(2,)], answers  # the same connection: no reset, no error
        print(f"\nquery answered {time.monotonic() - restored:.3f}s after the 1.5 s cut ended")
        assert conn.execute("SELECT 3").fetchone() == (3,)
    finally:
        conn.close()


def _fetch_or_error(conn: psycopg.Connection, sql: str) -> object:
    try:
        return conn.execute(sql).fetchone()
    except Exception as exc:
        return exc


@contextlib.contextmanager
def _tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 (root namespace) running ``handle`` per connection; its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = server.accept()
                conn.settimeout(None)
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def _sink(conn: socket.socket) -> None:
    with conn:
        total = 0
        while data := conn.recv(1 << 20):
            total += len(data)
        conn.sendall(str(total).encode())


def test_raw_bytes_stall_during_a_cut_and_flow_after(netns_hosts, kafka_bootstrap):
    """Bytes on a connection made before the cut, and on one made during it (its connect
    is retried, as a SYN would be), stall without EOF or reset and flow after restore."""
    kafka_port = int(kafka_bootstrap.rsplit(":", 1)[1])
    with _tcp_server(_echo) as port:
        a = netns_hosts("a", kafka_ports=[kafka_port, port], db_ports=[])
        with a.inside():
            before = socket.create_connection(("127.0.0.1", port), timeout=5)
        before.sendall(b"ping")
        assert before.recv(16) == b"ping"
        a.cut("kafka")
        with a.inside():
            during = socket.create_connection(("127.0.0.1", port), timeout=5)
        with before, during:
            for conn in (before, during):
                conn.sendall(b"during the cut")
                conn.settimeout(1)
            for conn in (before, during):
                with pytest.raises(TimeoutError):  # neither data nor EOF nor reset
                    conn.recv(64)
            a.restore("kafka")
            for conn in (before, during):
                conn.settimeout(5)
                assert conn.recv(64) == b"during the cut"


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _round_trips(conn: psycopg.Connection, n: int = 300) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        samples.append(time.perf_counter() - started)
    return samples


def _sink_mb_s(port: int, megabytes: int = 128) -> float:
    chunk = b"x" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        started = time.perf_counter()
        for _ in range(megabytes):
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)
        assert int(conn.recv(64)) == megabytes << 20
        return megabytes / (time.perf_counter() - started)


def test_the_forwarding_path_costs_little(netns_hosts, pg_dsn, kafka_bootstrap):
    """Added latency (PostgreSQL SELECT 1 round trips) and throughput (128 MB through the
    kafka link to a sink), inside a host and directly, printed for the record."""
    kafka_port = int(kafka_bootstrap.rsplit(":", 1)[1])
    with _tcp_server(_sink) as sink_port:
        a = netns_hosts("a", kafka_ports=[kafka_port, sink_port])
        with a.inside():
            inside_conn = psycopg.connect(pg_dsn, autocommit=True)
        with inside_conn, psycopg.connect(pg_dsn, autocommit=True) as direct_conn:
            inside, direct = _round_trips(inside_conn), _round_trips(direct_conn)
        with a.inside():
            inside_mb_s = _sink_mb_s(sink_port)
        direct_mb_s = _sink_mb_s(sink_port)
    added_ms = _median_ms(inside) - _median_ms(direct)
    print(
        f"\nSELECT 1 round trip: median {_median_ms(direct):.3f} ms direct, "
        f"{_median_ms(inside):.3f} ms inside a host (+{added_ms:.3f} ms), "
        f"p99 {sorted(direct)[296] * 1000:.3f} / {sorted(inside)[296] * 1000:.3f} ms; "
        f"throughput {direct_mb_s:.0f} MB/s direct, {inside_mb_s:.0f} MB/s over the kafka link"
    )
    assert added_ms < 2, "the forwarders add more than 2 ms a round trip"
    assert inside_mb_s > 30, "the kafka link carries less than 30 MB/s"


def test_cleanup_leaves_nothing_and_waits_for_nothing(netns_hosts):
    with netns.host("a", [free_port()], [free_port()]) as a:
        sleeper = a.popen(["sleep", "300"])
        forwarders = [p.pid for p in a.forwarders]
        outer = [link.outer for link in a.links.values()]
        name = a.netns
    assert name not in netns.ip("netns", "list")
    assert sleeper.poll() is not None
    assert all(not Path(f"/proc/{pid}").exists() for pid in forwarders)
    assert not set(outer) & netns._root_veths()


def test_leftovers_of_a_crashed_run_are_removed_those_of_live_runs_kept(netns_hosts, tmp_path):
    crash = (
        "import time, netns, support\n"
        "with netns.host('c', [support.free_port()], [support.free_port()]) as h:\n"
        "    h.popen(['sleep', '300'])\n"
        "    print(h.netns, flush=True)\n"
        "    time.sleep(300)\n"
    )
    crashed = subprocess.Popen(
        [sys.executable, "-c", crash],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT / "tests",
    )
    assert crashed.stdout is not None
    leftover = crashed.stdout.readline().strip()
    crashed.send_signal(signal.SIGKILL)  # no cleanup runs
    crashed.wait(10)
    crashed.stdout.close()
    live = f"cdcdt-{os.getpid()}-fff-live"  # "ours": this process runs
    netns.ip("netns", "add", live)
    try:
        deadline = time.monotonic() + 5  # the forwarders see their parent gone
        while len(netns.namespace_pids(leftover)) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(netns.namespace_pids(leftover)) == 1, "a forwarder outlived its test"
        netns_hosts("b")  # making a host clears what dead runs left
        listed = netns.ip("netns", "list")
        assert leftover not in listed and live in listed
    finally:
        netns.ip("netns", "del", live)


def test_a_config_file_works_unchanged_on_a_host(netns_hosts, pg_dsn, kafka_bootstrap, tmp_path):
    """A cdcd daemon on a host streams PostgreSQL to Kafka with the usual addresses."""
    a = netns_hosts("a")
    with pg_schema(pg_dsn, "netns", "id int PRIMARY KEY") as name:
        config = {
            "name": name,
            "source": {"kind": "postgres", "dsn": pg_dsn, "tables": [f"{name}.t"]},
            "sink": {"kind": "kafka", "bootstrap_servers": kafka_bootstrap, "topic_prefix": name},
            "log": {"level": "info", "format": "json"},
        }
        with a.daemon(tmp_path, config) as d, psycopg.connect(pg_dsn, autocommit=True) as conn:
            assert d.process is not None and d.process.pid in netns.namespace_pids(a.netns)
            conn.execute(f"INSERT INTO {name}.t VALUES (1), (2)")
            got = consume(kafka_bootstrap, [f"{name}.{name}.t"], expect=2, timeout=30)
            assert sorted(m.key["id"] for m in got) == [1, 2]
            assert d.terminate() == 0
