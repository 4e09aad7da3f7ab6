"""The one place that decides order, as Debezium's ChangeEventSourceCoordinator does.

For one start of the pipeline: the source checks that it can continue from the stored
offset (``prepare``); on a first start the position it starts from is stored before
anything is read; a snapshot runs when one is due (``cdcd.snapshot``); then the stream.
Every position reaches the source only through the pipeline's ack, after Kafka holds
everything before it.
"""

from __future__ import annotations

from typing import Any

from cdcd.checkpoint import Checkpoint
from cdcd.encoder import EnvelopeEncoder
from cdcd.offsets import PinnableSource, StoredOffset, inside_transaction
from cdcd.runtime.context import Context, State
from cdcd.runtime.pipeline import Pipeline
from cdcd.sinks.base import Sink
from cdcd.snapshot import snapshot_of
from cdcd.sources.base import Source


class Coordinator:
    def __init__(self, ctx: Context, source: Source, sink: Sink) -> None:
        self.ctx = ctx
        self.source = source
        self.sink = sink
        self.pipeline: Pipeline | None = None
        self._stopped = False

    async def start(self, resume: StoredOffset | None) -> StoredOffset | None:
        """Make the source ready to stream from ``resume`` (``PositionLostError`` when it
        cannot continue from it exactly); on a first start, store where it starts."""
        await self.source.prepare(resume.position if resume is not None else None)
        if resume is None:
            resume = await self._pin_start_position()
        return resume

    async def run(self, resume: StoredOffset | None) -> None:
        """The snapshot, when one is due, then the stream, until ``stop()``."""
        snapshot = snapshot_of(self.source)
        if snapshot is not None and snapshot.due(resume):
            self.ctx.enter(State.SNAPSHOTTING, "reading the tables")
            await self._pipeline(resume).run(snapshot.chunks(resume))
            if self._stopped:
                return
            resume = await self.sink.read_offset()  # where the snapshot handed over
        position = resume.position if resume is not None else None
        self.ctx.enter(State.STREAMING, f"streaming from {position}")
        await self._pipeline(resume).run(self.source.stream(position), _cut_transaction(resume))

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

    async def _pin_start_position(self) -> StoredOffset | None:
        """First start: store where the source starts, before anything can be lost."""
        start_position = getattr(self.source, "start_position", None)
        if not callable(start_position) or not keeps_offsets(self.sink):
            return None
        pinnable: PinnableSource = self.source  # type: ignore[assignment]
        offset = StoredOffset(await pinnable.start_position())
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
