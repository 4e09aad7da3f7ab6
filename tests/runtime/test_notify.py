"""systemd's notify protocol, datagram by datagram, on a real unix socket the test binds:
READY=1 once, STOPPING=1, STATUS= only when it changed, the status line's text, when the
watchdog is asked for, and that a manager that does not read never blocks the daemon."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cdcd.checkpoint import Checkpoint
from cdcd.config import parse_config
from cdcd.positions import PgPosition
from cdcd.runtime.context import Context, Health, State, Stats
from cdcd.runtime.notify import Notifier, status_line, watchdog_interval

CONFIG = parse_config(
    {
        "name": "shop",
        "source": {"kind": "postgres", "dsn": "postgresql://cdc@127.0.0.1/shop"},
        "sink": {"kind": "stdout"},
    }
)


@contextmanager
def manager(tmp_path: Path) -> Iterator[socket.socket]:
    """The service manager's end: a bound unix datagram socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.settimeout(2)
        yield sock


def pending(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket."""
    sock.setblocking(False)
    out = []
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(2)


class Log:
    def info(self, *args, **kwargs):
        pass


def acked(stats: Stats, lsn: int, behind_ms: int) -> None:
    stats.acknowledged(Checkpoint(PgPosition(lsn, 2), ts_ms=int(time.time() * 1000)))
    stats.behind_source_ms = behind_ms  # as the acknowledgement measured it


def test_ready_once_stopping_at_once_and_other_states_left_to_the_status_line(tmp_path: Path):
    with manager(tmp_path) as sock:
        ctx = Context(CONFIG, Log(), notifier=Notifier(str(tmp_path / "notify")))
        ctx.enter(State.STARTING, "connecting")
        assert pending(sock) == []  # the status line tells it (once a second)
        ctx.enter(State.STREAMING, "streaming from 0/10#0")
        ctx.enter(State.STARTING, "source unavailable: waiting for 127.0.0.1:5432")
        ctx.enter(State.STREAMING, "streaming from 0/20#0")
        assert pending(sock) == ["READY=1\nSTATUS=active, streaming from 0/10#0"]
        acked(ctx.stats, 0x30, 12)
        ctx.enter(State.STOPPING)
        assert pending(sock) == ["STOPPING=1\nSTATUS=stopping, at 0/30#2, 12 ms behind"]


def test_the_status_line_is_sent_only_when_it_changed(tmp_path: Path):
    with manager(tmp_path) as sock:
        notifier = Notifier(str(tmp_path / "notify"))
        for line in ["connecting", "connecting", "active, streaming", "active, streaming"]:
            notifier.status(line)
        assert pending(sock) == ["STATUS=connecting", "STATUS=active, streaming"]


def test_an_abstract_socket_is_reached():
    name = f"cdcd-test-{os.getpid()}-{threading.get_ident()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        Notifier("@" + name).notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_without_a_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier().address == ""
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")  # not a unix socket: not spoken to
    assert Notifier().address == ""
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    assert Notifier().address == "/run/systemd/notify"


def test_a_manager_that_does_not_read_never_blocks_the_daemon(tmp_path: Path):
    with manager(tmp_path):
        notifier = Notifier(str(tmp_path / "notify"))
        # Far more than a unix socket's queue holds: a blocking send would wait forever.
        sender = threading.Thread(
            target=lambda: [notifier.notify(f"STATUS={'x' * 1000} {i}") for i in range(20_000)],
            daemon=True,
        )
        sender.start()
        sender.join(10)
        assert not sender.is_alive(), "notify() blocked on a full socket"


def test_the_status_line_says_role_position_and_lag():
    stats, health = Stats(), Health()
    health.enter(State.STARTING, "connecting")
    assert status_line(health, stats) == "connecting"
    health.enter(State.SNAPSHOTTING, "streaming from 0/10#0, reading 3 tables")
    assert status_line(health, stats) == "active, streaming from 0/10#0, reading 3 tables"
    acked(stats, 0x1A2C000, 12)
    assert status_line(health, stats) == (
        "active, streaming from 0/10#0, reading 3 tables, at 0/1A2C000#2, 12 ms behind"
    )
    # A heartbeat (no commit time) moves the position; the lag is the last change's.
    stats.acknowledged(Checkpoint(PgPosition(0x1A2D000, 0)))
    health.enter(State.STANDBY, "warm, waiting to lead")
    assert status_line(health, stats) == (
        "standby, warm, waiting to lead, at 0/1A2D000#0, 12 ms behind"
    )
    # Starting over after a failure: the reason, not a position that is no longer moving.
    health.enter(State.STARTING, "Kafka unavailable: waiting for 127.0.0.1:9092")
    assert status_line(health, stats) == "Kafka unavailable: waiting for 127.0.0.1:9092"


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())}, 0.2),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_is_pinged_every_half_period_when_asked_for_us(environ, interval):
    assert watchdog_interval(environ) == interval
