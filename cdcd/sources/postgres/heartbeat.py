"""When the inline stream gives heartbeats: on its own, a heartbeat interval's ticks
(``status_ticks``); and at once, when asked for (``HeartbeatSource.heartbeat_soon``).

Every ``heartbeat_interval_s`` a heartbeat is due: the stream asks the server for a
keepalive (a status update with the reply flag), and the WAL end it carries becomes a
heartbeat ``Commit`` once nothing is on its way to Kafka (``source._on_keepalive``). The
server sends keepalives of its own only now and then (``wal_sender_timeout``), so WAL
of other databases and of tables not captured would otherwise be confirmed rarely.

A watermarked snapshot chunk waits until the stream has given every transaction
committed before its high watermark; on an idle database nothing would come for a
status interval or more. Asked for a heartbeat, the stream reads the WAL's insert
position now (the target: at or past every commit so far, ``slot.insert_lsn``) and
keeps asking the server for a keepalive (a status update with the reply flag, answered
at once) until a heartbeat or a commit at or past the target has been given. Asking
again, not once: the walsender may answer before it has decoded the newest WAL (or
before the server has written it: an asynchronous commit's within ``wal_writer_delay``),
and the stream holds a heartbeat back while it is inside a transaction or while its
last commit is still on its way to Kafka (the ack rule), so a single answer may produce
nothing (``_on_keepalive``). A target never written (records of a transaction still
open, on a page not yet full) is reached once the server writes them (at the latest
with its next running-transactions record, every 15 s), or given up after ``GIVE_UP_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from cdcd.positions import PgPosition

_PG_EPOCH_US = 946_684_800 * 1_000_000
_STATUS = struct.Struct(">cQQQqB")


def status_update(lsn: int, reply: bool = False) -> bytes:
    """A standby status update: ``lsn`` written, flushed and applied; ``reply``: the
    server is to answer with a keepalive."""
    clock = time.time_ns() // 1000 - _PG_EPOCH_US
    return _STATUS.pack(b"r", lsn, lsn, lsn, clock, int(reply))


ASK_EVERY_S = 0.05  # a keepalive asked for this often while a heartbeat is wanted
GIVE_UP_S = 30.0  # then the stream's own commits and heartbeats carry on


async def status_ticks(config: Any) -> AsyncIterator[bool]:
    """A tick every ``status_interval_s`` (a standby status update is due) and every
    ``heartbeat_interval_s`` (True: a heartbeat is due too), whichever comes first."""
    status_s, beat_s = config.status_interval_s, config.heartbeat_interval_s
    now = time.monotonic()
    next_status, next_beat = now + status_s, now + beat_s
    while True:
        await asyncio.sleep(max(0.0, min(next_status, next_beat) - time.monotonic()))
        now = time.monotonic()
        beat = now >= next_beat
        if beat:
            next_beat = now + beat_s
        next_status = now + status_s
        yield beat


class HeartbeatRequests:
    """``wal_end()`` reads the target (a new session); ``ask_server()`` sends a status update
    with the reply flag (nothing when the stream is not running)."""

    def __init__(
        self, wal_end: Callable[[], Awaitable[PgPosition]], ask_server: Callable[[], None], log: Any
    ) -> None:
        self._wal_end = wal_end
        self._ask_server = ask_server
        self.log = log
        self.target: int | None = None  # a heartbeat must reach this LSN
        self._given = 0  # the stream gave everything up to this LSN
        self._deadline = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._asking: asyncio.Task[None] | None = None

    def request(self) -> None:
        """A heartbeat at or past every transaction committed before this call."""
        task = asyncio.get_running_loop().create_task(self._target(), name="cdcd-pg-heartbeat")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def urgent(self, wal_end: int) -> bool:
        """Whether a heartbeat at ``wal_end`` answers a request (so: no throttle)."""
        return self.target is not None and wal_end >= self.target

    def given(self, lsn: int) -> None:
        """The stream gave a commit or heartbeat at ``lsn`` (or starts there)."""
        self._given = max(self._given, lsn)
        if self.target is not None and lsn >= self.target:
            self.target = None

    async def _target(self) -> None:
        try:
            lsn = (await self._wal_end()).commit_lsn
        except Exception as exc:  # noqa: BLE001 - the stream reports a lost server itself
            if self.log is not None:
                self.log.warning("cannot read the WAL end for a heartbeat", error=str(exc))
            return
        if lsn <= self._given:
            return  # given already (no heartbeat could go further: nothing new in the WAL)
        self.target = lsn if self.target is None else max(self.target, lsn)
        self._deadline = time.monotonic() + GIVE_UP_S
        if self._asking is None or self._asking.done():
            self._asking = asyncio.get_running_loop().create_task(self._ask())

    async def _ask(self) -> None:
        while self.target is not None:
            if time.monotonic() > self._deadline:
                self.target = None
                return
            with contextlib.suppress(Exception):  # a lost connection: the stream says so
                self._ask_server()
            await asyncio.sleep(ASK_EVERY_S)

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._asking] if self._asking is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.target = None
