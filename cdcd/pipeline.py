"""Source -> envelope -> sink, with the ack rule.

The one place that decides order: events are encoded and handed to the sink in the
order the source yields them; a position is acknowledged to the source only after the
sink has durably stored every record up to it (the ack rule). Between the stages sit
bounded queues, so memory stays bounded whatever the size of a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from cdcd.envelope import EnvelopeEncoder, Record
from cdcd.events import Commit
from cdcd.positions import Position
from cdcd.sinks.base import Delivery, Sink
from cdcd.sources.base import Source


@dataclass
class PipelineStats:
    events: int = 0
    records: int = 0
    transactions: int = 0
    acked_position: Position | None = None
    started_at: float = field(default_factory=time.monotonic)


class Pipeline:
    """Moves changes from one source to one sink until stopped or failed."""

    def __init__(
        self,
        source: Source,
        sink: Sink,
        encoder: EnvelopeEncoder,
        *,
        log: Any,
        max_batch_events: int = 5000,
        max_in_flight_batches: int = 8,
    ) -> None:
        self.source = source
        self.sink = sink
        self.encoder = encoder
        self.log = log
        self.max_batch_events = max_batch_events
        self.stats = PipelineStats()
        # (delivery, position to ack once delivered or None): bounded, hence backpressure.
        self._deliveries: asyncio.Queue[tuple[Delivery, Position | None] | None] = asyncio.Queue(
            maxsize=max_in_flight_batches
        )
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask the pipeline to drain and return (safe to call from a signal handler)."""
        self._stopping.set()

    async def run(self, resume: Position | None = None) -> PipelineStats:
        """Stream until ``stop()``; then drain: wait for Kafka, ack the last position."""
        acker = asyncio.create_task(self._ack_loop(), name="cdcd-acker")
        reader = asyncio.create_task(self._read_loop(resume), name="cdcd-reader")
        stopper = asyncio.create_task(self._stopping.wait(), name="cdcd-stop")
        try:
            done, _ = await asyncio.wait(
                {acker, reader, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in (acker, reader):
                if task in done and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            # Stop reading; whatever was read after the last handed-over commit is not
            # acknowledged and will be read again on the next start.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self._deliveries.put(None)
            await acker
            return self.stats
        finally:
            for task in (acker, reader, stopper):
                task.cancel()
            await asyncio.gather(acker, reader, stopper, return_exceptions=True)

    async def _read_loop(self, resume: Position | None) -> None:
        encode = self.encoder.encode
        batch: list[Record] = []
        position: Position | None = None
        committed = 0  # records in ``batch`` up to the last commit
        stats = self.stats
        async for chunk in self.source.stream(resume):
            now_ns = time.time_ns()
            for item in chunk:
                if type(item) is not Commit:
                    encode(item, batch, now_ns)
                    stats.events += 1
                else:
                    position = item.position
                    committed = len(batch)
                    stats.transactions += 1
            if position is not None:
                # Hand over whole transactions with their position; what follows the last
                # commit waits for its own, so a batch never ends inside a transaction
                # that it acknowledges.
                tail = batch[committed:]
                await self._hand_over(batch[:committed], position)
                batch, position, committed = tail, None, 0
            if len(batch) >= self.max_batch_events:
                await self._hand_over(batch, None)  # a huge transaction: bounded memory
                batch = []

    async def _hand_over(self, batch: list[Record], position: Position | None) -> None:
        delivery = await self.sink.write(batch)
        self.stats.records += len(batch)
        await self._deliveries.put((delivery, position))

    async def _ack_loop(self) -> None:
        while True:
            item = await self._deliveries.get()
            if item is None:
                return
            delivery, position = item
            await delivery
            if position is not None:
                await self.source.ack(position)
                self.stats.acked_position = position
