"""The status topic: every instance's heartbeats (``cdcd.runtime.leadership``), read by
the instances of a name to elect one active, and by ``cdcd status``.

One partition, so that every reader sees the claims in one order; records keyed
``<name>/<instance>``; ``cleanup.policy=delete`` with an hour's retention: only recent
heartbeats matter, and each process is a new key. Heartbeats are written by a producer of
their own (not transactional: they must go on while the data's transaction is open).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from cdcd.config import Config
from cdcd.errors import SinkError
from cdcd.runtime.leadership import Heartbeat
from cdcd.sinks.base import SinkUnavailableError
from cdcd.sinks.kafka import shims
from cdcd.sinks.kafka.client import client_options, default_replication, quiet_library_logs
from cdcd.sinks.kafka.config import KafkaSinkConfig
from cdcd.sinks.kafka.connect import unreachable

RETENTION_MS = 3600 * 1000
LOOKBACK_MS = 60 * 1000  # how far back a new reader starts


def status_topic(name: str, brokers: int, replication: int | None) -> NewTopic:
    return NewTopic(
        name,
        1,
        default_replication(replication, brokers),
        topic_configs={
            "cleanup.policy": "delete",
            "retention.ms": str(RETENTION_MS),
            "segment.ms": str(RETENTION_MS // 6),
        },
    )


async def ensure_status_topic(
    admin: AIOKafkaAdminClient, topic: str, replication: int | None
) -> None:
    if topic in set(await admin.list_topics()):
        return
    brokers = len((await admin.describe_cluster())["brokers"])
    try:
        response = await admin.create_topics([status_topic(topic, brokers, replication)])
    except TopicAlreadyExistsError:
        return
    for name, code, *_ in getattr(response, "topic_errors", ()):
        if code not in (0, TopicAlreadyExistsError.errno):
            raise SinkError(
                f"cannot create the status topic {name!r} (ha.status_topic): error code "
                f"{code}; grant CREATE on it or create it with one partition"
            )


def beat_key(beat: Heartbeat) -> bytes:
    return f"{beat.name}/{beat.instance}".encode()


class KafkaStatusChannel:
    """Heartbeats out and in, on ``topic``."""

    def __init__(self, options: dict[str, Any], topic: str, *, client_id: str, log: Any) -> None:
        self.options = options
        self.topic = topic
        self.client_id = client_id
        self.log = log
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, on_beat: Callable[[Heartbeat], None]) -> None:
        try:
            await self._start(on_beat)
        except (KafkaError, TimeoutError) as exc:
            raise SinkUnavailableError(
                f"cannot read the status topic {self.topic!r} (ha.status_topic): {exc!r}"
            ) from None

    async def _start(self, on_beat: Callable[[Heartbeat], None]) -> None:
        self._producer = AIOKafkaProducer(
            **self.options, client_id=f"{self.client_id}-status", acks="all", linger_ms=0
        )
        await asyncio.wait_for(self._producer.start(), 30)
        consumer = self._consumer = await open_reader(
            self.options, self.topic, client_id=f"{self.client_id}-status"
        )
        if consumer is None:
            raise SinkError(f"the status topic {self.topic!r} (ha.status_topic) does not exist")
        tp = TopicPartition(self.topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            _deliver(await consumer.getmany(tp, timeout_ms=500), on_beat, self.log)
        self._task = asyncio.create_task(self._follow(consumer, on_beat), name="cdcd-status")

    async def _follow(
        self, consumer: AIOKafkaConsumer, on_beat: Callable[[Heartbeat], None]
    ) -> None:
        while True:
            try:
                _deliver(await consumer.getmany(timeout_ms=200), on_beat, self.log)
            except KafkaError as exc:
                self.log.debug("status topic not read", error=str(exc))
                await asyncio.sleep(0.2)

    async def publish(self, beat: Heartbeat) -> None:
        if self._producer is None:
            raise SinkUnavailableError("the status channel is closed")
        try:
            await (await self._producer.send(self.topic, beat.to_json(), key=beat_key(beat)))
        except KafkaError as exc:
            raise SinkUnavailableError(f"heartbeat not written: {exc!r}") from None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), 5)
        self._consumer = self._producer = None


async def open_reader(
    options: dict[str, Any], topic: str, *, client_id: str
) -> AIOKafkaConsumer | None:
    """A consumer of the status topic's one partition, placed ``LOOKBACK_MS`` back; None
    when there is no such topic."""
    consumer = AIOKafkaConsumer(**options, client_id=client_id, enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 30)
    try:
        await shims.refresh_metadata(consumer)
        if not consumer.partitions_for_topic(topic):
            await consumer.stop()
            return None
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        since = int(time.time() * 1000) - LOOKBACK_MS
        found = (await consumer.offsets_for_times({tp: since})).get(tp)
        if found is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, found.offset)
    except BaseException:
        with contextlib.suppress(Exception):
            await consumer.stop()
        raise
    return consumer


def _deliver(batches: dict[Any, list[Any]], on_beat: Callable[[Heartbeat], None], log: Any) -> None:
    for records in batches.values():
        for record in records:
            if record.value is None:
                continue
            try:
                beat = Heartbeat.from_json(record.value)
            except (ValueError, TypeError) as exc:
                if log is not None:
                    log.debug("status record skipped", offset=record.offset, error=str(exc))
                continue
            on_beat(beat)


async def read_recent(options: dict[str, Any], topic: str, *, client_id: str) -> list[Heartbeat]:
    """Every heartbeat of the last ``LOOKBACK_MS``, in log order (``cdcd status``)."""
    beats: list[Heartbeat] = []
    consumer = await open_reader(options, topic, client_id=client_id)
    if consumer is None:
        return beats
    try:
        tp = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            _deliver(await consumer.getmany(tp, timeout_ms=500), beats.append, None)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return beats


async def read_instances(config: Config) -> list[Heartbeat]:
    """The recent heartbeats of every instance on ``config``'s status topic."""
    if not isinstance(config.sink, KafkaSinkConfig):
        raise SinkError(
            f'an active/standby pair needs sink.kind = "kafka", not {config.sink.kind!r}'
        )
    options = client_options(config.sink)
    with quiet_library_logs():
        try:
            return await asyncio.wait_for(
                read_recent(
                    options, config.ha.status_topic, client_id=f"cdcd-{config.name}-status"
                ),
                30,
            )
        except (KafkaError, TimeoutError) as exc:
            raise await unreachable(config.sink, options) or SinkError(
                f"cannot read the status topic {config.ha.status_topic!r} at "
                f"{config.sink.bootstrap_servers}: {exc!r}"
            ) from None
