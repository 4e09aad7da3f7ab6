"""Telling the service manager how the daemon is: systemd's notify protocol.

A datagram of ``KEY=value`` lines to the unix socket named by ``$NOTIFY_SOCKET`` (a path,
or ``@name`` for an abstract socket); nothing at all when the daemon was not started by a
service manager. ``READY=1`` once the daemon works (the snapshot or the stream began, or
a standby is warm), ``STATUS=`` a line saying its role, position and lag, ``STOPPING=1``
when it is asked to stop, and ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC``.

The status line and the watchdog's pings come from tasks on the daemon's own event loop:
a loop that hangs or is blocked stops pinging, and systemd (``WatchdogSec=``) kills and
restarts the daemon. No thread: a thread would go on pinging for a dead loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdcd.runtime.context import Context, Health, Stats

# STATUS= is looked at this often, and sent only when its text changed: at most one a
# second, however fast the position moves.
STATUS_INTERVAL_S = 1.0


class Notifier:
    """Sends notify datagrams to ``address`` (default ``$NOTIFY_SOCKET``); does nothing
    without one. Never blocks: a datagram the manager cannot take at once is dropped."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        # Only unix sockets are spoken to (systemd 254+ may also name a vsock: not here).
        self.address = address if address[:1] in ("/", "\0") else ""
        self._sock: socket.socket | None = None
        self._ready = False
        self._status = ""

    def notify(self, *fields: str) -> None:
        if not self.address:
            return
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        # OSError: the manager went away or its queue is full; nothing to tell then.
        with contextlib.suppress(OSError):
            self._sock.sendto("\n".join(fields).encode(), self.address)

    def state(self, health: Health, stats: Stats) -> None:
        """A change of state: ``READY=1`` the first time the daemon is ready, ``STOPPING=1``
        when it stops, at once and with the status line; other changes reach the manager
        with the next status line (``status``)."""
        fields = []
        if health.ready and not self._ready:
            self._ready = True
            fields.append("READY=1")
        if health.state.value == "stopping":
            fields.append("STOPPING=1")
        if fields:
            self._status = status_line(health, stats)
            self.notify(*fields, f"STATUS={self._status}")

    def status(self, line: str) -> None:
        """``STATUS=line``, when it differs from the last one sent."""
        if line != self._status:
            self._status = line
            self.notify(f"STATUS={line}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def status_line(health: Health, stats: Stats) -> str:
    """What ``systemctl status`` shows: the role and what it does, then where the daemon
    is and how far behind the source, e.g. ``active, streaming from 0/1A2B3C8#0, at
    0/1A2C000#2, 12 ms behind``. Before it works (or after): the reason alone."""
    state = health.state.value
    if state in ("streaming", "snapshotting"):
        line = f"active, {health.reason}"
    elif state == "standby":
        line = f"standby, {health.reason}"
    else:
        line = health.reason
    if stats.acked is not None and state != "starting":
        line += f", at {stats.acked.position}"
        behind = stats.behind_source_ms
        if behind is not None:
            line += f", {behind} ms behind"
    return line


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between two ``WATCHDOG=1``: half of ``$WATCHDOG_USEC``, when it is set for
    this process (``$WATCHDOG_PID`` unset or ours, as ``sd_watchdog_enabled``); else None."""
    pid = environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for the process that started us
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


@contextlib.asynccontextmanager
async def notifying(ctx: Context) -> AsyncIterator[None]:
    """For the block: the status line when it changes, and the watchdog's pings when the
    service manager asked for them, from tasks on the running event loop."""
    notifier = ctx.notifier
    tasks = []
    if notifier.address:
        tasks.append(asyncio.create_task(_report_status(ctx), name="cdcd-notify-status"))
        interval = watchdog_interval()
        if interval is not None:
            tasks.append(asyncio.create_task(_ping(notifier, interval), name="cdcd-watchdog"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        notifier.close()


async def _report_status(ctx: Context) -> None:
    while True:
        ctx.notifier.status(status_line(ctx.health, ctx.stats))
        await asyncio.sleep(STATUS_INTERVAL_S)


async def _ping(notifier: Notifier, interval: float) -> None:
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(interval)
