"""The offsets topic in Kafka (the sign that a daemon runs: membership.py).

- The topic is compacted (``cleanup.policy=compact``), created when missing, refused when
  it exists without compaction (it would forget offsets).
- Reading takes the partitions' high watermarks first and then reads, read_committed, up
  to them: another daemon's open transaction on a shared partition delays the read, it
  never hides this daemon's last committed offset.
- ``cdcd offsets set/reset`` write through a transactional producer with the daemon's
  own ``transactional.id``: a daemon started meanwhile is fenced, never left running on a
  position read before the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from cdcd.config import Config, OffsetsConfig
from cdcd.errors import SinkError
from cdcd.offsets import StoredOffset, offset_key
from cdcd.sinks.kafka import shims
from cdcd.sinks.kafka.client import (
    client_options,
    default_replication,
    group_id,
    quiet_library_logs,
    transactional_id,
)
from cdcd.sinks.kafka.config import KafkaSinkConfig
from cdcd.sinks.kafka.connect import unreachable
from cdcd.sinks.kafka.membership import Member, members, refuse_if_running

_NOT_FOUND = object()
READ_TIMEOUT_S = 90  # longer than a transaction may stay open (60 s), so reads wait it out


class OffsetsTopic:
    """One daemon's view of the offsets topic: its key, its group, its transactional id."""

    def __init__(
        self,
        options: dict[str, Any],
        sink: KafkaSinkConfig,
        offsets: OffsetsConfig,
        *,
        name: str,
        source_kind: str,
    ) -> None:
        self.options = options
        self.sink = sink
        self.config = offsets
        self.topic = offsets.topic
        self.name = name
        self.key = offset_key(name, source_kind)
        self.group_id = group_id(name)
        self.transactional_id = transactional_id(name)

    # -- the topic -------------------------------------------------------------------

    def new_topic(self, brokers: int) -> NewTopic:
        """The offsets topic as cdcd creates it: compacted."""
        return NewTopic(
            self.topic,
            self.config.partitions,
            default_replication(self.config.replication_factor, brokers),
            # Small segments: compaction only cleans closed ones, and a daemon writes one
            # record per Kafka transaction.
            topic_configs={
                "cleanup.policy": "compact",
                "segment.bytes": str(16 * 1024 * 1024),
                "segment.ms": str(3600 * 1000),
            },
        )

    async def cleanup_policy(self, admin: AIOKafkaAdminClient) -> str | None:
        """The existing topic's ``cleanup.policy`` (None if Kafka did not say)."""
        resource = ConfigResource(ConfigResourceType.TOPIC, self.topic)
        policy = None
        for response in await admin.describe_configs([resource]):
            for _code, _msg, _type, _name, entries in response.resources:
                for entry in entries:
                    if entry[0] == "cleanup.policy":
                        policy = entry[1]
        return policy

    def not_compacted(self, policy: str | None) -> tuple[str, str] | None:
        """(what is wrong, the fix) for an existing topic of ``policy``; None: nothing."""
        if policy is None or "compact" in policy:
            return None
        return (
            f"the offsets topic {self.topic!r} has cleanup.policy={policy}: it would delete "
            "offsets",
            "set it to compact (kafka-configs.sh --alter --entity-type topics --entity-name "
            f"{self.topic} --add-config cleanup.policy=compact) or name another topic in "
            "offsets.topic",
        )

    async def ensure(self, admin: AIOKafkaAdminClient, brokers: int) -> None:
        """Create the compacted topic when missing; refuse one that is not compacted."""
        if self.topic not in set(await admin.list_topics()):
            try:
                response = await admin.create_topics([self.new_topic(brokers)])
            except TopicAlreadyExistsError:
                response = None
            for name, code, *_ in getattr(response, "topic_errors", ()):
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise SinkError(
                        f"cannot create the offsets topic {name!r}: error code {code}; "
                        "grant CREATE on it or create it with cleanup.policy=compact"
                    )
            return
        refused = self.not_compacted(await self.cleanup_policy(admin))
        if refused is not None:
            raise SinkError("; ".join(refused))

    async def read(self, timeout: float = READ_TIMEOUT_S) -> StoredOffset | None:
        """The last committed offset of this daemon, or None (also when no topic yet).

        Every Kafka transaction of the daemon ends with its offset record, so the latest
        one is near the end of the key's partition: that partition is read backwards in
        growing windows (each read forward up to the end), the others only if the key is
        not found there (the first start, or partitions added since).
        """
        watermarks = await self._watermarks()
        if not any(high > low for low, high in watermarks.values()):
            return None
        consumer = AIOKafkaConsumer(
            **self.options,
            client_id=f"{self.transactional_id}-offsets",
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Small fetches: a first start reads the whole topic (the key is nowhere), and
            # the daemon's memory must not grow with the topic's size.
            fetch_max_bytes=4 * 1024 * 1024,
            max_partition_fetch_bytes=1024 * 1024,
        )
        await consumer.start()
        deadline = time.monotonic() + timeout
        try:
            partitions = sorted(watermarks, key=lambda tp: tp.partition)
            home = partitions[(murmur2(self.key) & 0x7FFFFFFF) % len(partitions)]
            for tp in [home] + [tp for tp in partitions if tp != home]:
                low, high = watermarks[tp]
                window = 1000
                end = high
                while end > low:
                    start = max(low, high - window)
                    found = await self._last_value(consumer, tp, start, high, deadline)
                    if found is not _NOT_FOUND:
                        return self._parse(found)
                    end, window = start, window * 8
        finally:
            await consumer.stop()
        return None

    async def _last_value(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int, deadline: float
    ) -> Any:
        """The value of the key's last record in [start, end) of ``tp``, or _NOT_FOUND."""
        consumer.assign([tp])
        consumer.seek(tp, start)
        found: Any = _NOT_FOUND
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise SinkError(
                    f"cannot read the offsets topic {self.topic!r} to its end in time: "
                    "a Kafka transaction on it stays open"
                )
            batches = await consumer.getmany(tp, timeout_ms=500, max_records=2000)
            for record in batches.get(tp, ()):
                if record.offset < end and record.key == self.key:
                    found = record.value
        return found

    def _parse(self, value: bytes | None) -> StoredOffset | None:
        if value is None:  # a tombstone: the offset was deleted
            return None
        try:
            return StoredOffset.from_json(value)
        except ValueError as exc:
            raise SinkError(f"the offsets topic {self.topic!r} holds a bad record: {exc}") from None

    async def _watermarks(self) -> dict[TopicPartition, tuple[int, int]]:
        """(low, high) watermark of each partition; high counts uncommitted records too."""
        consumer = AIOKafkaConsumer(
            **self.options,
            client_id=f"{self.transactional_id}-offsets",
            isolation_level="read_uncommitted",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            await shims.refresh_metadata(consumer)
            found = consumer.partitions_for_topic(self.topic)
            if not found:
                return {}
            partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
            lows = await consumer.beginning_offsets(partitions)
            highs = await consumer.end_offsets(partitions)
            return {tp: (lows[tp], highs[tp]) for tp in partitions}
        finally:
            await consumer.stop()

    async def write(self, offset: StoredOffset | None) -> None:
        """Store ``offset`` (None: delete it) as the daemon would: transactionally, fencing it."""
        producer = AIOKafkaProducer(
            **self.options,
            client_id=f"{self.transactional_id}-cli",
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
        )
        await producer.start()
        try:
            async with producer.transaction():
                value = offset.to_json() if offset is not None else None
                await producer.send(self.topic, value, key=self.key)
        finally:
            await producer.stop()


# -- for `cdcd offsets` ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OffsetsStatus:
    topic: str
    key: bytes
    group_id: str
    members: list[Member]
    offset: StoredOffset | None


def _offsets_topic(config: Config) -> OffsetsTopic:
    if not isinstance(config.sink, KafkaSinkConfig):
        raise SinkError(
            f"offsets are kept in Kafka, but sink.kind is {config.sink.kind!r}: "
            "with that sink the source's own bookkeeping (the replication slot) decides"
        )
    return OffsetsTopic(
        client_options(config.sink),
        config.sink,
        config.offsets,
        name=config.name,
        source_kind=config.source.kind,
    )


async def _admin(offsets: OffsetsTopic) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**offsets.options, client_id=f"{offsets.transactional_id}-cli")
    try:
        await asyncio.wait_for(admin.start(), 30)
    except (TimeoutError, KafkaError):
        with contextlib.suppress(Exception):
            await admin.close()
        raise await unreachable(offsets.sink, offsets.options) or SinkError(
            f"cannot reach Kafka at {offsets.sink.bootstrap_servers}: check sink.bootstrap_servers"
        ) from None
    return admin


async def offsets_status(config: Config) -> OffsetsStatus:
    """The stored offset of the daemon ``config`` describes, and whether it runs."""
    offsets = _offsets_topic(config)
    with quiet_library_logs():
        admin = await _admin(offsets)
        try:
            running = await members(admin, offsets.group_id)
            stored = await offsets.read()
        except KafkaError as exc:
            raise SinkError(f"Kafka error: {exc.__class__.__name__}: {exc}") from None
        finally:
            await admin.close()
    return OffsetsStatus(offsets.topic, offsets.key, offsets.group_id, running, stored)


async def store_offset(config: Config, offset: StoredOffset | None) -> None:
    """Write ``offset`` for the daemon (None deletes it), unless the daemon runs."""
    offsets = _offsets_topic(config)
    with quiet_library_logs():
        admin = await _admin(offsets)
        try:
            refuse_if_running(config, await members(admin, offsets.group_id))
            brokers = len((await admin.describe_cluster())["brokers"])
            await offsets.ensure(admin, brokers)
            await offsets.write(offset)
        except KafkaError as exc:
            raise SinkError(f"Kafka error: {exc.__class__.__name__}: {exc}") from None
        finally:
            await admin.close()
