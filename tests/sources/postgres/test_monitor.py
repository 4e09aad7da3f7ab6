"""The alarm behind the slot-lag warning and the heartbeat action query's: logged when it
begins, every minute while it lasts, once when it ends; and the ticks of the stream's
status updates and heartbeats."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from cdcd.sources.postgres.heartbeat import status_ticks
from cdcd.sources.postgres.monitor import REPEAT_S, Alarm


class Lines:
    """A logger that keeps what it is given."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, message: str, **fields: Any) -> None:
        self.lines.append(("warning", message, fields))

    def info(self, message: str, **fields: Any) -> None:
        self.lines.append(("info", message, fields))


def test_an_alarm_is_logged_when_it_begins_every_minute_while_on_and_when_it_ends():
    now = [100.0]
    log = Lines()
    alarm = Alarm(log, clock=lambda: now[0])
    alarm.cleared("back")  # never on: nothing to say
    for lag in (10, 20, 30):
        alarm.raised("behind", lag=lag)
        now[0] += 1
    assert log.lines == [("warning", "behind", {"lag": 10})]
    now[0] = 100.0 + REPEAT_S
    alarm.raised("behind", lag=40)
    alarm.raised("behind", lag=50)
    alarm.cleared("back", lag=1)
    alarm.cleared("back", lag=0)
    alarm.raised("behind", lag=60)  # a new crossing: at once
    assert log.lines == [
        ("warning", "behind", {"lag": 10}),
        ("warning", "behind", {"lag": 40}),
        ("info", "back", {"lag": 1}),
        ("warning", "behind", {"lag": 60}),
    ]


def test_status_ticks_mark_the_heartbeat_ticks_among_the_status_ones():
    async def ticks(status_s: float, heartbeat_s: float, count: int) -> list[tuple[float, bool]]:
        config = SimpleNamespace(status_interval_s=status_s, heartbeat_interval_s=heartbeat_s)
        began = time.monotonic()
        out = []
        async for beat in status_ticks(config):
            out.append((time.monotonic() - began, beat))
            if len(out) == count:
                return out
        raise AssertionError("the ticks ended")

    # Heartbeats more often than status updates: every tick is a heartbeat's.
    fast = asyncio.run(ticks(10.0, 0.05, 4))
    assert [beat for _, beat in fast] == [True] * 4
    assert 0.15 <= fast[-1][0] < 1.0, fast
    # Rarer: status ticks in between, a heartbeat at its interval.
    slow = asyncio.run(ticks(0.1, 0.25, 5))
    beats = [beat for _, beat in slow]
    assert beats[0] is False and beats.count(True) in (1, 2), slow
