"""What outlives a pipeline restart: the logger, the counters, the health state and the
notifier, in one ``Context`` that the daemon makes once and hands to what it starts."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cdcd.runtime.notify import Notifier

if TYPE_CHECKING:
    from cdcd.checkpoint import Checkpoint
    from cdcd.config import Config


class State(enum.Enum):
    """Where the daemon is in its life. ``STANDBY``: connected and waiting to lead (an
    active/standby pair); ``SNAPSHOTTING``: reading tables; ``STREAMING``: the log."""

    STARTING = "starting"
    STANDBY = "standby"
    SNAPSHOTTING = "snapshotting"
    STREAMING = "streaming"
    STOPPING = "stopping"


@dataclass
class Stats:
    """Counters over the daemon's whole life, across pipeline restarts (the registry the
    metrics endpoint reads)."""

    events: int = 0
    records: int = 0
    transactions: int = 0
    acked: Checkpoint | None = None  # the last checkpoint Kafka holds and the source was told
    acked_at: float = 0.0  # when (time.time())
    restarts: int = 0  # starts over after a failure that may pass

    def acknowledged(self, checkpoint: Checkpoint) -> None:
        self.acked = checkpoint
        self.acked_at = time.time()

    @property
    def behind_source_ms(self) -> int | None:
        """How far behind the source the last acknowledged change was when it was (its
        commit time to the acknowledgement); None before the first."""
        if self.acked is None or not self.acked.ts_ms:
            return None
        return max(0, int(self.acked_at * 1000) - self.acked.ts_ms)


@dataclass
class Health:
    """The daemon's state and, when it is not working, why (for readiness probes)."""

    state: State = State.STARTING
    reason: str = "starting"
    since: float = field(default_factory=time.monotonic)

    def enter(self, state: State, reason: str = "") -> None:
        self.state, self.reason, self.since = state, reason or state.value, time.monotonic()

    @property
    def ready(self) -> bool:
        """Streaming, snapshotting, or a warm standby."""
        return self.state in (State.STREAMING, State.SNAPSHOTTING, State.STANDBY)


@dataclass
class Context:
    """One per daemon: made at start, handed to each pipeline it runs."""

    config: Config
    log: Any
    stats: Stats = field(default_factory=Stats)
    health: Health = field(default_factory=Health)
    notifier: Notifier = field(default_factory=Notifier)

    def enter(self, state: State, reason: str = "") -> None:
        """Move to ``state``: the health state changes and the service manager is told."""
        self.health.enter(state, reason)
        self.notifier.state(self.health, self.stats)
