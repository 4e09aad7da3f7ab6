"""An active/standby pair on real servers: takeovers after SIGKILL, a frozen active,
a clean handover, ``cdcd status``.

Each instance runs as another host would (``unshare --uts``: its own host name, so the
same-host shortcut of the election does not apply and the lease decides). The number of
SIGKILL takeovers: ``CDCD_HA_TAKEOVERS`` (3 in ``make test``, 20 in ``make test-long``).
"""

# ruff: noqa: F811 - the case fixtures of test_chaos are imported, then asked for by name

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from offsets_support import SteadyWriter, check_exactly_once
from support import Daemon, Message, run_cli, write_config
from test_chaos import Case, mariadb_case, postgres_case  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

LONG = os.environ.get("CDCD_TEST_LONG") == "1"
TAKEOVERS = int(os.environ.get("CDCD_HA_TAKEOVERS") or (20 if LONG else 3))
LEASE_MS, HEARTBEAT_MS = 3000, 500
START_TIMEOUT = 120

if shutil.which("unshare") is None or os.geteuid() != 0:  # pragma: no cover
    if os.environ.get("CI"):
        raise RuntimeError("the pair's tests need root and unshare(1) (util-linux)")
    pytest.skip("needs root and unshare(1)", allow_module_level=True)


_STARTED: list[Daemon] = []


@pytest.fixture(autouse=True)
def _stop_instances() -> Any:
    """Whatever a test leaves running (it failed half-way) is killed after it."""
    yield
    while _STARTED:
        _STARTED.pop().ensure_stopped()


def _ha_config(case: Case, **ha: Any) -> dict[str, Any]:
    config = dict(case.config)
    config["ha"] = {"lease_ms": LEASE_MS, "heartbeat_ms": HEARTBEAT_MS, **ha}
    config["log"] = {"level": "info", "format": "json"}
    return config


def _instance(tmp_path: Path, config: dict[str, Any], host: str, network: Any = None) -> Daemon:
    """A daemon as on host ``host`` (its own UTS namespace and host name; with
    ``network``, a ``tests/netns.py`` host, its own network too)."""
    path = write_config(tmp_path / f"{config['name']}-{host}.toml", config)
    prefix = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host]
    if network is not None:
        prefix = network.command(prefix)
    instance = Daemon(path, tmp_path / f"{host}.log", tmp_path / f"{host}.out", prefix=prefix)
    _STARTED.append(instance)
    return instance


class Tail(threading.Thread):
    """A read_committed consumer of ``topic`` from the start, in the background: each
    record with the wall-clock time it was read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True, name="tail")
        self.bootstrap, self.topic = bootstrap, topic
        self.records: list[tuple[float, Message, int]] = []  # (read at, message, Kafka ts)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by messages()
            self.error = exc

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        await consumer.start()
        try:
            while not self.stop_event.is_set():
                batches = await consumer.getmany(timeout_ms=50)
                now = time.time()
                for records in batches.values():
                    for r in records:
                        value = orjson.loads(r.value) if r.value is not None else None
                        key = orjson.loads(r.key) if r.key is not None else None
                        message = Message(r.topic, r.partition, r.offset, key, value)
                        self.records.append((now, message, r.timestamp))
        finally:
            await consumer.stop()

    def first_after(self, moment: float, timeout: float = 60, committed: bool = False) -> float:
        """When the first record written after ``moment`` (wall clock) was read; with
        ``committed``, the first of a change committed after it (an instance cut off from
        its database still writes what it read before: only the new leader has those)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for read_at, message, ts in list(self.records):
                if committed:
                    ts = (message.value or {}).get("source", {}).get("ts_ms", 0)
                if ts > moment * 1000:
                    return read_at
            time.sleep(0.02)
        raise AssertionError(f"no record written after the kill within {timeout} s")

    def messages(self, expect: int, timeout: float = 120) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.records) < expect and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # anything more (a duplicate) has time to arrive
        self.stop_event.set()
        self.join(10)
        if self.error is not None:
            raise self.error
        return [message for _at, message, _ts in self.records]


def _pair(tmp_path: Path, config: dict[str, Any]) -> tuple[Daemon, Daemon]:
    first = _instance(tmp_path, config, "host-a").start(timeout=START_TIMEOUT)
    second = _instance(tmp_path, config, "host-b").start('"standing by"', START_TIMEOUT)
    return first, second


def _count(d: Daemon, needle: str) -> int:
    return d.log_text().count(needle)


class Load:
    """A steady writer to the case's table and a tail of its topic while the block runs;
    ``finish`` stops the daemons and returns what a read_committed consumer saw."""

    def __init__(self, case: Case, bootstrap: str) -> None:
        self.writer = SteadyWriter(case.write)
        self.tail = Tail(bootstrap, case.topic)
        self.ledger: Any = None

    def __enter__(self) -> Load:
        self.writer.start()
        self.tail.start()
        self.tail.first_after(0, timeout=START_TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ledger = self.writer.finish()

    def finish(self, *daemons: Daemon) -> list[Message]:
        messages = self.tail.messages(self.ledger.changes)
        for d in daemons:
            assert d.terminate() == 0, d.log_text()[-2000:]
        return messages


def _sigterm(d: Daemon) -> None:
    assert d.terminate() == 0, d.log_text()[-2000:]


def _hand_over(active: Daemon, standby: Daemon, tail: Tail, stop: Any = Daemon.kill) -> float:
    """``stop`` the active instance, wait for the standby to lead, start the stopped one
    again as the new standby; seconds from the stop to the new leader's first record."""
    acquired = _count(standby, "leadership acquired")
    stood_by = _count(active, '"standing by"')
    stopped_at = time.time()
    stop(active)
    standby.wait_for_log("leadership acquired", START_TIMEOUT, count=acquired + 1)
    took = tail.first_after(stopped_at) - stopped_at
    active.start(wait_for="", timeout=START_TIMEOUT)
    active.wait_for_log('"standing by"', START_TIMEOUT, count=stood_by + 1)
    return took


def _seconds(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


@pytest.mark.parametrize("source", ["postgres", "mariadb"])
def test_sigkill_of_the_active_instance_many_times_loses_and_repeats_nothing(
    request, source: str, tmp_path: Path
) -> None:
    case: Case = request.getfixturevalue(f"{source}_case")
    config = _ha_config(case)
    takeovers = TAKEOVERS if source == "postgres" else max(1, TAKEOVERS // 3)
    rng = random.Random()
    active, standby = _pair(tmp_path, config)
    times: list[float] = []
    with Load(case, config["sink"]["bootstrap_servers"]) as load:
        for _ in range(takeovers):
            time.sleep(rng.uniform(1.0, 2.0))
            times.append(_hand_over(active, standby, load.tail))
            active, standby = standby, active
            assert load.writer.error is None, load.writer.error
        time.sleep(1)
    counts = check_exactly_once(load.finish(active, standby), load.ledger)
    print(
        f"\npair {source}: {takeovers} SIGKILL takeovers (lease {LEASE_MS} ms, heartbeat "
        f"{HEARTBEAT_MS} ms): death to the new leader's first record median "
        f"{statistics.median(times):.2f} s, max {max(times):.2f} s ({_seconds(times)}); "
        f"{counts['changes']} changes, {counts['duplicates']} duplicates, "
        f"{counts['missing']} missing"
    )
    assert max(times) < LEASE_MS / 1000 + 10


def test_a_frozen_active_never_writes_again_and_stands_by(postgres_case, tmp_path: Path):
    config = _ha_config(postgres_case)
    active, standby = _pair(tmp_path, config)
    assert active.process is not None
    led = _count(active, "leadership acquired")
    with Load(postgres_case, config["sink"]["bootstrap_servers"]) as load:
        frozen_at = time.time()
        active.process.send_signal(signal.SIGSTOP)
        standby.wait_for_log("leadership acquired", START_TIMEOUT)
        taken_over = load.tail.first_after(frozen_at) - frozen_at
        time.sleep(2)
        active.process.send_signal(signal.SIGCONT)
        active.wait_for_log("leadership lost", 30)
        active.wait_for_log('"standing by"', 30)
        time.sleep(2)
    thawed = active.log_text()
    counts = check_exactly_once(load.finish(active, standby), load.ledger)
    print(
        f"\nfrozen active: taken over {taken_over:.2f} s after SIGSTOP; thawed, it stood by "
        f"({counts['changes']} changes, {counts['duplicates']} duplicates)"
    )
    assert thawed.count("leadership acquired") == led  # it did not lead again


def test_a_clean_handover_repeats_nothing_even_at_least_once(postgres_case, tmp_path: Path):
    config = {**_ha_config(postgres_case), "delivery": "at-least-once"}
    active, standby = _pair(tmp_path, config)
    times = []
    with Load(postgres_case, config["sink"]["bootstrap_servers"]) as load:
        for _ in range(2):
            time.sleep(1.5)
            times.append(_hand_over(active, standby, load.tail, stop=_sigterm))
            active, standby = standby, active
        time.sleep(1)
    counts = check_exactly_once(load.finish(active, standby), load.ledger)
    print(f"\nclean handover, at-least-once: {counts['duplicates']} repeats, {_seconds(times)} s")


def test_sigkill_at_least_once_loses_nothing_and_reports_repeats(postgres_case, tmp_path: Path):
    config = {**_ha_config(postgres_case), "delivery": "at-least-once"}
    active, standby = _pair(tmp_path, config)
    with Load(postgres_case, config["sink"]["bootstrap_servers"]) as load:
        for _ in range(2):
            time.sleep(1.5)
            _hand_over(active, standby, load.tail)
            active, standby = standby, active
        time.sleep(1)
    messages = load.finish(active, standby)
    seen: dict[int, list[int]] = {}
    for m in messages:
        if m.value is not None:
            seen.setdefault(m.key["id"], []).append(m.value["after"]["v"])
    repeats = sum(len(v) - len(set(v)) for v in seen.values())
    missing = sum(
        len(set(range(1, last + 1)) - set(seen.get(key, ())))
        for key, last in load.ledger.versions.items()
    )
    print(f"\nSIGKILL at-least-once: 2 takeovers, {load.ledger.changes} changes, {repeats} repeats")
    assert missing == 0


def test_status_shows_every_instance_and_fails_without_an_active_one(postgres_case, tmp_path: Path):
    config = _ha_config(postgres_case)
    active, standby = _pair(tmp_path, config)
    path = write_config(tmp_path / "status.toml", config)
    try:
        shown = run_cli("status", "--config", str(path))
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert len(lines) == 2, shown.stdout
        assert lines[0].startswith("host-a:") and " active " in lines[0], lines
        assert lines[1].startswith("host-b:") and " standby " in lines[1], lines
        rows = json.loads(run_cli("status", "--config", str(path), "--json").stdout)
        assert [row["role"] for row in rows] == ["active", "standby"]
        assert rows[0]["server"].startswith("PostgreSQL at ")
        assert rows[0]["age_ms"] < 2 * LEASE_MS
    finally:
        for d in (standby, active):
            assert d.terminate() == 0
    after = run_cli("status", "--config", str(path))
    assert after.returncode == 1, after.stdout
    assert all(" stopped " in line for line in after.stdout.splitlines()), after.stdout


def test_a_host_cut_off_from_kafka_then_one_cut_off_from_the_database_hand_over(
    postgres_case, netns_hosts, tmp_path: Path
):
    """Two hosts (network namespaces): the active one loses Kafka, a standby takes over;
    the link back, the old one stands by. Then the new active one loses its database: it
    steps down after ``source_timeout_s`` and the other one, whose database answers,
    takes over. Every change once, in order."""
    config = _ha_config(postgres_case, source_timeout_s=6)
    config["source"] = {**config["source"], "heartbeat_interval_s": 1}
    bootstrap = config["sink"]["bootstrap_servers"]
    host_a, host_b = netns_hosts("a"), netns_hosts("b")
    a = _instance(tmp_path, config, "host-a", host_a).start(timeout=START_TIMEOUT)
    b = _instance(tmp_path, config, "host-b", host_b).start('"standing by"', START_TIMEOUT)
    figures = {}
    with Load(postgres_case, bootstrap) as load:
        tail = load.tail
        time.sleep(1)
        cut_at = time.time()
        host_a.cut("kafka")
        b.wait_for_log("leadership acquired", START_TIMEOUT)
        figures["kafka cut"] = tail.first_after(cut_at) - cut_at
        time.sleep(2)
        host_a.restore("kafka")
        a.wait_for_log('"standing by"', 90)
        time.sleep(1)
        led = _count(a, "leadership acquired")
        cut_at = time.time()
        host_b.cut("db")
        a.wait_for_log("leadership acquired", START_TIMEOUT, count=led + 1)
        figures["database cut"] = tail.first_after(cut_at, committed=True) - cut_at
        b.wait_for_log("sent nothing for 6 s", 30)
        time.sleep(1)
        host_b.restore("db")
        b.wait_for_log('"standing by"', 90, count=1)
        time.sleep(1)
    counts = check_exactly_once(load.finish(a, b), load.ledger)
    print(
        f"\npartitions: takeover after the active host lost Kafka "
        f"{figures['kafka cut']:.2f} s, after it lost its database "
        f"{figures['database cut']:.2f} s (source_timeout_s 6); {counts['changes']} changes, "
        f"{counts['duplicates']} duplicates, {counts['missing']} missing"
    )


def test_a_standby_reading_a_replica_takes_over_from_the_active_on_the_primary(
    mariadb_case, mysql_replica_url: str, tmp_path: Path
):
    """The active instance reads the MariaDB primary, the standby its replica (another
    `source.dsn`): the GTID position carries over both ways, no gap, no repeat."""
    on_primary = _ha_config(mariadb_case)
    on_replica = {**on_primary, "source": {**on_primary["source"], "dsn": mysql_replica_url}}
    bootstrap = on_primary["sink"]["bootstrap_servers"]
    a = _instance(tmp_path, on_primary, "host-a").start(timeout=START_TIMEOUT)
    b = _instance(tmp_path, on_replica, "host-b").start('"standing by"', START_TIMEOUT)
    times = []
    with Load(mariadb_case, bootstrap) as load:
        for active, standby in ((a, b), (b, a)):
            time.sleep(1.5)
            times.append(_hand_over(active, standby, load.tail))
        time.sleep(1)
    messages = load.finish(a, b)
    assert f":{urlsplit(mysql_replica_url).port}" in b.log_text()  # it streamed the replica
    counts = check_exactly_once(messages, load.ledger)
    print(
        f"\nprimary -> replica -> primary: takeovers {_seconds(times)} s; "
        f"{counts['changes']} changes, {counts['duplicates']} duplicates, "
        f"{counts['missing']} missing"
    )


def test_an_idle_database_is_not_taken_for_a_lost_one(postgres_case, tmp_path: Path):
    """Nothing written for several source timeouts: PostgreSQL gives no heartbeat when
    its WAL does not move, but it answers a query, so the active instance stays."""
    config = _ha_config(postgres_case, source_timeout_s=2)
    active = _instance(tmp_path, config, "host-a").start(timeout=START_TIMEOUT)
    time.sleep(7)
    postgres_case.write([(1, 1)])
    tail = Tail(config["sink"]["bootstrap_servers"], postgres_case.topic)
    tail.start()
    tail.first_after(0, timeout=30)
    log = active.log_text()
    assert active.terminate() == 0
    tail.messages(1)
    assert "sent nothing" not in log and log.count('"streaming"') == 1, log[-2000:]
