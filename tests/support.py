"""Helpers for tests that run the real daemon against the real servers of scripts/testenv."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for "unreachable" tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its live children (a daemon's
    binlog reader process), summed, in MB: an upper bound of what they held at once."""
    total = 0.0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
                break
        else:
            raise AssertionError(f"no VmHWM for pid {pid}")
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():  # children of every thread
        with contextlib.suppress(OSError):
            children.update(int(c) for c in (task / "children").read_text().split())
    for child in children:
        with contextlib.suppress(OSError, AssertionError):
            total += peak_rss_mb(child)
    return total


def worker_processes(daemon_pid: int, module: str, timeout: float = 10) -> list[int]:
    """The daemon's reader processes running ``module``, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        pids = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                command = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if module.encode() in command and str(daemon_pid).encode() in command:
                pids.append(int(cmdline.parent.name))
        if pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def process_gone(pid: int, timeout: float) -> bool:
    """Whether ``pid`` ends (or is a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True  # ended; its zombie waits for init to reap it
        time.sleep(0.05)
    return False


def unique_name(prefix: str = "t") -> str:
    """A name no other test uses: daemon name, topic prefix, table name."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def fix_of(stdout: str, finding: str) -> str:
    """The statement that ``cdcd check`` gives to fix the finding containing ``finding``."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if finding in line:
            fix = lines[i + 1].strip()
            assert fix.startswith("fix: "), stdout
            return fix.removeprefix("fix: ")
    raise AssertionError(f"no {finding!r} in:\n{stdout}")


@contextmanager
def pg_schema(dsn: str, prefix: str, table_ddl: str) -> Iterator[str]:
    """A fresh PostgreSQL schema (also the name of the daemon that reads it) holding table
    ``t`` (``table_ddl``: its columns); afterwards the daemon's slot (once no longer
    active) and publication are dropped with the schema."""
    import psycopg

    name = unique_name(prefix)
    slot = f"cdcd_{name}"
    admin = psycopg.connect(dsn, autocommit=True)
    admin.execute(f"CREATE SCHEMA {name}")
    admin.execute(f"CREATE TABLE {name}.t ({table_ddl})")
    try:
        yield name
    finally:
        for _ in range(50):
            active = admin.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if active is None:
                break
            if not active[0]:
                admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                break
            time.sleep(0.2)
        admin.execute(f"DROP PUBLICATION IF EXISTS {slot}")
        admin.execute(f"DROP SCHEMA {name} CASCADE")
        admin.close()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table, e.g. a literal entry of source.tables
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    # A key with a '.' (Debezium's spelling, "decimal.handling.mode") must be quoted.
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write a (two-level) configuration dict as TOML (dicts in lists: inline tables).

    A daemon's configuration without a ``[snapshot]`` section streams only (``mode =
    "no_data"``): the tests of streaming see the changes they make, not a snapshot of
    every table of a database shared with other tests. Snapshot tests give the section
    (``tests/snapshot_support.py``: without a mode, so Debezium's default is the one run).
    """
    if "source" in config and "snapshot" not in config:
        config = {**config, "snapshot": {"mode": "no_data"}}
    lines = [f"{k} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, values in config.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def cdcd_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cdcd.cli", *args]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a cdcd command to completion, capturing its output."""
    return subprocess.run(
        cdcd_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A command that failed with exit code 1 and one line on stderr holding ``needles``
    (with the default log level: only the error reaches stderr); that line."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cdcd: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@dataclass
class Daemon:
    """A ``cdcd run`` process started by a test; ``prefix`` runs it elsewhere (e.g. on a
    host of tests/netns.py: ``ip netns exec NS``)."""

    config_path: Path
    log_path: Path
    out_path: Path
    process: subprocess.Popen[bytes] | None = None
    prefix: list[str] = field(default_factory=list)

    def start(self, wait_for: str = '"streaming"', timeout: float = 60) -> Daemon:
        self.process = subprocess.Popen(
            [*self.prefix, *cdcd_command("run", "--config", str(self.config_path))],
            stdout=self.out_path.open("ab"),
            stderr=self.log_path.open("ab"),
            cwd=ROOT,
        )
        self.wait_for_log(wait_for, timeout)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 60, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(needle) >= count:
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"cdcd exited with {self.process.returncode}:\n{self.log_text()[-3000:]}"
                )
            time.sleep(0.05)
        raise AssertionError(
            f"no {needle!r} in the daemon's log after {timeout}s:\n{self.log_text()[-3000:]}"
            f"\n{self.stacks()}"
        )

    def stacks(self) -> str:
        """Where each thread of the running daemon and of its reader process is (py-spy),
        to see why it waits."""
        if self.process is None or self.process.poll() is not None:
            return ""
        spy = Path(sys.executable).parent / "py-spy"
        if not spy.exists():
            return "(no py-spy to show the daemon's stacks)"
        dump = subprocess.run(
            [str(spy), "dump", "--subprocesses", "--pid", str(self.process.pid)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return f"the daemon's stacks:\n{dump.stdout}{dump.stderr}"

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def daemon(
    tmp_path: Path, config: dict[str, Any], start: bool = True, prefix: list[str] | None = None
) -> Iterator[Daemon]:
    """Run ``cdcd run`` with ``config`` for the duration of the block (``prefix``: see
    ``Daemon``)."""
    tag = config["name"]
    proc = Daemon(
        write_config(tmp_path / f"{tag}.toml", config),
        tmp_path / f"{tag}.log",
        tmp_path / f"{tag}.out",
        prefix=prefix or [],
    )
    try:
        if start:
            proc.start()
        yield proc
    finally:
        proc.ensure_stopped()


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: Any
    value: Any
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def consume(
    bootstrap: str,
    topics: list[str],
    *,
    expect: int,
    timeout: float = 60,
    settle: float = 0.5,
    json: bool = True,
) -> list[Message]:
    """Read ``topics`` from the beginning until ``expect`` records arrived (read_committed).

    Waits ``settle`` seconds more after that, so that extra records (duplicates) are seen.
    ``json``: keys and values decoded as JSON (else left as bytes).
    """
    return asyncio.run(_consume(bootstrap, topics, expect, timeout, settle, json))


async def _consume(
    bootstrap: str, topics: list[str], expect: int, timeout: float, settle: float, json: bool
) -> list[Message]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    out: list[Message] = []
    seen: set[tuple[str, int, int]] = set()
    try:
        # Assign partitions by hand (no group): a rebalance would deliver records twice.
        deadline = time.monotonic() + timeout
        partitions: list[TopicPartition] = []
        for topic in topics:
            while True:
                await consumer._client.force_metadata_update()
                found = consumer.partitions_for_topic(topic)
                if found:
                    partitions += [TopicPartition(topic, p) for p in sorted(found)]
                    break
                if time.monotonic() > deadline:
                    return out
                await asyncio.sleep(0.2)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        settle_until: float | None = None
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            batches = await consumer.getmany(timeout_ms=200, max_records=10000)
            for tp, records in batches.items():
                for r in records:
                    if (tp.topic, tp.partition, r.offset) in seen:
                        continue
                    seen.add((tp.topic, tp.partition, r.offset))
                    out.append(
                        Message(
                            tp.topic,
                            tp.partition,
                            r.offset,
                            orjson.loads(r.key) if json and r.key is not None else r.key,
                            orjson.loads(r.value) if json and r.value is not None else r.value,
                            list(r.headers or ()),
                        )
                    )
            if len(out) >= expect and settle_until is None:
                settle_until = time.monotonic() + settle
    finally:
        await consumer.stop()
    return out


class RangeWriter(threading.Thread):
    """Writes ids 1..``total`` from a thread, ``per_tx`` rows a transaction, at a steady
    pace: ``write(ranges)`` opens its own connection and commits one transaction for each
    (first, last) it is given. ``written`` is the last id handed out so far."""

    def __init__(
        self,
        write: Callable[[Iterator[tuple[int, int]]], None],
        total: int,
        per_tx: int = 100,
        pause: float = 0.002,
    ) -> None:
        super().__init__(daemon=True, name="range-writer")
        self.write, self.total, self.per_tx, self.pause = write, total, per_tx, pause
        self.written = 0
        self.error: BaseException | None = None

    def _ranges(self) -> Iterator[tuple[int, int]]:
        for start in range(0, self.total, self.per_tx):
            last = min(start + self.per_tx, self.total)
            yield start + 1, last
            self.written = last
            time.sleep(self.pause)

    def run(self) -> None:
        try:
            self.write(self._ranges())
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def wait_for(self, written: int, timeout: float = 60) -> None:
        """Until at least ``written`` ids are committed."""
        deadline = time.monotonic() + timeout
        while self.written < written:
            if self.error is not None:
                raise self.error
            assert time.monotonic() < deadline, f"the writer is stuck at {self.written}"
            time.sleep(0.05)

    def finish(self, timeout: float = 180) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the writer did not finish"
        if self.error is not None:
            raise self.error


def mysql_ticks_writer(
    connect: Callable[[], Any], table: str, total: int, per_tx: int = 100, pause: float = 0.002
) -> RangeWriter:
    """A ``RangeWriter`` inserting ``(id, id)`` rows into a MySQL/MariaDB ``table`` through
    connections made by ``connect``."""

    def write(ranges: Iterator[tuple[int, int]]) -> None:
        conn = connect()
        with conn.cursor() as cursor:
            for first, last in ranges:
                cursor.execute("BEGIN")
                cursor.execute(
                    f"INSERT INTO {table} VALUES "
                    + ", ".join(f"({i}, {i})" for i in range(first, last + 1))
                )
                cursor.execute("COMMIT")
        conn.close()

    return RangeWriter(write, total, per_tx, pause)


def assert_each_once(messages: list[Message], total: int, label: str) -> Counter[Any]:
    """Every id 1..``total`` arrived exactly once (keys ``{"id": n}``, tombstones aside)."""
    counts = Counter(m.key["id"] for m in messages if m.value is not None)
    missing = set(range(1, total + 1)) - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    print(
        f"\n{label}: {len(messages)} records for {total} changes, "
        f"{duplicates} duplicates, {len(missing)} missing"
    )
    assert not missing, f"{len(missing)} changes lost, e.g. {sorted(missing)[:5]}"
    assert duplicates == 0, f"{duplicates} duplicates, e.g. {counts.most_common(3)}"
    assert set(counts) == set(range(1, total + 1)), "ids that were never written"
    return counts


class Gate:
    """A TCP proxy to ``host:port`` that holds every connection it accepts until
    ``open()``: a source that is not reachable yet, without touching the shared server."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.opened = threading.Event()
        self.accepted = threading.Event()
        self._sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        self.opened.set()

    def close(self) -> None:
        """Refuse new connections and cut the open ones (each end sees them end at once)."""
        for sock in self._sockets:
            with contextlib.suppress(OSError):  # a listener, or one closed already
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            self.accepted.set()
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        self.opened.wait()
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        self._sockets.append(server)
        for source, target in ((client, server), (server, client)):
            threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    for sock in (source, target):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def through(url: str, gate: Gate) -> str:
    """``url`` with its host and port replaced by the gate's."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{gate.port}" if auth else f"127.0.0.1:{gate.port}"
    return urlunsplit(parts._replace(netloc=netloc))
