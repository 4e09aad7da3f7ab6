"""Stream -> encoder -> sink, with the ack rule.

Three tasks joined by bounded queues (so memory stays bounded whatever the size of a
transaction):

- the reader encodes what the stream yields, in order, and cuts it into segments: the
  records up to a commit (whole transactions, or a safe cut of a huge one) with the
  checkpoint to resume after them, or, inside a huge transaction, records without one;
- the writer hands segments to the sink, joining those already waiting into one write
  (one Kafka transaction with exactly-once delivery) up to ``max_batch_events``: the
  slower Kafka answers, the larger the transactions, while the reader keeps encoding;
- the acker waits for each write to be stored (committed) and only then acknowledges
  its checkpoint to the source (the ack rule).

Which stream runs, and when, is the coordinator's decision (``cdcd.runtime.coordinator``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cdcd.checkpoint import Checkpoint
from cdcd.encoder import EnvelopeEncoder
from cdcd.errors import DecodeError, SourceError
from cdcd.events import SourceItem
from cdcd.runtime.context import Stats
from cdcd.serialization import Record
from cdcd.sinks.base import Delivery, Sink


@dataclass(slots=True)
class _Segment:
    records: list[Record]
    checkpoint: Checkpoint | None  # where to resume after these records; None: mid-transaction


_SEGMENTS_AHEAD = 2
_END = _Segment([], None)  # the reader stopped: write what is queued, then stop


class _Segments:
    """The segments between the reader and the writer: at most ``ahead`` of them. When
    they are full, a segment that ends at a commit joins the last waiting one (if that too
    ends at a commit) while it stays within ``limit`` records, so a writer that is behind
    takes many small source transactions in one write instead of two or three."""

    def __init__(self, ahead: int, limit: int) -> None:
        self._waiting: collections.deque[_Segment] = collections.deque()
        self._ahead, self._limit = ahead, limit
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()

    async def put(self, segment: _Segment) -> None:
        waiting = self._waiting
        while True:
            if len(waiting) < self._ahead:
                waiting.append(segment)
                self._not_empty.set()
                return
            last = waiting[-1]
            if (
                segment.checkpoint is not None
                and last.checkpoint is not None
                and len(last.records) + len(segment.records) <= self._limit
            ):
                last.records.extend(segment.records)
                last.checkpoint = segment.checkpoint
                return
            self._not_full.clear()
            await self._not_full.wait()

    def empty(self) -> bool:
        return not self._waiting

    @property
    def remaining(self) -> int:
        return max(0, self._ahead - len(self._waiting))

    def get_nowait(self) -> _Segment:
        segment = self._waiting.popleft()
        self._not_full.set()
        return segment

    async def get(self) -> _Segment:
        while not self._waiting:
            self._not_empty.clear()
            await self._not_empty.wait()
        return self.get_nowait()


_Delivered = tuple[Delivery, Checkpoint | None, float]  # and when it was handed to the sink
Stream = AsyncIterator[list[SourceItem]]


class Pipeline:
    """Moves one stream's changes to one sink until stopped or failed; ``ack`` is told
    each checkpoint once Kafka holds everything up to it."""

    def __init__(
        self,
        sink: Sink,
        encoder: EnvelopeEncoder,
        ack: Callable[[Checkpoint], Awaitable[None]],
        *,
        stats: Stats | None = None,
        log: Any = None,
        max_batch_events: int = 5000,
        max_in_flight_batches: int = 8,
        drain_timeout_s: float = 20.0,
    ) -> None:
        self.sink = sink
        self.encoder = encoder
        self.ack = ack
        self.log = log
        self.max_batch_events = max_batch_events
        self.drain_timeout_s = drain_timeout_s
        self.stats = stats if stats is not None else Stats()
        self.started_at = time.monotonic()
        # A few segments ahead of the writer: enough to encode the next write while Kafka
        # commits the last one; more would only hold memory.
        self._segments = _Segments(_SEGMENTS_AHEAD, max_batch_events)
        self._deliveries: asyncio.Queue[_Delivered | None] = asyncio.Queue(
            maxsize=max_in_flight_batches
        )
        self._stopping = asyncio.Event()
        self._sink_bytes = getattr(sink, "bytes_written", 0)  # the sink's count at the last write

    def stop(self) -> None:
        """Ask the pipeline to drain and return (safe to call from a signal handler)."""
        self._stopping.set()

    async def run(self, stream: Stream, cut_transaction: str | None = None) -> None:
        """Move ``stream`` until ``stop()``; then drain what was read whole and acknowledge
        it. ``cut_transaction``: the id of the transaction the stored offset cuts; the
        stream must resume inside that very transaction."""
        reader = asyncio.create_task(self._read_loop(stream, cut_transaction), name="cdcd-reader")
        writer = asyncio.create_task(self._write_loop(), name="cdcd-writer")
        acker = asyncio.create_task(self._ack_loop(), name="cdcd-acker")
        stopper = asyncio.create_task(self._stopping.wait(), name="cdcd-stop")
        workers = (reader, writer, acker)
        try:
            done, _ = await asyncio.wait({*workers, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in workers:
                if task in done and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            # Stop reading; whatever was read after the last handed-over segment is not
            # acknowledged and will be read again on the next start.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            try:
                await asyncio.wait_for(self._drain(writer, acker), self.drain_timeout_s)
            except TimeoutError:
                # Kafka does not answer: what is not committed is simply read again on
                # the next start (nothing was acknowledged for it).
                if self.log is not None:
                    self.log.warning(
                        "stopped without waiting longer for Kafka to commit the last batch",
                        waited_s=self.drain_timeout_s,
                    )
        finally:
            for worker in workers:
                worker.cancel()
            stopper.cancel()
            await asyncio.gather(*workers, stopper, return_exceptions=True)

    async def _drain(self, writer: asyncio.Task[None], acker: asyncio.Task[None]) -> None:
        await self._segments.put(_END)
        await writer
        await acker

    async def _read_loop(self, stream: Stream, expected: str | None) -> None:
        try:
            await self._read(stream, expected)
        except DecodeError:
            self.stats.erroneous += 1  # the stream stops at it: cdcd never skips an event
            raise

    async def _read(self, stream: Stream, expected: str | None) -> None:
        encode = self.encoder.encode
        put = self._segments.put
        limit = self.max_batch_events
        batch: list[Record] = []  # records after the last commit (inside a transaction)
        stats = self.stats
        async for chunk in stream:
            if expected is not None and _resumed_transaction_checked(expected, chunk):
                expected = None
            now_ns = time.time_ns()
            encoded = encode(chunk, now_ns)
            if encoded.unregistered:
                await self.encoder.register_schemas()  # (Avro: once per new schema)
            if encoded.events:
                stats.events += encoded.events
                stats.last_event_at = now_ns / 1e9
                stats.count_tables(encoded.table_events)
                stats.filtered += encoded.filtered
            stats.transactions += encoded.transactions
            records = encoded.records
            if encoded.marks:
                # Whole transactions (or safe cuts) with their checkpoint; what follows the
                # last commit waits for its own, so a segment never ends inside a
                # transaction that its offset counts as written.
                at, checkpoint = encoded.marks[-1]
                tail = records[at:]
                head = records if not tail else records[:at]
                if batch:
                    batch.extend(head)
                    head = batch
                await put(_Segment(head, checkpoint))
                batch = tail
            elif batch:
                batch.extend(records)
            else:
                batch = records
            if len(batch) >= limit:
                await put(_Segment(batch, None))  # inside a huge transaction: bounded memory
                batch = []

    async def _write_loop(self) -> None:
        segments = self._segments
        limit = self.max_batch_events
        carried: _Segment | None = None
        ready = getattr(self.sink, "ready", None)
        while True:
            segment = carried if carried is not None else await segments.get()
            carried = None
            if segment is _END:
                await self._deliveries.put(None)
                return
            if ready is not None:
                await ready()  # e.g. the last Kafka transaction committed: join what came since
            records, checkpoint = segment.records, segment.checkpoint
            if checkpoint is not None:
                # Join the segments already waiting (each ends at a commit) into one write.
                while not segments.empty():
                    following = segments.get_nowait()
                    if (
                        following is _END
                        or following.checkpoint is None
                        or len(records) + len(following.records) > limit
                    ):
                        carried = following
                        break
                    if records is segment.records:
                        records = list(records)
                    records.extend(following.records)
                    checkpoint = following.checkpoint
            offset = checkpoint.stored_offset() if checkpoint is not None else None
            handed_at = time.monotonic()
            delivery = await self.sink.write(records, offset)
            self._count_write(len(records))
            await self._deliveries.put((delivery, checkpoint, handed_at))

    def _count_write(self, records: int) -> None:
        stats = self.stats
        stats.records += records
        written = getattr(self.sink, "bytes_written", None)
        if written is not None:
            stats.bytes_written += written - self._sink_bytes
            self._sink_bytes = written

    async def _ack_loop(self) -> None:
        while True:
            item = await self._deliveries.get()
            if item is None:
                return
            delivery, checkpoint, handed_at = item
            await delivery
            if checkpoint is not None:
                # A write that ends at a commit: its Kafka transaction committed just now.
                self.stats.commit_seconds.observe(time.monotonic() - handed_at)
                await self.ack(checkpoint)
                self.stats.acknowledged(checkpoint)

    def queues(self) -> list[tuple[str, int, int]]:
        """(name, capacity, remaining) of each bounded queue between the source and Kafka:
        ``segments``, encoded records waiting for the writer; ``deliveries``, writes
        waiting for Kafka to hold them."""
        deliveries = self._deliveries
        return [
            ("segments", _SEGMENTS_AHEAD, self._segments.remaining),
            ("deliveries", deliveries.maxsize, deliveries.maxsize - deliveries.qsize()),
        ]


def _resumed_transaction_checked(expected: str, chunk: list[Any]) -> bool:
    """False while no item of ``chunk`` tells which transaction the source resumed in."""
    for item in chunk:
        txid = getattr(item, "txid", None)
        if txid is None:
            continue
        if txid != expected:
            raise SourceError(
                f"the stored offset cuts transaction {expected}, but the source resumed with "
                f"transaction {txid}: the rest of {expected} cannot be read again (the source "
                "has moved past it); store a position at a transaction boundary with "
                "cdcd offsets set, or cdcd offsets reset"
            )
        return True
    return False
