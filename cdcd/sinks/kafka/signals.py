"""The Kafka signal channel (Debezium's ``signal.kafka.topic``), and sending to it.

A daemon reads the signal topic from its consumer group ``cdcd-<name>-signals``'s
committed offset (the topic's end on the first start), keeps the records keyed by its
``topic_prefix`` (the topic may be shared, as Debezium's is) and commits each record's
offset once it has acted on it. ``cdcd snapshot`` writes signals and reads the
notifications that answer them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata

from cdcd.errors import SinkError
from cdcd.sinks.kafka.client import default_replication, group_id


async def ensure_topic(admin: AIOKafkaAdminClient, topic: str, replication: int | None) -> None:
    """Create a one-partition topic when missing (signals and notifications: low volume,
    one order)."""
    if topic in set(await admin.list_topics()):
        return
    brokers = len((await admin.describe_cluster())["brokers"])
    with contextlib.suppress(TopicAlreadyExistsError):
        response = await admin.create_topics(
            [NewTopic(topic, 1, default_replication(replication, brokers))]
        )
        for name, code, *_ in getattr(response, "topic_errors", ()):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise SinkError(
                    f"cannot create topic {name!r}: error code {code}; grant CREATE on it "
                    "or create it (1 partition)"
                )


class SignalChannel:
    """The signals for one daemon, in order, each committed once acted on."""

    def __init__(self, options: dict[str, Any], topic: str, *, name: str, key: str) -> None:
        self.options = options
        self.topic = topic
        self.key = key.encode()
        self.group = f"{group_id(name)}-signals"
        self.client_id = f"{group_id(name)}-signals"
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = self._consumer = AIOKafkaConsumer(
            **self.options,
            client_id=self.client_id,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            isolation_level="read_committed",
        )
        await consumer.start()
        partitions = consumer.partitions_for_topic(self.topic) or {0}
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            if await consumer.committed(tp) is None:
                # First start: from the end, remembered so that a restart misses nothing.
                end = (await consumer.end_offsets([tp]))[tp]
                consumer.seek(tp, end)
                await consumer.commit({tp: OffsetAndMetadata(end, "")})

    async def records(self) -> AsyncIterator[tuple[TopicPartition, int, bytes | None]]:
        """(partition, offset, value) of each signal for this daemon, as they come."""
        assert self._consumer is not None
        while True:
            try:
                record = await self._consumer.getone()
            except KafkaError:
                await asyncio.sleep(1)  # Kafka restarting: the sink reports it
                continue
            if record.key == self.key:
                yield TopicPartition(record.topic, record.partition), record.offset, record.value
            else:
                await self.commit(TopicPartition(record.topic, record.partition), record.offset)

    async def commit(self, tp: TopicPartition, offset: int) -> None:
        if self._consumer is not None:
            with contextlib.suppress(KafkaError):
                await self._consumer.commit({tp: OffsetAndMetadata(offset + 1, "")})

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 10)


async def send_signal(options: dict[str, Any], topic: str, key: str, value: bytes) -> None:
    """Write one signal record (``cdcd snapshot``), acknowledged by every replica."""
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()
