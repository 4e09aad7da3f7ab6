"""Helpers for the exactly-once tests: the offsets topic's history, a steady writer's
bookkeeping and its check, a private Kafka broker that a test may restart."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from support import ROOT, Daemon, Message


def offset_history(
    bootstrap: str, name: str, source: str = "postgres", topic: str = "cdcd-offsets"
) -> list[dict[str, Any] | None]:
    """Every committed offset record of daemon ``name``, oldest first (None: a tombstone)."""
    return asyncio.run(_offset_history(bootstrap, name, source, topic))


async def _offset_history(
    bootstrap: str, name: str, source: str, topic: str
) -> list[dict[str, Any] | None]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    key = orjson.dumps([name, {"source": source}])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    out: list[dict[str, Any] | None] = []
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return out
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in partitions]
            if all(p >= ends[tp] for p, tp in zip(positions, partitions, strict=True)):
                break
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                out += [orjson.loads(r.value) if r.value else None for r in records if r.key == key]
    finally:
        await consumer.stop()
    return out


# -- a steady writer and what a consumer must see ------------------------------------


@dataclass
class Ledger:
    """What a writer committed: for each key, versions 1, 2, 3... in commit order."""

    versions: dict[int, int] = field(default_factory=dict)
    changes: int = 0
    transactions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, rng: random.Random, keys: int, per_tx: int) -> list[tuple[int, int]]:
        """(key, new version) for one transaction: an insert (version 1) or an update."""
        chosen = rng.sample(range(1, keys + 1), per_tx)
        return [(k, self.versions.get(k, 0) + 1) for k in sorted(chosen)]

    def committed(self, plan: list[tuple[int, int]]) -> None:
        with self.lock:
            for key, version in plan:
                self.versions[key] = version
            self.changes += len(plan)
            self.transactions += 1


def check_exactly_once(messages: list[Message], ledger: Ledger) -> dict[str, int]:
    """Every version of every key exactly once, in order per key; returns the counts."""
    seen: dict[int, list[int]] = defaultdict(list)
    for m in messages:
        if m.value is None:
            continue
        seen[m.key["id"]].append(m.value["after"]["v"])
    duplicates = sum(len(v) - len(set(v)) for v in seen.values())
    missing = sum(
        len(set(range(1, last + 1)) - set(seen.get(key, ())))
        for key, last in ledger.versions.items()
    )
    out_of_order = sum(1 for v in seen.values() if v != sorted(v))
    unexpected = sum(1 for key, v in seen.items() if max(v) > ledger.versions.get(key, 0))
    counts = {
        "records": len(messages),
        "changes": ledger.changes,
        "duplicates": duplicates,
        "missing": missing,
        "out_of_order_keys": out_of_order,
        "unexpected": unexpected,
    }
    assert duplicates == 0 and missing == 0 and out_of_order == 0 and unexpected == 0, counts
    assert len(messages) == ledger.changes, counts
    return counts


class SteadyWriter(threading.Thread):
    """Writes small transactions at a steady pace until stopped (inserts and updates)."""

    def __init__(
        self,
        write: Callable[[list[tuple[int, int]]], None],
        *,
        keys: int = 300,
        per_tx: int = 3,
        pause: float = 0.004,
        seed: int | None = None,
    ) -> None:
        super().__init__(daemon=True, name="steady-writer")
        self.write_tx = write
        self.keys, self.per_tx, self.pause = keys, per_tx, pause
        self.ledger = Ledger()
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                plan = self.ledger.plan(self.rng, self.keys, self.per_tx)
                self.write_tx(plan)
                self.ledger.committed(plan)
                time.sleep(self.pause)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def finish(self) -> Ledger:
        self.stop_event.set()
        self.join(60)
        if self.error is not None:
            raise self.error
        return self.ledger


# -- a private Kafka broker ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kafka_libs() -> Path:
    env = os.environ.get("CDCD_KAFKA_LIBS")
    if env:
        return Path(env)
    import re

    pom = (ROOT / "scripts" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)  # type: ignore[union-attr]
    return Path.home() / ".cache" / "cdcd" / f"kafka-{version}"


class Broker:
    """A single-node KRaft broker of its own (data kept across restarts), for tests that
    stop and start Kafka without disturbing the shared one."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.props = self.dir / "server.properties"
        self.log = self.dir / "kafka.log"
        self.starts = 0

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java") or "java"
        if os.environ.get("JAVA_HOME"):
            java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
        return [
            java,
            "-Xms128m",
            "-Xmx384m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{ROOT / 'scripts' / 'kafka' / 'log4j.properties'}",
            "-cp",
            f"{_kafka_libs()}/*",
            main,
            *args,
        ]

    def format(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.props.write_text(
            f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{self.controller_port}
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={self.dir / "data"}
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
"""
        )
        while True:  # like org.apache.kafka.common.Uuid.randomUuid().toString()
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cluster_id.startswith("-"):
                break
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.props)
            ),
            check=True,
            capture_output=True,
            timeout=180,
        )

    def start(self, timeout: float = 120) -> None:
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.props)),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the test broker exited:\n{self.log.read_text()[-3000:]}")
            if (
                self.log.read_bytes().count(b"Kafka Server started") > self.starts
                and self._answers()
            ):
                self.starts += 1
                return
            time.sleep(0.3)
        raise AssertionError(f"the test broker did not start in {timeout}s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1):
                return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_again(d: Daemon, timeout: float = 60) -> Daemon:
    """Start a daemon whose log already holds earlier runs; wait for this run to stream."""
    count = d.log_text().count('"streaming"')
    d.start(wait_for="", timeout=timeout)
    d.wait_for_log('"streaming"', timeout, count=count + 1)
    return d
