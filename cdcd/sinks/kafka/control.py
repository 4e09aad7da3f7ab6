"""``cdcd snapshot``'s Kafka side: a signal to the running daemon, and the notifications
that answer it, wherever the daemon runs.

The notification topic's end is read before the signal is sent, so only the answers to
it are read; they are read ``read_committed`` (a notification is committed with the rows
it reports).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from cdcd.errors import SinkError
from cdcd.sinks.kafka.client import quiet_library_logs
from cdcd.sinks.kafka.membership import members
from cdcd.sinks.kafka.offsets import _admin, _offsets_topic
from cdcd.sinks.kafka.signals import ensure_topic, send_signal

if TYPE_CHECKING:
    from cdcd.config import Config
    from cdcd.snapshot.signals import Signal


class DaemonNotRunningError(SinkError):
    """Signals are read by a running daemon; none runs."""


async def _notification_ends(
    admin: Any, options: dict[str, Any], topic: str
) -> dict[TopicPartition, int]:
    """Where each partition of the notification topic ends now."""
    described = await admin.describe_topics([topic])
    tps = [
        TopicPartition(topic, p["partition"]) for d in described for p in d.get("partitions", ())
    ]
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def send_to_daemon(config: Config, signal: Signal) -> dict[TopicPartition, int]:
    """Send ``signal`` to the running daemon ``config`` names; the notification topic's
    ends before it (where its answers start). ``DaemonNotRunningError`` when none runs."""
    from cdcd.snapshot.signals import signal_value

    offsets = _offsets_topic(config)
    topic = config.signals.kafka_topic
    notifications = config.notifications.topic
    if not topic or not notifications:
        raise SinkError(
            "cdcd snapshot talks to the daemon through Kafka: set signals.kafka_topic and "
            "notifications.topic (their defaults are cdcd-signals and cdcd-notifications)"
        )
    with quiet_library_logs():
        admin = await _admin(offsets)
        try:
            running = await members(admin, offsets.group_id)
            if not running:
                raise DaemonNotRunningError(
                    f"cdcd {config.name!r} is not running (consumer group {offsets.group_id} has "
                    f"no member): start it (systemctl start cdcd@{config.name}); a running "
                    "daemon reads the signal"
                )
            await ensure_topic(admin, notifications, offsets.sink.replication_factor)
            ends = await _notification_ends(admin, offsets.options, notifications)
            key = config.sink.topic_prefix
            await send_signal(offsets.options, topic, key, signal_value(signal))
        except KafkaError as exc:
            raise SinkError(f"Kafka error: {exc.__class__.__name__}: {exc}") from None
        finally:
            await admin.close()
    return ends


async def notifications(
    config: Config, since: dict[TopicPartition, int], *, idle_timeout_s: float | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The daemon's notifications after ``since``, as they come (values as dicts); ends
    after ``idle_timeout_s`` without one."""
    offsets = _offsets_topic(config)
    topic = config.notifications.topic
    key = orjson.dumps(config.sink.topic_prefix)
    consumer = AIOKafkaConsumer(
        **offsets.options, enable_auto_commit=False, isolation_level="read_committed"
    )
    with quiet_library_logs():
        await consumer.start()
    try:
        tps = sorted(since, key=lambda tp: tp.partition) or [TopicPartition(topic, 0)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, since.get(tp, 0))
        last = time.monotonic()
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    last = time.monotonic()
                    if record.key == key and record.value:
                        with contextlib.suppress(orjson.JSONDecodeError):
                            yield orjson.loads(record.value)
            if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                return
            await asyncio.sleep(0)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
