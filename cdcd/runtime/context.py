"""What outlives a pipeline restart: the logger, the counters, the health state and the
notifier, in one ``Context`` that the daemon makes once and hands to what it starts."""

from __future__ import annotations

import bisect
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


# Bucket bounds (inclusive upper bounds, as Prometheus's ``le``).
BEHIND_SOURCE_MS_BUCKETS = (5, 10, 25, 50, 100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 3e4, 6e4, 3e5)
COMMIT_SECONDS_BUCKETS = (1e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class Histogram:
    """Observations counted in buckets (``counts[i]``: values up to ``bounds[i]``, the
    last: above every bound), without any metrics library: observed once a write, read
    at scrape time."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    sum: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


@dataclass
class Stats:
    """Counters over the daemon's whole life, across pipeline restarts (the registry the
    metrics endpoint reads: ``cdcd.runtime.metrics``). The pipeline counts a chunk or a
    write at a time, never an event at a time."""

    events: int = 0  # change and schema-change events read
    table_events: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (ns, table, op)
    filtered: int = 0  # change events dropped (pipeline.skipped_operations)
    erroneous: int = 0  # events that could not be decoded (the stream stops at the first)
    records: int = 0
    bytes_written: int = 0  # what the sink says it was handed (Kafka: record batches)
    transactions: int = 0
    last_event_at: float = 0.0  # when the last change was read (time.time()); 0: none yet
    acked: Checkpoint | None = None  # the last checkpoint Kafka holds and the source was told
    acked_at: float = 0.0  # when (time.time())
    # How far behind the source the last acknowledged change with a commit time was (its
    # commit time to the acknowledgement); None before the first.
    behind_source_ms: int | None = None
    behind_source: Histogram = field(default_factory=lambda: Histogram(BEHIND_SOURCE_MS_BUCKETS))
    commit_seconds: Histogram = field(default_factory=lambda: Histogram(COMMIT_SECONDS_BUCKETS))
    source_connected: bool = False  # the source is prepared and streams
    sink_connected: bool = False  # Kafka is reached
    restarts: int = 0  # starts over after a failure that may pass
    leadership_changes: int = 0  # an active/standby pair's takeovers (issue #14)

    def acknowledged(self, checkpoint: Checkpoint) -> None:
        self.acked = checkpoint
        self.acked_at = now = time.time()
        if checkpoint.ts_ms:  # heartbeats and snapshot chunks carry no commit time
            behind = self.behind_source_ms = max(0, int(now * 1000) - checkpoint.ts_ms)
            self.behind_source.observe(behind)

    def count_tables(self, counts: dict[tuple[str, str, str], int]) -> None:
        """Add a chunk's change events by (namespace, table, operation)."""
        table_events = self.table_events
        for key, count in counts.items():
            table_events[key] = table_events.get(key, 0) + count


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
