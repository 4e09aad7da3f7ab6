"""Kafka side of the harness: topics stamped by the broker, end offsets, record counts.

Every topic a reader writes to is created by the harness beforehand with
``message.timestamp.type=LogAppendTime``: each record then carries the broker's clock at
the moment it was appended, whoever produced it. Throughput is measured from those
stamps (first to last row event), latency from commit time to that stamp. The broker,
the databases and the harness share one machine and one clock.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

_OP = b'"op":"'


async def create_topics(bootstrap: str, names: list[str]) -> None:
    """One partition, replication 1, stamped with the broker's append time."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="cdcd-bench-admin")
    await admin.start()
    try:
        topics = [
            NewTopic(name, 1, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})
            for name in names
        ]
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(topics)
    finally:
        await admin.close()
    for name in names:  # a new topic's leader is elected asynchronously
        await wait_for_topic_metadata(bootstrap, name)


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete the topics whose names start with ``prefix`` (the harness's own)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="cdcd-bench-admin")
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


@dataclass
class TopicStats:
    """What a topic holds, read with ``read_committed``."""

    values: int = 0
    tombstones: int = 0
    ops: Counter[str] = field(default_factory=Counter)
    first_ts_ms: int | None = None  # LogAppendTime of the first row event
    last_ts_ms: int | None = None
    timestamp_type: int | None = None  # 1: LogAppendTime
    ids: dict[int, int] | None = None  # key id -> append time, when asked for
    offsets: dict[int, int] | None = None  # key id -> the record's offset, when asked for
    # key id -> the envelope's source.ts_us (the database's commit time), when it has one
    source_ts_us: dict[int, int] | None = None
    # key id -> the envelope's ts_ns (when the reader had the change), when it has one
    reader_ts_ns: dict[int, int] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "records": self.values + self.tombstones,
            "row_events": self.values,
            "tombstones": self.tombstones,
            "ops": dict(self.ops),
            "first_event_ts_ms": self.first_ts_ms,
            "last_event_ts_ms": self.last_ts_ms,
            "log_append_time": self.timestamp_type == 1,
        }


class TopicReader:
    """Follows one single-partition topic: its end offset, and its records read so far."""

    def __init__(self, bootstrap: str, topic: str, *, keep_ids: bool = False) -> None:
        self.topic = topic
        self.partition = TopicPartition(topic, 0)
        self.stats = TopicStats(
            ids={} if keep_ids else None,
            offsets={} if keep_ids else None,
            source_ts_us={} if keep_ids else None,
            reader_ts_ns={} if keep_ids else None,
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="cdcd-bench-reader",
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign([self.partition])
        await self._consumer.seek_to_beginning(self.partition)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def end_offset(self) -> int:
        offsets = await self._consumer.end_offsets([self.partition])
        return int(offsets[self.partition])

    async def catch_up(self) -> TopicStats:
        """Read every record up to the current end of the topic."""
        end = await self.end_offset()
        consumer = self._consumer
        stats = self.stats
        ids = stats.ids
        source_ts = stats.source_ts_us
        reader_ts = stats.reader_ts_ns
        ops = stats.ops
        while await consumer.position(self.partition) < end:
            batches = await consumer.getmany(self.partition, timeout_ms=1000, max_records=50_000)
            for record in batches.get(self.partition, ()):
                value = record.value
                if stats.timestamp_type is None:
                    stats.timestamp_type = record.timestamp_type
                if ids is not None and record.key:
                    with contextlib.suppress(Exception):
                        row_id = int(orjson.loads(record.key)["id"])
                        ids[row_id] = record.timestamp
                        if stats.offsets is not None:
                            stats.offsets[row_id] = record.offset
                        if value is not None and source_ts is not None:
                            envelope = orjson.loads(value)
                            ts_us = envelope["source"].get("ts_us")
                            if ts_us:
                                source_ts[row_id] = int(ts_us)
                            ts_ns = envelope.get("ts_ns")
                            if ts_ns and reader_ts is not None:
                                reader_ts[row_id] = int(ts_ns)
                if value is None:
                    stats.tombstones += 1
                    continue
                stats.values += 1
                at = value.find(_OP)
                ops[value[at + 6 : at + 7].decode() if at >= 0 else "?"] += 1
                ts = record.timestamp
                if stats.first_ts_ms is None or ts < stats.first_ts_ms:
                    stats.first_ts_ms = ts
                if stats.last_ts_ms is None or ts > stats.last_ts_ms:
                    stats.last_ts_ms = ts
        return stats


async def wait_for_topic_metadata(bootstrap: str, topic: str, timeout: float = 30.0) -> None:
    """Wait until the topic's partition has a leader that answers offset requests."""
    reader = TopicReader(bootstrap, topic)
    await reader.start()
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while True:
            try:
                await asyncio.wait_for(reader.end_offset(), 5)
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await reader.stop()


# -- transaction markers -----------------------------------------------------------------
#
# A read_committed consumer sees a transaction's records once its COMMIT marker is in the
# partition. Consumers never get the markers themselves, so they are read from the
# broker's log segments (the broker runs on this machine): the record batch v2 header,
# and the control record's key (version, type: 0 abort, 1 commit).

_BATCH = struct.Struct(">qiiBIhiqqqhii")  # baseOffset .. recordsCount: 61 bytes
_CONTROL = 0x20  # attributes: a control batch


async def broker_log_dirs(bootstrap: str) -> list[Path]:
    """The broker's ``log.dirs`` (this machine's paths)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="cdcd-bench-admin")
    await admin.start()
    try:
        node = next(iter(admin._client.cluster.brokers())).nodeId
        responses = await admin.describe_configs(
            [
                ConfigResource(
                    ConfigResourceType.BROKER, str(node), {"log.dirs": None, "log.dir": None}
                )
            ]
        )
        found: dict[str, str] = {}
        for response in responses:
            for resource in response.resources:
                for entry in resource[4]:
                    if entry[1]:
                        found[entry[0]] = entry[1]
        value = found.get("log.dirs") or found.get("log.dir") or ""
        return [Path(d) for d in value.split(",") if d]
    finally:
        await admin.close()


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), pos  # zigzag
        shift += 7


def transaction_markers(
    log_dirs: list[Path], topic: str, partition: int = 0
) -> list[tuple[int, int, int]]:
    """(offset, append time in ms, type: 1 commit, 0 abort) of each transaction marker in
    ``topic``'s partition, in offset order; [] when its log is not on this machine."""
    markers: list[tuple[int, int, int]] = []
    for log_dir in log_dirs:
        folder = log_dir / f"{topic}-{partition}"
        for segment in sorted(folder.glob("*.log")):
            data = segment.read_bytes()
            pos = 0
            while pos + _BATCH.size <= len(data):
                base, length, _, magic, _, attributes, _, _, max_ts, *_ = _BATCH.unpack_from(
                    data, pos
                )
                end = pos + 12 + length
                if length <= 0 or end > len(data):
                    break  # the segment's end, or a batch being written
                if magic == 2 and attributes & _CONTROL:
                    at = pos + _BATCH.size
                    _, at = _varint(data, at)  # record length
                    at += 1  # record attributes
                    _, at = _varint(data, at)  # timestamp delta
                    _, at = _varint(data, at)  # offset delta
                    key_length, at = _varint(data, at)
                    kind = struct.unpack_from(">hh", data, at)[1] if key_length >= 4 else -1
                    markers.append((base, max_ts, kind))
                pos = end
    markers.sort()
    return markers


def visible_at(markers: list[tuple[int, int, int]], offset: int) -> int | None:
    """When a read_committed consumer could first see the record at ``offset``: the
    append time of the first COMMIT marker after it (None: no marker after it)."""
    index = bisect.bisect_right(markers, (offset, math.inf, 0))  # the first one after it
    if index == len(markers):
        return None
    _, ts, kind = markers[index]
    return ts if kind == 1 else None
