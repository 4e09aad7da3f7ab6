"""The daemon under a service manager, as systemd runs it (``Type=notify``,
``WatchdogSec=``): ``NOTIFY_SOCKET`` names a unix datagram socket the test binds and
reads, ``WATCHDOG_USEC=400000`` asks for a ping every 200 ms. Real PostgreSQL and Kafka.

READY=1 comes only once Kafka and the source are reached and the stream runs, never for
a source that cannot be reached; STATUS= follows the position and the lag, at most once
a second; SIGTERM sends STOPPING=1 and exits 0; and the pings come from the daemon's
event loop itself: blocking that loop (in this process) stops them."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from pg_capture import captured_table, topic_of
from support import consume, daemon, free_port, run_cli, unique_name, write_config

from cdcd.config import parse_config
from cdcd.runtime.daemon import Daemon

pytestmark = pytest.mark.integration

WATCHDOG_USEC = 400_000  # a ping every 200 ms


@dataclass
class Manager:
    """The service manager's side: every datagram with the time it arrived, and what
    ``observe`` saw at that moment."""

    sock: socket.socket
    observe: Callable[[], Any] = lambda: None
    received: list[tuple[float, str, Any]] = field(default_factory=list)

    def _receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return  # closed
            self.received.append((time.monotonic(), data.decode(), self.observe()))

    def texts(self) -> list[str]:
        return [text for _, text, _ in self.received]

    def when(self, field_line: str) -> list[float]:
        """When each datagram holding the line ``field_line`` arrived."""
        return [at for at, text, _ in self.received if field_line in text.split("\n")]

    def statuses(self) -> list[tuple[float, str]]:
        return [
            (at, line[len("STATUS=") :])
            for at, text, _ in self.received
            for line in text.split("\n")
            if line.startswith("STATUS=")
        ]

    def wait_for(self, found: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not found():
            assert time.monotonic() < deadline, f"no {what} after {timeout}s: {self.texts()}"
            time.sleep(0.05)


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Manager]:
    """A bound notify socket, named by NOTIFY_SOCKET (and WATCHDOG_USEC set) for the
    daemons the test starts, in this process or as children."""
    # A short path: a unix socket's name is at most 107 bytes.
    with tempfile.TemporaryDirectory(prefix="cdcd-notify-") as directory:
        path = str(Path(directory) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        found = Manager(sock)
        receiver = threading.Thread(target=found._receive, daemon=True, name="notify-manager")
        receiver.start()
        try:
            yield found
        finally:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            receiver.join(5)


@pytest.fixture
def pg_table(pg_dsn: str, kafka_bootstrap: str) -> Iterator[tuple[dict[str, Any], Any]]:
    with captured_table(pg_dsn, kafka_bootstrap, "notify") as found:
        yield found


def test_no_ready_for_a_source_that_cannot_be_reached(manager, tmp_path, kafka_bootstrap):
    name = unique_name("notify")
    config = {
        "name": name,
        "source": {"kind": "postgres", "dsn": f"postgresql://cdc@127.0.0.1:{free_port()}/x"},
        "sink": {"kind": "kafka", "bootstrap_servers": kafka_bootstrap, "topic_prefix": name},
    }
    result = run_cli("run", "--config", str(write_config(tmp_path / "c.toml", config)))
    assert result.returncode == 1 and "cdcd: error: cannot connect to PostgreSQL" in result.stderr
    time.sleep(0.2)  # the last datagrams reach the receiver
    assert "STATUS=connecting" in manager.texts()  # it was heard from...
    assert not manager.when("READY=1"), manager.texts()  # ...and never said it was ready


def test_ready_status_watchdog_and_stopping_from_a_running_daemon(manager, pg_table, tmp_path):
    config, conn = pg_table
    log_path = tmp_path / f"{config['name']}.log"
    manager.observe = lambda: log_path.read_text() if log_path.exists() else ""
    with daemon(tmp_path, config) as d:
        manager.wait_for(lambda: bool(manager.when("READY=1")), "READY=1")
        ready_at, ready_text, log_then = next(r for r in manager.received if "READY=1" in r[1])
        # Kafka was reached and the producer claimed, the slot made, the stream begun.
        assert '"started"' in log_then, log_then[-2000:]
        assert ready_text.startswith("READY=1\nSTATUS=active, streaming from "), ready_text
        statuses = [line for at, line in manager.statuses() if at < ready_at]
        assert statuses == ["connecting"], statuses

        topic = topic_of(config)
        for batch in (1, 2):  # the position moves twice
            for i in range(batch * 10, batch * 10 + 5):
                conn.execute(f"INSERT INTO {config['name']}.t VALUES ({i})")
            assert len(consume(config["sink"]["bootstrap_servers"], [topic], expect=batch * 5))
            manager.wait_for(
                lambda n=batch: (
                    len({ln for _, ln in manager.statuses() if " ms behind" in ln}) >= n
                ),
                f"{batch} position(s) with a lag in STATUS=",
            )
        time.sleep(max(0.0, ready_at + 3 - time.monotonic()))  # 3 s of pings at least
        assert d.terminate() == 0
    time.sleep(0.2)

    stopping = [text for text in manager.texts() if "STOPPING=1" in text.split("\n")]
    assert len(stopping) == 1 and stopping[0].startswith("STOPPING=1\nSTATUS=stopping, at ")
    assert len(manager.when("READY=1")) == 1
    moving = [(at, line) for at, line in manager.statuses() if "ms behind" in line]
    assert moving[0][1].startswith("active, streaming from ") and ", at " in moving[0][1]
    # STATUS= alone (not with READY/STOPPING): only when changed, at most one a second.
    alone = [(at, text) for at, text, _ in manager.received if text.startswith("STATUS=")]
    assert all(a[1] != b[1] for a, b in zip(alone, alone[1:], strict=False)), alone
    gaps = [b[0] - a[0] for a, b in zip(alone, alone[1:], strict=False)]
    assert min(gaps) > 0.9, gaps
    pings = manager.when("WATCHDOG=1")
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert len(pings) > 10 and 0.15 < statistics.median(gaps) < 0.3, gaps


async def test_a_blocked_event_loop_stops_the_watchdog_pings(manager, pg_table):
    config, _ = pg_table
    loop = asyncio.get_running_loop()
    thresholds = gc.get_threshold()
    daemon = Daemon(parse_config(config), structlog.get_logger().bind(name=config["name"]))
    run = asyncio.create_task(daemon.run())
    try:
        deadline = time.monotonic() + 60
        while not manager.when("READY=1"):
            assert time.monotonic() < deadline and not run.done(), manager.texts()
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        blocked: list[float] = []

        def block() -> None:  # the loop hangs, as in a stuck C call
            blocked.append(time.monotonic())
            time.sleep(1.5)
            blocked.append(time.monotonic())

        loop.call_soon(block)
        while len(blocked) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.2)  # the loop is free again
        start, end = blocked
        pings = manager.when("WATCHDOG=1")
        before = [at for at in pings if start - 1.0 <= at < start]
        during = [at for at in pings if start + 0.05 < at < end]
        after = [at for at in pings if end <= at < end + 1.0]
        assert len(before) >= 3 and len(after) >= 3, (before, after)
        assert during == [], f"pings while the loop was blocked: {during}"
    finally:
        daemon.stop()
        await asyncio.wait_for(run, 30)
        # What Daemon.run set up for a process of its own, undone for pytest's.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert manager.when("STOPPING=1")


def test_the_watchdogs_abort_leaves_the_stacks_in_the_log(pg_table, tmp_path):
    # systemd kills a daemon whose pings stopped with SIGABRT (WatchdogSignal's default).
    config, _ = pg_table
    with daemon(tmp_path, config) as d:
        assert d.process is not None
        d.process.send_signal(signal.SIGABRT)
        assert d.process.wait(30) == -signal.SIGABRT
    log = d.log_text()
    assert "Fatal Python error: Aborted" in log, log[-3000:]
    assert "Current thread" in log and "in _run_async" in log, log[-3000:]  # a stack
