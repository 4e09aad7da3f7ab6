"""The one place that decides order, as Debezium's ChangeEventSourceCoordinator does.

For one start of the pipeline: the source checks that it can continue from the stored
offset (``prepare``); the snapshot mode decides whether the tables are read
(``cdcd.snapshot.plan``); on a first start the position it starts from is stored before
anything is read (with the snapshot's progress when one begins); then the snapshot in a
consistent view, or the stream with watermarked snapshot chunks in it, or the stream
alone. Every position reaches the source only through the pipeline's ack, after Kafka
holds everything before it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from cdcd.checkpoint import Checkpoint
from cdcd.encoder import EnvelopeEncoder
from cdcd.errors import PositionLostError, SinkError
from cdcd.offsets import PinnableSource, StoredOffset, inside_transaction
from cdcd.runtime.context import Context, State
from cdcd.runtime.leadership import watched
from cdcd.runtime.pipeline import Pipeline, Stream
from cdcd.sinks.base import Sink, SinkUnavailableError
from cdcd.snapshot import ConsistentSnapshot, SnapshotReader, reader_of
from cdcd.snapshot.plan import Plan, plan_snapshot
from cdcd.snapshot.runner import consistent_chunks
from cdcd.snapshot.signals import INITIAL, Notices, Signal, SignalError, parse_signal
from cdcd.snapshot.window import Interleaver
from cdcd.sources.base import Source


class Coordinator:
    def __init__(self, ctx: Context, source: Source, sink: Sink) -> None:
        self.ctx = ctx
        self.source = source
        self.sink = sink
        self.pipeline: Pipeline | None = None
        self.plan: Plan | None = None
        self._stopped = False

    async def start(self, resume: StoredOffset | None) -> StoredOffset | None:
        """Make the source ready to stream from ``resume`` (``PositionLostError`` when it
        cannot continue from it exactly, unless ``when_needed`` snapshots instead); decide
        the snapshot; on a first start, store where it starts."""
        mode = self.ctx.config.snapshot.mode
        try:
            await self.source.prepare(resume.position if resume is not None else None)
        except PositionLostError as exc:
            if mode != "when_needed" or not callable(getattr(self.source, "snapshot_reader", None)):
                raise
            self.ctx.log.warning(
                "the stored position cannot be streamed from: snapshot.mode = when_needed "
                "reads the tables again from a new start position",
                error=str(exc),
            )
            resume = None
            await self.source.prepare(None)
        self.plan = await plan_snapshot(self.ctx.config, self.source, resume, self.ctx.log)
        if resume is None and keeps_offsets(self.sink):
            resume = await self._pin_start_position(self.plan)
        elif resume is None and self.plan is not None and self.plan.view is not None:
            resume = StoredOffset(self.plan.view.position)  # stdout: no offsets, same order
        return resume

    async def run(self, resume: StoredOffset | None) -> None:
        """The snapshot, when one is due, and the stream, until ``stop()``."""
        plan = self.plan
        if plan is None and self.ctx.config.snapshot.mode == "initial_only":
            self.ctx.log.info(
                "snapshot.mode = initial_only: the snapshot is done, nothing to stream"
            )
            return
        try:
            if plan is not None and plan.view is not None:
                view = plan.view
                await self._consistent_snapshot(plan, view, resume)
                if self._stopped or not plan.progress.finished or not plan.then_stream:
                    return
                resume = StoredOffset(view.position)
                plan = None  # done: the stream alone, steered by signals
            await self._stream(plan, resume)
        finally:
            if self.plan is not None:
                await self.plan.close()

    async def _consistent_snapshot(
        self, plan: Plan, view: ConsistentSnapshot, resume: StoredOffset | None
    ) -> None:
        self.ctx.enter(State.SNAPSHOTTING, f"reading {_tables(plan)}")
        config = self.ctx.config
        chunks = consistent_chunks(
            view,
            plan.tables,
            plan.progress,
            chunk_size=config.snapshot.chunk_size,
            threads=config.snapshot.max_threads,
            notices=Notices(config.sink.topic_prefix, INITIAL),
            log=self.ctx.log,
        )
        try:
            await self._pipeline(resume).run(chunks)
        finally:
            await view.close()
        if plan.progress.finished:
            self.ctx.log.info(
                "snapshot completed", rows=plan.progress.rows, tables=len(plan.tables)
            )

    async def _stream(self, plan: Plan | None, resume: StoredOffset | None) -> None:
        """The stream, with a snapshot's watermarked chunks in it when one runs, and the
        signals that start and steer snapshots."""
        position = resume.position if resume is not None else None
        stream: Stream = self.source.stream(position)
        if getattr(self.sink, "ha", None) is not None:  # a pair: a stalled source steps down
            timeout = self.ctx.config.ha.source_timeout_s
            answers = getattr(self.source, "answers", None)
            stream = watched(stream, timeout, self._ask_heartbeat, answers)
        signals = await self._signals()
        reader = plan.reader if plan is not None else None
        if reader is None and (signals is not None or self._signal_table()):
            reader = reader_of(self.source)
        pump: asyncio.Task[None] | None = None
        if reader is not None:
            queue: asyncio.Queue[Signal] = asyncio.Queue()
            stream = self._interleaver(reader, plan, queue).items(stream, position)
            if signals is not None:
                pump = asyncio.create_task(_pump(signals, queue), name="cdcd-signals")
        if plan is not None:
            what = f"streaming from {position}, reading {_tables(plan)}"
            self.ctx.enter(State.SNAPSHOTTING, what)
        else:
            self.ctx.enter(State.STREAMING, f"streaming from {position}")
        try:
            await self._pipeline(resume).run(stream, _cut_transaction(resume))
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await pump
            if signals is not None:
                await signals.close()
            if reader is not None and plan is None:
                await reader.close()

    def _interleaver(
        self, reader: SnapshotReader, plan: Plan | None, queue: asyncio.Queue[Signal]
    ) -> Interleaver:
        config = self.ctx.config
        return Interleaver(
            reader,
            plan.tables if plan is not None else [],
            plan.progress if plan is not None else None,
            chunk_size=config.snapshot.chunk_size,
            connector_name=config.sink.topic_prefix,
            source=self.source,
            log=self.ctx.log,
            then_stream=plan.then_stream if plan is not None else True,
            on_finished=lambda: self.ctx.enter(State.STREAMING, "snapshot completed"),
            signals=queue,
            signal_table=self._signal_table(),
        )

    async def _signals(self) -> Any:
        """The Kafka signal channel, when configured and the sink is Kafka."""
        topic = self.ctx.config.signals.kafka_topic
        open_channel = getattr(self.sink, "signal_channel", None)
        if not topic or not callable(open_channel) or reader_of_kind(self.source) is None:
            return None
        try:
            return await open_channel(topic, self.ctx.config.sink.topic_prefix)
        except SinkUnavailableError:
            raise  # Kafka itself is away: start over when it is back
        except SinkError as exc:
            # Signals are an extra: a daemon that may not read them still streams.
            self.ctx.log.warning(
                "signals off: the Kafka signal channel cannot be read",
                error=str(exc),
                fix=f"grant READ on topic {topic} and group cdcd-{self.ctx.config.name}-signals "
                '(and CREATE, or create the topic), or set signals.kafka_topic = ""',
            )
            return None

    def _ask_heartbeat(self) -> None:
        ask = getattr(self.source, "heartbeat_soon", None)
        if callable(ask):
            ask()

    def _signal_table(self) -> tuple[str, str] | None:
        table = self.ctx.config.signals.data_collection
        if not table:
            return None
        namespace, _, name = table.partition(".")
        return namespace, name

    def stop(self) -> None:
        """Drain and return (safe from a signal handler)."""
        self._stopped = True
        if self.pipeline is not None:
            self.pipeline.stop()

    @property
    def started_at(self) -> float | None:
        """When the running pipeline started (monotonic), if one did."""
        return self.pipeline.started_at if self.pipeline is not None else None

    def _pipeline(self, resume: StoredOffset | None) -> Pipeline:
        config = self.ctx.config
        encoder = EnvelopeEncoder.from_config(
            config, self.source.connector, restore=resume.transaction if resume else None
        )
        self.pipeline = Pipeline(
            self.sink,
            encoder,
            self._ack,
            stats=self.ctx.stats,
            log=self.ctx.log,
            max_batch_events=config.pipeline.max_batch_events,
            max_in_flight_batches=config.pipeline.max_in_flight_batches,
        )
        if self._stopped:
            self.pipeline.stop()
        return self.pipeline

    async def _ack(self, checkpoint: Checkpoint) -> None:
        await self.source.ack(checkpoint.position)

    async def _pin_start_position(self, plan: Plan | None) -> StoredOffset | None:
        """First start: store where the source starts (and the snapshot's progress, when
        one begins), before anything can be lost."""
        snapshot = plan.progress.to_dict() if plan is not None else None
        if plan is not None and plan.view is not None:
            offset = StoredOffset(plan.view.position, snapshot=snapshot)
        else:
            start_position = getattr(self.source, "start_position", None)
            if not callable(start_position):
                return None
            pinnable: PinnableSource = self.source  # type: ignore[assignment]
            offset = StoredOffset(await pinnable.start_position(), snapshot=snapshot)
        await (await self.sink.write([], offset))
        self.ctx.log.info("start position stored", position=str(offset.position))
        return offset


def keeps_offsets(sink: Any) -> bool:
    """False for a sink that stores no offsets (stdout): it guarantees no delivery."""
    return bool(getattr(sink, "keeps_offsets", True))


def _cut_transaction(resume: StoredOffset | None) -> str | None:
    """The transaction the stored offset cuts, which the stream must resume inside."""
    if resume is None or not inside_transaction(resume.position) or not resume.transaction:
        return None
    txid = resume.transaction.get("id")
    return str(txid) if txid is not None else None


def reader_of_kind(source: Any) -> Any:
    """The source's snapshot_reader method, if it can read tables (without opening one)."""
    make = getattr(source, "snapshot_reader", None)
    return make if callable(make) else None


async def _pump(channel: Any, queue: asyncio.Queue[Signal]) -> None:
    """Kafka signals into the interleaver's queue, each committed once queued (a signal
    that cannot be read becomes a refusal, answered with an ABORTED notification)."""
    async for tp, offset, value in channel.records():
        try:
            signal = parse_signal(value)
        except SignalError as exc:
            signal = Signal(f"kafka-{tp.partition}-{offset}", "invalid", message=str(exc))
        await queue.put(signal)
        await channel.commit(tp, offset)


def _tables(plan: Plan) -> str:
    count = len(plan.tables)
    return f"{count} table" if count == 1 else f"{count} tables"
