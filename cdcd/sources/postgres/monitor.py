"""The daemon's watch over its slot, every ``heartbeat_interval_s``, off the stream.

On a short session of its own (none stays open: a smart shutdown of the server is not
held up), it runs ``heartbeat_action_query`` when one is set (WAL in the slot's own
database, for a database that is idle while others are busy) and reads how far the
slot's confirmed position is behind the server's WAL end: ``lag_bytes``, which the
source offers as ``slot_lag_bytes`` (the metrics read it). Above ``slot_lag_alarm_bytes``
a warning names the slot and its lag, once when it crosses, again every minute while
it stays above, and an info line says when it is back.

It runs in the daemon's process whichever reader streams (``source.reader``); the
stream, its keepalives and heartbeat offsets are the source's (``source.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from cdcd.errors import SourceError

if TYPE_CHECKING:
    from cdcd.sources.postgres.config import PostgresSourceConfig
    from cdcd.sources.postgres.connection import Connector

REPEAT_S = 60.0  # an alarm still on is logged again this often

_LAG = (
    "SELECT (pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::bigint "
    "FROM pg_replication_slots WHERE slot_name = %s"
)


class Alarm:
    """A condition logged at warning level when it begins, again every ``repeat_s`` while
    it lasts, and at info level once when it ends; not once per check."""

    def __init__(
        self, log: Any, repeat_s: float = REPEAT_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.repeat_s = repeat_s
        self.clock = clock
        self.on = False
        self._logged = 0.0

    def raised(self, message: str, **fields: Any) -> None:
        """The condition holds (checked now)."""
        now = self.clock()
        if self.on and now - self._logged < self.repeat_s:
            return
        self.on, self._logged = True, now
        if self.log is not None:
            self.log.warning(message, **fields)

    def cleared(self, message: str, **fields: Any) -> None:
        """The condition does not hold (checked now)."""
        if not self.on:
            return
        self.on = False
        if self.log is not None:
            self.log.info(message, **fields)


async def slot_lag(conn: psycopg.AsyncConnection[Any], slot: str) -> int | None:
    """Bytes of WAL between the slot's confirmed position and the server's WAL end (None:
    no such slot, or no confirmed position yet)."""
    cur = await conn.execute(_LAG, (slot,))
    row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


class SlotMonitor:
    """Heartbeat action query and slot lag of one slot (see the module)."""

    def __init__(
        self, connector: Connector, config: PostgresSourceConfig, slot: str, log: Any
    ) -> None:
        self.connector = connector
        self.slot = slot
        self.log = log
        self.interval_s = config.heartbeat_interval_s
        self.action_query = config.heartbeat_action_query
        self.alarm_bytes = config.slot_lag_alarm_bytes
        self.lag_bytes: int | None = None
        self._lag_alarm = Alarm(log)
        self._query_alarm = Alarm(log)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Check now, then every ``heartbeat_interval_s`` until ``close`` (once started,
        starting again does nothing)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cdcd-pg-slot")

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval_s)

    async def check(self) -> None:
        """One round: the action query, then the lag (None when it cannot be read)."""
        try:
            conn = await self.connector.connect()
        except SourceError as exc:  # the stream says so, and starts over
            self.lag_bytes = None
            if self.log is not None:
                self.log.debug("cannot read the slot's lag", slot=self.slot, error=str(exc))
            return
        try:
            if self.action_query:
                await self._run_action_query(conn)
            try:
                self.lag_bytes = await slot_lag(conn, self.slot)
            except psycopg.Error as exc:  # a standby has no WAL end of its own
                self.lag_bytes = None
                if self.log is not None:
                    self.log.debug("cannot read the slot's lag", slot=self.slot, error=str(exc))
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
        self._judge_lag()

    async def _run_action_query(self, conn: psycopg.AsyncConnection[Any]) -> None:
        assert self.action_query is not None
        try:
            await conn.execute(self.action_query.encode())  # not a template: '%' as written
        except psycopg.Error as exc:
            self._query_alarm.raised(
                "source.heartbeat_action_query failed (the daemon streams on; cdcd check "
                "names the grant it needs)",
                slot=self.slot,
                error=exc.diag.message_primary or str(exc),
            )
            return
        self._query_alarm.cleared("source.heartbeat_action_query runs again", slot=self.slot)

    def _judge_lag(self) -> None:
        lag, alarm = self.lag_bytes, self.alarm_bytes
        if alarm is None or lag is None:
            return
        if lag > alarm:
            self._lag_alarm.raised(
                f"replication slot {self.slot!r} is {lag} bytes behind the server's WAL end, "
                f"more than source.slot_lag_alarm_bytes ({alarm}): the server keeps that WAL "
                "until cdcd confirms it",
                slot=self.slot,
                lag_bytes=lag,
                alarm_bytes=alarm,
            )
        else:
            self._lag_alarm.cleared(
                f"replication slot {self.slot!r} is back within source.slot_lag_alarm_bytes",
                slot=self.slot,
                lag_bytes=lag,
                alarm_bytes=alarm,
            )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
