"""The metrics, without servers: what the pipeline counts (a chunk or a write at a time),
and what the collector makes of it, read back through Prometheus's own text parser."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from cdcd import __version__
from cdcd.checkpoint import Checkpoint
from cdcd.config import parse_config
from cdcd.encoder import EnvelopeEncoder
from cdcd.envelope import EnvelopeBuilder
from cdcd.errors import DecodeError
from cdcd.events import ChangeEvent, Commit
from cdcd.positions import MysqlPosition, PgPosition
from cdcd.runtime.context import Context, Histogram, State, Stats
from cdcd.runtime.metrics import DaemonCollector, exposition, registry_of
from cdcd.runtime.pipeline import Pipeline
from cdcd.sinks.stdout.sink import StdoutSink
from cdcd.sources.mysql.gtid import latest_sequences
from cdcd.topics import TopicNaming
from cdcd.transforms.builtin import DeleteTombstones, DropOperations, TableTopics

CONFIG = {
    "name": "shop",
    "source": {"kind": "postgres", "dsn": "postgresql://cdc@127.0.0.1:5432/shop"},
    "sink": {"kind": "stdout"},
}


def change(op: str, namespace: str, table: str, i: int) -> ChangeEvent:
    row = {"id": i}
    return ChangeEvent(
        op, namespace, table, row, row if op == "d" else None, None if op == "d" else row, {}
    )


def scrape(ctx: Context, running: Any = None) -> dict[str, Any]:
    """The collector's families as Prometheus reads them, by name."""
    registry = registry_of([DaemonCollector(ctx, lambda: running)])
    text = exposition(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], metric: str, /, **labels: str) -> float:
    """The value of the sample ``metric{labels}`` (a counter's ``_total``, a histogram's
    ``_bucket``, ``_count``, ``_sum`` found in their family)."""
    family = metric
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if family not in families:
            family = metric.removesuffix(suffix)
    for sample in families[family].samples:
        if sample.name == metric and sample.labels == labels:
            return float(sample.value)
    raise AssertionError(f"no sample {metric}{labels} in {families[family].samples}")


# -- counting by table and operation ------------------------------------------------------

_names = st.sampled_from(["orders", "lines", "items"])
_ops = st.sampled_from(["c", "u", "d", "r", "t"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.tuples(st.sampled_from(["shop", "billing"]), _names, _ops), st.just(None)),
        max_size=60,
    ),
    st.booleans(),
)
def test_the_builder_counts_every_change_by_table_and_operation(plan, fresh_strings):
    """Runs of equal (namespace, table, op) are counted together, whatever the order, and
    equal names that are distinct objects (as decoded from a reader process's JSON)
    count as one."""
    items: list[Any] = []
    for i, entry in enumerate(plan):
        if entry is None:
            items.append(Commit(PgPosition(i + 1)))
            continue
        namespace, table, op = entry
        if fresh_strings:  # distinct string objects of the same value
            namespace, table, op = ("".join(list(s)) for s in (namespace, table, op))
        items.append(change(op, namespace, table, i))
    builder = EnvelopeBuilder("shop", "postgresql")
    builder.messages(items, 1)
    assert builder.counts == Counter(e for e in plan if e is not None)


def test_pipeline_counts_add_up_across_restarts_and_filters():
    """Two pipelines over one Stats (a restart in the same process): the counters go on;
    skipped operations count as filtered, and as events by table and operation too."""
    stats = Stats()
    out = io.BytesIO()
    chunks = [
        [
            change("c", "shop", "orders", 1),
            change("c", "shop", "orders", 2),
            change("u", "shop", "orders", 1),
            Commit(PgPosition(10), "1", ts_ms=1),
        ],
        [change("d", "shop", "lines", 3), Commit(PgPosition(20), "2", ts_ms=1)],
    ]
    acks: list[Checkpoint] = []

    async def ack(checkpoint: Checkpoint) -> None:
        acks.append(checkpoint)

    for _ in range(2):
        sink = StdoutSink(out)
        encoder = EnvelopeEncoder(
            EnvelopeBuilder("shop", "postgresql"),
            [
                DropOperations(frozenset({"u"})),
                TableTopics(TopicNaming("shop")),
                DeleteTombstones(),
            ],
        )
        asyncio.run(_drain(Pipeline(sink, encoder, ack, stats=stats), chunks))
    assert stats.table_events == {
        ("shop", "orders", "c"): 4,
        ("shop", "orders", "u"): 2,
        ("shop", "lines", "d"): 2,
    }
    assert stats.events == 8 and stats.filtered == 2 and stats.transactions == 4
    assert stats.records == 8  # 2 inserts and a delete with its tombstone, twice
    assert stats.bytes_written == len(out.getvalue())  # every byte the sink wrote
    # One observation a write that ends at a commit (joined segments make one write).
    assert acks and sum(stats.commit_seconds.counts) == len(acks)
    assert stats.behind_source_ms is not None and sum(stats.behind_source.counts) == len(acks)
    assert stats.last_event_at > 0


async def _no_ack(_checkpoint: Checkpoint) -> None:
    return None


async def _drain(pipeline: Pipeline, chunks: list[list[Any]]) -> None:
    async def stream() -> Any:
        for chunk in chunks:
            yield chunk

    await pipeline.run(stream())


def test_an_event_that_cannot_be_decoded_counts_as_erroneous():
    stats = Stats()

    async def stream() -> Any:
        yield [change("c", "shop", "orders", 1)]
        raise DecodeError("a row image that cannot be read")

    encoder = EnvelopeEncoder(
        EnvelopeBuilder("shop", "postgresql"), [TableTopics(TopicNaming("shop"))]
    )
    pipeline = Pipeline(StdoutSink(io.BytesIO()), encoder, _no_ack, stats=stats)
    with pytest.raises(DecodeError):
        asyncio.run(pipeline.run(stream()))
    assert stats.erroneous == 1 and stats.events == 1


def test_a_histogram_counts_a_value_on_a_bound_in_that_bound():
    histogram = Histogram((1, 5))
    for observed in (0.5, 1, 1.01, 5, 7):
        histogram.observe(observed)
    assert histogram.counts == [2, 2, 1] and histogram.sum == pytest.approx(14.51)


# -- the collector ----------------------------------------------------------------------


def context() -> Context:
    return Context(parse_config(CONFIG), log=None)


def test_the_scrape_says_what_the_stats_hold():
    ctx = context()
    stats = ctx.stats
    stats.table_events = {("shop", "orders", "c"): 7, ("shop", "orders", "d"): 2}
    stats.filtered, stats.erroneous, stats.transactions = 3, 0, 4
    stats.records, stats.bytes_written, stats.restarts = 11, 4096, 2
    for ms in (3, 40, 40, 900_000):
        stats.behind_source.observe(ms)
    stats.commit_seconds.observe(0.02)
    stats.acknowledged(Checkpoint(PgPosition(0x16_B374D848), ts_ms=1))
    stats.source_connected = True
    ctx.enter(State.STREAMING, "streaming from 0/1#0")
    families = scrape(ctx)
    info = {"name": "shop", "version": __version__, "source": "postgres", "sink": "stdout"}
    expected: list[tuple[str, dict[str, str], float]] = [
        ("cdcd_events_total", {"table": "shop.orders", "op": "c"}, 7),
        ("cdcd_events_total", {"table": "shop.orders", "op": "d"}, 2),
        ("cdcd_events_filtered_total", {}, 3),
        ("cdcd_source_transactions_total", {}, 4),
        ("cdcd_records_total", {}, 11),
        ("cdcd_bytes_written_total", {}, 4096),
        ("cdcd_restarts_total", {}, 2),
        ("cdcd_behind_source_milliseconds_bucket", {"le": "5.0"}, 1),
        ("cdcd_behind_source_milliseconds_bucket", {"le": "50.0"}, 3),
        ("cdcd_behind_source_milliseconds_bucket", {"le": "+Inf"}, 5),
        ("cdcd_behind_source_milliseconds_count", {}, 5),
        ("cdcd_kafka_commit_seconds_count", {}, 1),
        ("cdcd_milliseconds_behind_source", {}, stats.behind_source_ms or -1),
        ("cdcd_source_lsn", {}, 0x16_B374D848),
        ("cdcd_source_connected", {}, 1),
        ("cdcd_sink_connected", {}, 0),
        ("cdcd_role", {"role": "active"}, 1),
        ("cdcd_state", {"state": "streaming"}, 1),
        ("cdcd_state", {"state": "starting"}, 0),
        ("cdcd_info", info, 1),
    ]
    assert [value(families, metric, **labels) for metric, labels, _ in expected] == [
        v for _, _, v in expected
    ]
    assert value(families, "cdcd_snapshot_running") == 0
    assert not families["cdcd_milliseconds_since_last_event"].samples  # no event yet
    assert not families["cdcd_slot_lag_bytes"].samples  # no source running
    assert "process_resident_memory_bytes" in families


def test_a_standby_says_so_in_its_role():
    ctx = context()
    ctx.stats.leadership_changes = 1
    ctx.enter(State.STANDBY, "waiting to lead")
    families = scrape(ctx)
    assert value(families, "cdcd_role", role="standby") == 1
    assert value(families, "cdcd_role", role="active") == 0
    assert value(families, "cdcd_leadership_changes_total") == 1


def test_a_mysql_position_as_numbers():
    ctx = context()
    position = MysqlPosition("mariadb", "0-1-100,3-2-7", "mariadb-bin.000042", 1234, server="id:1")
    ctx.stats.acknowledged(Checkpoint(position))
    families = scrape(ctx)
    assert value(families, "cdcd_source_binlog_file") == 42
    assert value(families, "cdcd_source_binlog_position") == 1234
    assert value(families, "cdcd_source_gtid_sequence", gtid_source="0") == 100
    assert value(families, "cdcd_source_gtid_sequence", gtid_source="3") == 7
    assert not families["cdcd_source_lsn"].samples


def test_gtid_sets_give_each_sources_last_transaction_number():
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    other = "4e11fa47-71ca-11e1-9e33-c80aa9429562"
    assert latest_sequences(f"{uuid}:1-100:200-300,{other}:5:alpha:1-2", "mysql") == {
        uuid: 300,
        other: 5,
        f"{other}:alpha": 2,
    }
    assert latest_sequences("0-1-100,1-2-5", "mariadb") == {"0": 100, "1": 5}


def test_snapshot_progress_comes_from_the_last_acknowledged_checkpoint():
    ctx = context()
    progress = {
        "id": "s1",
        "kind": "incremental",
        "pending": ["shop.lines", "shop.items"],
        "total": 3,
        "rows": 1500,
        "paused": True,
        "started_ms": 1,
        "table_rows": {"shop.orders": 1000, "shop.lines": 500},
    }
    ctx.stats.acknowledged(Checkpoint(PgPosition(10), snapshot=progress))
    families = scrape(ctx)
    assert value(families, "cdcd_snapshot_running") == 1
    assert value(families, "cdcd_snapshot_paused") == 1
    assert value(families, "cdcd_snapshot_tables_total") == 3
    assert value(families, "cdcd_snapshot_tables_remaining") == 2
    assert value(families, "cdcd_snapshot_rows_scanned", table="shop.orders") == 1000
    assert value(families, "cdcd_snapshot_duration_seconds") > 0
    ctx.stats.acknowledged(Checkpoint(PgPosition(20)))  # the snapshot is done
    families = scrape(ctx)
    assert value(families, "cdcd_snapshot_running") == 0
    assert value(families, "cdcd_snapshot_tables_remaining") == 0
    assert not families["cdcd_snapshot_rows_scanned"].samples


class _Running:
    """What the collector reads of a running start: the pipeline's queues, the source."""

    def __init__(self, pipeline: Pipeline, slot_lag_bytes: int | None) -> None:
        self.pipeline = pipeline
        self.source = type("Source", (), {"slot_lag_bytes": slot_lag_bytes})()


def test_queues_and_slot_lag_of_the_running_start():
    ctx = context()
    encoder = EnvelopeEncoder(EnvelopeBuilder("shop", "postgresql"), [])
    pipeline = Pipeline(StdoutSink(io.BytesIO()), encoder, _no_ack, max_in_flight_batches=5)
    families = scrape(ctx, _Running(pipeline, 123_456))
    assert value(families, "cdcd_queue_capacity", queue="deliveries") == 5
    assert value(families, "cdcd_queue_remaining", queue="deliveries") == 5
    assert value(families, "cdcd_queue_capacity", queue="segments") == 2
    assert value(families, "cdcd_slot_lag_bytes") == 123_456


def test_no_secret_reaches_the_scrape(monkeypatch):
    monkeypatch.setenv("CDCD_TEST_SECRET", "env-s3cret")
    source = {"kind": "postgres", "dsn": "postgresql://cdc:dsn-s3cret@db:5432/shop"}
    config = parse_config({**CONFIG, "source": {**source, "password_env": "CDCD_TEST_SECRET"}})
    ctx = Context(config, log=None)
    ctx.stats.acknowledged(Checkpoint(PgPosition(10), ts_ms=1))
    ctx.enter(State.STARTING, "source unavailable: waiting for PostgreSQL at db:5432")
    text = exposition(registry_of([DaemonCollector(ctx, lambda: None)])).decode()
    assert "s3cret" not in text and "cdc:" not in text
