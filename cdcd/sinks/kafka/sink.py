"""Kafka sink on aiokafka: transactions (exactly-once) or idempotent batches (at-least-once).

- Exactly-once (the default): records and the offset record of their last position are
  written in one Kafka transaction (``transactional.id`` ``cdcd-<name>``). Starting the
  producer fences any older instance and resolves its open transaction; then the last
  committed offset is read. A fenced producer stops the daemon (``FencedError``).
  aiokafka commits a transaction even when one of its batches failed, so every batch is
  awaited first: a transaction is committed only when all of it was accepted.
- At-least-once: an idempotent producer, ``acks=all``; the offset record is written once
  the records before it are acknowledged, in write order.

Records go out through aiokafka's batch API (one builder per partition), with the Java
client's partitioner (murmur2 of the key), so keys land where Debezium would put them.
Topics are created when first written to (partitions and replication configurable).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import Awaitable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import murmur2

from cdcd.config import HaConfig, OffsetsConfig
from cdcd.errors import SinkError
from cdcd.offsets import StoredOffset, dedup_key
from cdcd.runtime.leadership import LeadershipLost
from cdcd.serialization import Record
from cdcd.sinks.base import Delivery, SinkUnavailableError
from cdcd.sinks.kafka import shims
from cdcd.sinks.kafka.client import client_options, default_replication, quiet_library_logs
from cdcd.sinks.kafka.config import KafkaSinkConfig
from cdcd.sinks.kafka.connect import unreachable
from cdcd.sinks.kafka.errors import TRANSACTION_TIMEOUT_MS, explain_kafka_error
from cdcd.sinks.kafka.membership import Presence
from cdcd.sinks.kafka.offsets import OffsetsTopic
from cdcd.sinks.kafka.signals import SignalChannel, ensure_topic
from cdcd.sinks.kafka.status import KafkaStatusChannel, ensure_status_topic
from cdcd.sinks.kafka.wait import KafkaWait

_NO_HEADERS: list[tuple[str, bytes]] = []  # the batch builders read it, never change it
COMMIT_TIMEOUT_S = 60.0  # a commit that takes longer is given up and the pipeline restarted


def _retrieved(future: asyncio.Future[Any]) -> None:
    # The first failure of a write is raised; the rest of its batches fail the same way
    # and must not be reported again as "exception never retrieved".
    if not future.cancelled():
        future.exception()


def _quiet_abandoned_futures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # After a fatal error (a fenced producer) aiokafka fails every future it holds, most of
    # which nobody awaits; the error itself is already raised as a SinkError.
    if isinstance(context.get("exception"), KafkaError) and "never retrieved" in str(
        context.get("message", "")
    ):
        return
    loop.default_exception_handler(context)


def _done() -> asyncio.Future[None]:
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


class KafkaSink:
    def __init__(
        self,
        sink: KafkaSinkConfig,
        offsets: OffsetsConfig,
        *,
        name: str,
        source_kind: str,
        exactly_once: bool = True,
        ha: HaConfig | None = None,
        log: Any = None,
    ) -> None:
        self.config = sink
        self.source_kind = source_kind
        self.ha = ha if ha is not None and ha.enabled else None
        self.client_id = f"cdcd-{name}"
        self.exactly_once = exactly_once
        self.log = log
        self.offsets = OffsetsTopic(
            client_options(sink), sink, offsets, name=name, source_kind=source_kind
        )
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._presence: Presence | None = None
        self._topics: set[str] = set()
        self._partitions: dict[str, list[int]] = {}
        self._round_robin = itertools.count()
        self._in_transaction = False
        self._unacknowledged: list[asyncio.Future[Any]] = []  # batches of the open transaction
        self._previous: asyncio.Future[None] | None = None  # the last write's delivery
        self._interval_s = sink.transaction_interval_ms / 1000
        self._began = -math.inf  # when the last Kafka transaction began (monotonic)
        self.bytes_written = 0  # record batches handed to the producer (before compression)
        # An active/standby pair: the leadership (its lease checked before each write:
        # cdcd/runtime/leadership.py), and the dedup record written with each offset record.
        self.lease: Any = None
        self.dedup: OffsetsTopic | None = None
        self._abandon = False  # leadership lost: close gives up what is not yet written
        done = "committed" if exactly_once else "acknowledged"
        self._wait = KafkaWait(sink.bootstrap_servers, log, done=done)

    async def start(self) -> None:
        """Connect, then activate: what a daemon that may write at once does."""
        await self.connect()
        await self.activate()

    async def connect(self) -> None:
        """Reach Kafka without claiming anything: the admin client, the offsets topic
        (created or checked), membership of the daemon's group. Fences nobody, so an
        instance may connect and wait (a standby) while another one writes."""
        shims.install()
        options = self.offsets.options
        self._admin = AIOKafkaAdminClient(**options, client_id=f"{self.client_id}-admin")
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:
            loop.set_exception_handler(_quiet_abandoned_futures)

        async def connect() -> None:
            assert self._admin is not None
            await asyncio.wait_for(self._admin.start(), timeout=30)
            self._topics = set(await self._admin.list_topics())
            brokers = len((await self._admin.describe_cluster())["brokers"])
            await self.offsets.ensure(self._admin, brokers)
            if self.ha is not None:
                replication = self.config.replication_factor
                await ensure_status_topic(self._admin, self.ha.status_topic, replication)
                await self._dedup_topic(self.ha.dedup_topic).ensure(self._admin, brokers)
            self._presence = Presence(self.offsets, client_id=self.client_id, log=self.log)
            await asyncio.wait_for(self._presence.start(), timeout=30)

        await self._reaching(connect)

    async def activate(self) -> None:
        """Claim the right to write: the producer starts. With exactly-once delivery that
        registers the transactional id ``cdcd-<name>``: an older instance is fenced and its
        open transaction aborted here, so the last committed offset is final after it."""
        compression = None if self.config.compression == "none" else self.config.compression
        transactional: dict[str, Any] = {}
        if self.exactly_once:
            transactional = {
                "transactional_id": self.offsets.transactional_id,
                "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS,
            }
        self._producer = AIOKafkaProducer(
            **self.offsets.options,
            client_id=self.client_id,
            enable_idempotence=True,
            acks="all",
            compression_type=compression,
            # A transaction is a batch already: waiting for more would only add latency.
            linger_ms=0 if self.exactly_once else self.config.linger_ms,
            max_batch_size=self.config.max_batch_bytes,
            max_request_size=self.config.max_request_bytes,
            **transactional,
        )

        async def activate() -> None:
            assert self._producer is not None
            await asyncio.wait_for(self._producer.start(), timeout=30)
            self._wait.answered()

        await self._reaching(activate)

    async def _reaching(self, step: Any) -> None:
        """Run a step that talks to Kafka; a failure closes the sink and says why."""
        with quiet_library_logs():
            try:
                await step()
            except TimeoutError:
                await self.close()
                raise await unreachable(self.config, self.offsets.options) or SinkUnavailableError(
                    f"cannot reach Kafka at {self.config.bootstrap_servers} within 30 s: "
                    "check sink.bootstrap_servers"
                ) from None
            except KafkaError as exc:
                await self.close()
                error = explain_kafka_error(exc, self.config.bootstrap_servers)
                if isinstance(error, SinkUnavailableError):  # a connection may tell why
                    error = await unreachable(self.config, self.offsets.options) or error
                raise error from None
            except SinkError:
                await self.close()
                raise

    def _dedup_topic(self, topic: str, identity: str = "") -> OffsetsTopic:
        """The dedup topic: compacted like the offsets topic, keyed by the daemon's name,
        its source kind and the source's identity (system id and database, server UUID)."""
        config = OffsetsConfig(topic=topic, replication_factor=self.config.replication_factor)
        dedup = OffsetsTopic(
            self.offsets.options, self.config, config, name=self.offsets.name, source_kind=""
        )
        dedup.key = dedup_key(self.offsets.name, self.source_kind, identity)
        return dedup

    def status_channel(self) -> KafkaStatusChannel:
        """The heartbeats of the instances (``[ha] status_topic``)."""
        assert self.ha is not None
        return KafkaStatusChannel(
            self.offsets.options, self.ha.status_topic, client_id=self.client_id, log=self.log
        )

    async def read_dedup(self, identity: str) -> StoredOffset | None:
        """The last position any leader wrote for the source ``identity`` (written with
        each offset record from now on)."""
        if self.ha is None:
            return None
        self.dedup = self._dedup_topic(self.ha.dedup_topic, identity)
        try:
            return await self.dedup.read()
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None

    def stop_writing(self) -> None:
        """Leadership is lost: nothing more is written, what waits is given up."""
        self._abandon = True

    async def signal_channel(self, topic: str, key: str) -> SignalChannel:
        """The signals for this daemon (records keyed ``key``) on ``topic``, created if
        missing."""

        async def open_channel() -> SignalChannel:
            assert self._admin is not None
            await ensure_topic(self._admin, topic, self.config.replication_factor)
            channel = SignalChannel(self.offsets.options, topic, name=self.offsets.name, key=key)
            await asyncio.wait_for(channel.start(), timeout=30)
            return channel

        try:
            return await open_channel()
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None

    async def read_offset(self) -> StoredOffset | None:
        try:
            return await self.offsets.read()
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None

    # -- writing ---------------------------------------------------------------------

    async def _ensure_topics(self, topics: set[str]) -> None:
        missing = topics - self._topics
        if not missing:
            return
        assert self._admin is not None and self._producer is not None
        brokers = len(self._producer.client.cluster.brokers())
        replication = default_replication(self.config.replication_factor, brokers)
        new = [NewTopic(name, self.config.partitions, replication) for name in sorted(missing)]
        try:
            response = await self._admin.create_topics(new)
        except TopicAlreadyExistsError:
            response = None
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None
        for name, code, *_ in getattr(response, "topic_errors", ()):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise SinkError(f"cannot create Kafka topic {name!r}: error code {code}")
        if self.log is not None:
            self.log.info("topics created", topics=sorted(missing))
        self._topics |= missing

    async def _partitions_of(self, topic: str) -> list[int]:
        partitions = self._partitions.get(topic)
        if partitions is None:
            assert self._producer is not None
            # A new topic's leader is elected asynchronously: wait until the producer sees it.
            found = await shims.wait_on_metadata(self._producer, topic)
            partitions = self._partitions[topic] = sorted(found)
        return partitions

    async def _send(self, records: list[Record]) -> list[asyncio.Future[Any]]:
        """Hand ``records`` to the producer: one batch builder per partition, filled in
        order and sent when full (aiokafka keeps one batch per partition in flight)."""
        producer = self._producer
        assert producer is not None
        builders: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        last_topic: str | None = None
        partitions: list[int] = []
        append: Any = None
        for record in records:
            topic = record.topic
            if topic is not last_topic or len(partitions) > 1:
                # Consecutive records mostly share a topic of one partition: the fast path.
                if topic is not last_topic:
                    partitions = await self._partitions_of(topic)
                    last_topic = topic
                if len(partitions) == 1:
                    partition = partitions[0]
                elif record.key is None:
                    partition = partitions[next(self._round_robin) % len(partitions)]
                else:  # the Java client's DefaultPartitioner: murmur2 of the key bytes
                    partition = partitions[(murmur2(record.key) & 0x7FFFFFFF) % len(partitions)]
                builder = builders.get((topic, partition))
                if builder is None:
                    builder = builders[(topic, partition)] = producer.create_batch()
                append = builder.append
            headers = record.headers or _NO_HEADERS
            if append(key=record.key, value=record.value, timestamp=None, headers=headers) is None:
                full = builders.pop((topic, partition))
                self.bytes_written += full.size()
                futures.append(await producer.send_batch(full, topic, partition=partition))
                futures[-1].add_done_callback(_retrieved)
                builder = builders[(topic, partition)] = producer.create_batch()
                append = builder.append
                if (
                    append(key=record.key, value=record.value, timestamp=None, headers=headers)
                    is None
                ):
                    raise SinkError(
                        f"a record for {topic!r} is larger than sink.max_batch_bytes "
                        f"({self.config.max_batch_bytes}); raise it"
                    )
        for (topic, partition), builder in builders.items():
            self.bytes_written += builder.size()
            futures.append(await producer.send_batch(builder, topic, partition=partition))
            futures[-1].add_done_callback(_retrieved)
        return futures

    async def ready(self) -> None:
        """Wait until the next write may begin a Kafka transaction: the last one is
        committed (its failure is raised by the next write and by its own delivery) and
        ``sink.transaction_interval_ms`` has passed since it began."""
        if not self.exactly_once:
            return
        previous = self._previous
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        if not self._in_transaction:
            # Transactions back to back: each begins an interval after the last one began
            # (what arrives meanwhile joins it), so a source committing small transactions
            # costs Kafka and cdcd a transaction per interval, not one per round trip.
            wait = self._began + self._interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    async def write(self, records: list[Record], offset: StoredOffset | None) -> Delivery:
        assert self._producer is not None
        if self._abandon:
            raise LeadershipLost("this instance no longer leads: it may not write")
        if self.lease is not None and not self.lease.held():
            await self.lease.until_held()  # a lapsed lease: wait, or LeadershipLost
        try:
            if self.exactly_once:
                return await self._write_transactional(records, offset)
            return await self._write_idempotent(records, offset)
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None
        except AssertionError:
            # aiokafka's transaction manager refuses a transition after a fatal error.
            raise self._transaction_failure() from None

    async def _write_transactional(
        self, records: list[Record], offset: StoredOffset | None
    ) -> Delivery:
        producer = self._producer
        assert producer is not None
        if self._previous is not None:
            # One transaction at a time: the next begins once the last one committed.
            previous, self._previous = self._previous, None
            await previous
        if records:
            await self._ensure_topics({record.topic for record in records})
        if not self._in_transaction:
            await producer.begin_transaction()
            self._in_transaction = True
            self._began = time.monotonic()
        self._unacknowledged += await self._send(records)
        if offset is None:
            return _done()  # the source transaction goes on; it commits with a later write
        for stored in await self._store_offset(offset):
            stored.add_done_callback(_retrieved)
            self._unacknowledged.append(stored)
        batches, self._unacknowledged = self._unacknowledged, []
        self._in_transaction = False
        delivery = self._previous = asyncio.ensure_future(self._commit(batches))
        return delivery

    async def _commit(self, batches: list[asyncio.Future[Any]]) -> None:
        producer = self._producer
        assert producer is not None
        try:
            async with self._wait.waiting():
                for batch in batches:
                    await batch
                await asyncio.wait_for(producer.commit_transaction(), COMMIT_TIMEOUT_S)
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None
        except TimeoutError:
            raise SinkUnavailableError(
                f"Kafka at {self.config.bootstrap_servers} did not commit a transaction "
                f"within {COMMIT_TIMEOUT_S:.0f} s"
            ) from None
        except AssertionError:
            raise self._transaction_failure() from None

    def _transaction_failure(self) -> SinkError:
        cause = shims.transaction_error(self._producer)
        if cause is not None:
            return explain_kafka_error(cause, self.config.bootstrap_servers)
        return SinkError("the Kafka producer is in a failed state")

    async def _write_idempotent(
        self, records: list[Record], offset: StoredOffset | None
    ) -> Delivery:
        if records:
            await self._ensure_topics({record.topic for record in records})
        batches = await self._send(records)
        delivery = self._previous = asyncio.ensure_future(
            self._deliver(batches, offset, self._previous)
        )
        return delivery

    async def _deliver(
        self,
        batches: list[asyncio.Future[Any]],
        offset: StoredOffset | None,
        previous: Awaitable[None] | None,
    ) -> None:
        producer = self._producer
        assert producer is not None
        try:
            if previous is not None:
                await previous  # offset records in write order: never an older one last
            async with self._wait.waiting():
                for batch in batches:
                    await batch
                if offset is not None:
                    for stored in await self._store_offset(offset):
                        await stored
        except KafkaError as exc:
            raise explain_kafka_error(exc, self.config.bootstrap_servers) from None

    async def _store_offset(self, offset: StoredOffset) -> list[asyncio.Future[Any]]:
        """Send the offset record (and the dedup record of an active/standby pair)."""
        producer = self._producer
        assert producer is not None
        value = offset.to_json()
        sent = [await producer.send(self.offsets.topic, value, key=self.offsets.key)]
        if self.dedup is not None:
            sent.append(await producer.send(self.dedup.topic, value, key=self.dedup.key))
        return sent

    # -- closing ---------------------------------------------------------------------

    async def close(self) -> None:
        """Flush and disconnect; after a failure, give up what Kafka did not take in 10 s.

        An open transaction left behind is aborted by the next producer with this
        transactional id (or by Kafka after the transaction timeout).
        """
        started = time.monotonic()
        grace = 1.0 if self._abandon else 10.0  # leadership lost: Kafka may be cut off
        if self._presence is not None:
            presence, self._presence = self._presence, None
            await presence.stop(grace)
        left_group = time.monotonic()
        if self._previous is not None and not self._previous.done():
            self._previous.cancel()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            if self._in_transaction and not self._abandon:  # the next leader aborts it
                # Cut short inside a source transaction: abort now, so read_committed
                # consumers are not held up until the transaction times out.
                self._in_transaction = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.abort_transaction(), 5)
            try:
                if self._abandon:  # no longer the leader: nothing more goes out
                    raise TimeoutError
                await asyncio.wait_for(producer.stop(), 10)  # flushes pending batches first
            except (TimeoutError, KafkaError, AssertionError):
                await shims.abandon(producer)
        stopped_producer = time.monotonic()
        if self._admin is not None:
            admin, self._admin = self._admin, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(admin.close(), grace / 2)
        if self.log is not None:
            self.log.debug(
                "sink closed",
                leave_group_s=round(left_group - started, 3),
                producer_s=round(stopped_producer - left_group, 3),
                total_s=round(time.monotonic() - started, 3),
            )
