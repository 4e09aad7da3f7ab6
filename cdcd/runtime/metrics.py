"""Prometheus metrics, computed when scraped, from what the daemon already keeps.

Nothing here runs per event: the pipeline counts into ``Stats`` a chunk or a write at a
time (``cdcd.runtime.context``), and this collector turns those counters, the health
state, the last acknowledged checkpoint (position, snapshot progress) and what the
running pipeline and source offer (queues, ``slot_lag_bytes``) into metric families at
each scrape. Names start with ``cdcd_``; Debezium's MBean attributes become labels
(README.md, "Metrics", lists them all). Counters count over the daemon's life, across its
in-process restarts, as ``Stats`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from cdcd import __version__
from cdcd.runtime.context import Context, Histogram, State

if TYPE_CHECKING:
    from cdcd.runtime.coordinator import Coordinator

# The parts of a source position that are numbers (``Position.numbers``).
_POSITION_HELP = {
    "lsn": "PostgreSQL: the commit LSN of the last acknowledged change, as an integer",
    "binlog_file": "MySQL/MariaDB: the number of the binlog file of the last acknowledged position",
    "binlog_position": "MySQL/MariaDB: the offset in that binlog file",
    "gtid_sequence": "MySQL/MariaDB: the last acknowledged transaction number of each GTID "
    "source (MySQL: uuid[:tag], MariaDB: domain)",
}
_POSITION_LABELS = {"gtid_sequence": ["gtid_source"]}


def _counter(name: str, help: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help, value=value)


def _gauge(name: str, help: str, value: float | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help, value=value)


def _histogram(name: str, help: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        total += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
    return HistogramMetricFamily(name, help, buckets=buckets, sum_value=histogram.sum)


class DaemonCollector:
    """The daemon's metrics; ``running`` gives the coordinator of the current start
    (None between starts), for what only the running pipeline and source know."""

    def __init__(self, ctx: Context, running: Callable[[], Coordinator | None]) -> None:
        self.ctx = ctx
        self.running = running

    def collect(self) -> Iterator[Metric]:
        coordinator = self.running()
        yield from self._streaming()
        yield from self._latency()
        yield from self._life()
        yield from self._position()
        yield from self._snapshot()
        yield from self._live(coordinator)

    def _streaming(self) -> Iterator[Metric]:
        stats = self.ctx.stats
        events = CounterMetricFamily(
            "cdcd_events",
            "Change events read from the source (filtered ones included), by table "
            "(schema.table or database.table) and operation (c, u, d, t; r: snapshot rows)",
            labels=["table", "op"],
        )
        for (namespace, table, op), count in sorted(stats.table_events.items()):
            events.add_metric([f"{namespace}.{table}", op], count)
        yield events
        yield _counter(
            "cdcd_events_filtered",
            "Change events dropped before publishing (pipeline.skipped_operations)",
            stats.filtered,
        )
        yield _counter(
            "cdcd_events_erroneous",
            "Events that could not be decoded (the stream stops at the first: none is skipped)",
            stats.erroneous,
        )
        yield _counter(
            "cdcd_source_transactions",
            "Source transactions read whole (committed on the source)",
            stats.transactions,
        )
        yield _counter("cdcd_records", "Records handed to the sink", stats.records)
        yield _counter(
            "cdcd_bytes_written",
            "Bytes handed to the sink (Kafka: record batches before compression)",
            stats.bytes_written,
        )

    def _latency(self) -> Iterator[Metric]:
        stats = self.ctx.stats
        yield _gauge(
            "cdcd_milliseconds_behind_source",
            "From the source's commit of the last acknowledged change to its acknowledgement "
            "(Debezium's MilliSecondsBehindSource; clocks of both hosts included)",
            stats.behind_source_ms,
        )
        yield _histogram(
            "cdcd_behind_source_milliseconds",
            "Milliseconds behind the source, one observation per acknowledged commit",
            stats.behind_source,
        )
        since = None
        if stats.last_event_at:
            since = max(0.0, (time.time() - stats.last_event_at) * 1000)
        yield _gauge(
            "cdcd_milliseconds_since_last_event",
            "Since the last change event was read (none before the first)",
            since,
        )
        yield _histogram(
            "cdcd_kafka_commit_seconds",
            "From a write that ends at a source commit handed to the sink to Kafka holding "
            "it (exactly-once: the Kafka transaction committed)",
            stats.commit_seconds,
        )
        yield _gauge(
            "cdcd_last_acknowledged_timestamp_seconds",
            "When the source was last told that Kafka holds its changes (Unix time)",
            stats.acked_at if stats.acked is not None else None,
        )

    def _life(self) -> Iterator[Metric]:
        ctx, stats = self.ctx, self.ctx.stats
        yield _counter(
            "cdcd_restarts",
            "Starts over from the last committed offset after a failure that may pass",
            stats.restarts,
        )
        yield _counter(
            "cdcd_leadership_changes",
            "Changes of role in an active/standby pair",
            stats.leadership_changes,
        )
        yield _gauge(
            "cdcd_source_connected", "1 when the source is connected", stats.source_connected
        )
        yield _gauge(
            "cdcd_sink_connected", "1 when the sink (Kafka) is connected", stats.sink_connected
        )
        state = ctx.health.state
        role = GaugeMetricFamily(
            "cdcd_role", "1 for the role the daemon has (active or standby)", labels=["role"]
        )
        role.add_metric(["active"], state is not State.STANDBY)
        role.add_metric(["standby"], state is State.STANDBY)
        yield role
        states = GaugeMetricFamily(
            "cdcd_state", "1 for the state the daemon is in (/readyz says why)", labels=["state"]
        )
        for each in State:
            states.add_metric([each.value], each is state)
        yield states
        info = GaugeMetricFamily(
            "cdcd_info", "The daemon: name, version, source and sink kinds", labels=[
                "name", "version", "source", "sink"
            ]
        )  # fmt: skip
        config = ctx.config
        info.add_metric([config.name, __version__, config.source.kind, config.sink.kind], 1)
        yield info

    def _position(self) -> Iterator[Metric]:
        acked = self.ctx.stats.acked
        families: dict[str, GaugeMetricFamily] = {}
        for name, help in _POSITION_HELP.items():
            families[name] = GaugeMetricFamily(
                f"cdcd_source_{name}", help, labels=_POSITION_LABELS.get(name, [])
            )
        if acked is not None:
            for name, labels, value in acked.position.numbers():
                family = families.get(name)
                if family is not None:
                    family.add_metric(list(labels.values()), value)
        yield from families.values()

    def _snapshot(self) -> Iterator[Metric]:
        """From the progress that rides on the last acknowledged checkpoint: what Kafka
        holds of the snapshot running (stored with the offset, so it survives restarts)."""
        acked = self.ctx.stats.acked
        progress: dict[str, Any] = (acked.snapshot if acked is not None else None) or {}
        pending = progress.get("pending") or []
        running = bool(pending)
        yield _gauge("cdcd_snapshot_running", "1 while a snapshot runs", running)
        yield _gauge(
            "cdcd_snapshot_paused",
            "1 while the snapshot is paused",
            running and bool(progress.get("paused")),
        )
        yield _gauge(
            "cdcd_snapshot_tables_total",
            "Tables of the running snapshot",
            int(progress.get("total") or len(pending)) if running else 0,
        )
        yield _gauge(
            "cdcd_snapshot_tables_remaining",
            "Tables of the running snapshot not read to their end yet",
            len(pending),
        )
        rows = GaugeMetricFamily(
            "cdcd_snapshot_rows_scanned",
            "Rows of the running snapshot written to Kafka, by table (every snapshot's rows "
            'over the daemon\'s life: cdcd_events_total{op="r"})',
            labels=["table"],
        )
        if running:
            for table, count in sorted((progress.get("table_rows") or {}).items()):
                rows.add_metric([table], count)
        yield rows
        started_ms = progress.get("started_ms") or 0
        duration = max(0.0, time.time() - started_ms / 1000) if running and started_ms else 0.0
        yield _gauge(
            "cdcd_snapshot_duration_seconds",
            "How long the running snapshot has run, pauses and restarts included",
            duration,
        )

    def _live(self, coordinator: Coordinator | None) -> Iterator[Metric]:
        capacity = GaugeMetricFamily(
            "cdcd_queue_capacity",
            "Size of each bounded queue between the source and Kafka (segments: encoded "
            "records waiting for the writer; deliveries: writes waiting for Kafka to commit)",
            labels=["queue"],
        )
        remaining = GaugeMetricFamily(
            "cdcd_queue_remaining", "Free places in each of those queues", labels=["queue"]
        )
        pipeline = coordinator.pipeline if coordinator is not None else None
        if pipeline is not None:
            for name, size, free in pipeline.queues():
                capacity.add_metric([name], size)
                remaining.add_metric([name], free)
        yield capacity
        yield remaining
        source = coordinator.source if coordinator is not None else None
        lag = getattr(source, "slot_lag_bytes", None)
        yield _gauge(
            "cdcd_slot_lag_bytes",
            "PostgreSQL: WAL the replication slot holds back on the server, in bytes",
            lag,
        )


def registry_of(collectors: Iterable[Any]) -> CollectorRegistry:
    """A registry of ``collectors`` and the process's own metrics (CPU, memory, open
    files, garbage collections): one for each daemon, not the library's global one."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (*collectors, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus's text format."""
    return generate_latest(registry)
