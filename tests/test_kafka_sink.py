"""The Kafka sink against the real broker: partitions as the Java client picks them, order
per key, offsets committed with the records (exactly-once) or after them (at-least-once)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from offsets_support import offset_history
from support import consume, unique_name

from cdcd.config import parse_config
from cdcd.offsets import StoredOffset
from cdcd.positions import PgPosition
from cdcd.serialization import Record
from cdcd.sinks.kafka import build

pytestmark = pytest.mark.integration

# org.apache.kafka.common.utils.UtilsTest#testMurmur2: what the Java client computes.
JAVA_MURMUR2 = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}


def java_partition(key: bytes, partitions: int) -> int:
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_is_the_java_clients():
    from aiokafka.partitioner import murmur2

    for key, expected in JAVA_MURMUR2.items():
        assert murmur2(key) == expected & 0xFFFFFFFF


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_records_land_in_the_java_partition_in_order_with_their_offset(kafka_bootstrap, delivery):
    name = unique_name("sink")
    config = parse_config(
        {
            "name": name,
            "delivery": delivery,
            "source": {"kind": "postgres", "dsn": "postgresql://h/db"},
            "sink": {
                "kind": "kafka",
                "bootstrap_servers": kafka_bootstrap,
                "topic_prefix": name,
                "partitions": 3,
                "max_batch_bytes": 4096,  # several batches per partition and write
            },
        }
    )
    topic = f"{name}.s.t"
    keys = [orjson.dumps({"id": i}) for i in range(40)]

    async def write() -> None:
        sink = build(config)
        await sink.start()
        try:
            assert await sink.read_offset() is None
            deliveries = []
            for round_ in range(5):
                records = [
                    Record(topic, key, orjson.dumps({"v": round_, "pad": "x" * 200}))
                    for key in keys
                ]
                deliveries.append(await sink.write(records, StoredOffset(PgPosition(100 + round_))))
            for delivery in deliveries:
                await delivery
            assert await sink.read_offset() == StoredOffset(
                PgPosition(104), ts_ms=(await sink.read_offset()).ts_ms
            )
        finally:
            await sink.close()

    asyncio.run(write())
    messages = consume(kafka_bootstrap, [topic], expect=200, settle=1)
    assert len(messages) == 200
    by_key: dict[int, list[int]] = {}
    for m in messages:
        assert m.partition == java_partition(orjson.dumps(m.key), 3)
        by_key.setdefault(m.key["id"], []).append(m.value["v"])
    assert all(v == [0, 1, 2, 3, 4] for v in by_key.values()) and len(by_key) == 40
    assert {m.partition for m in messages} == {0, 1, 2}
    history = offset_history(kafka_bootstrap, name)
    assert [h["lsn"] for h in history] == [f"0/{100 + i:X}" for i in range(5)]


def test_kafka_errors_that_may_pass_start_over_and_the_others_stop():
    from aiokafka.errors import KafkaConnectionError, KafkaError, ProducerFenced

    from cdcd.errors import FencedError, SinkError
    from cdcd.sinks.base import SinkUnavailableError
    from cdcd.sinks.kafka.errors import explain_kafka_error

    def sender_died() -> KafkaError:
        try:
            try:
                raise KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
            except KafkaConnectionError as exc:
                raise KafkaError("Unexpected error during batch delivery") from exc
        except KafkaError as exc:
            return exc

    assert isinstance(explain_kafka_error(sender_died(), "b:9092"), SinkUnavailableError)
    assert isinstance(explain_kafka_error(KafkaConnectionError(), "b:9092"), SinkUnavailableError)
    fenced = explain_kafka_error(ProducerFenced(), "b:9092")
    assert isinstance(fenced, FencedError) and "fenced" in str(fenced)
    other = explain_kafka_error(KafkaError("corrupt"), "b:9092")
    assert isinstance(other, SinkError) and not isinstance(other, SinkUnavailableError)


def test_exactly_once_transactions_begin_an_interval_apart(kafka_bootstrap):
    """sink.transaction_interval_ms: the writer may begin the next Kafka transaction only
    that long after the last one began; the first one (after a quiet spell) at once."""
    import time

    name = unique_name("interval")
    config = parse_config(
        {
            "name": name,
            "delivery": "exactly-once",
            "source": {"kind": "postgres", "dsn": "postgresql://h/db"},
            "sink": {
                "kind": "kafka",
                "bootstrap_servers": kafka_bootstrap,
                "topic_prefix": name,
                "transaction_interval_ms": 1500,
            },
        }
    )
    topic = f"{name}.s.t"

    async def write() -> list[float]:
        sink = build(config)
        await sink.start()
        try:
            ready_after: list[float] = []
            began = None
            for round_ in range(3):
                asked = time.monotonic()
                await sink.ready()
                ready_after.append(time.monotonic() - (began if began is not None else asked))
                began = time.monotonic()
                record = Record(topic, orjson.dumps({"id": round_}), orjson.dumps({"v": round_}))
                await sink.write([record], StoredOffset(PgPosition(200 + round_)))
            await sink.ready()
            return ready_after
        finally:
            await sink.close()

    first, second, third = asyncio.run(write())
    assert first < 1.0  # not held back: nothing began before it
    assert second >= 1.45 and third >= 1.45  # 1.5 s after the last one began
    assert [m.value["v"] for m in consume(kafka_bootstrap, [topic], expect=3, settle=1)] == [
        0,
        1,
        2,
    ]
    assert [h["lsn"] for h in offset_history(kafka_bootstrap, name)] == ["0/C8", "0/C9", "0/CA"]


def test_record_headers_reach_kafka(kafka_bootstrap):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    name = unique_name("headers")
    config = parse_config(
        {
            "name": name,
            "source": {"kind": "postgres", "dsn": "postgresql://h/db"},
            "sink": {"kind": "kafka", "bootstrap_servers": kafka_bootstrap, "topic_prefix": name},
        }
    )
    topic = f"{name}.s.t"

    async def write_and_read() -> list:
        sink = build(config)
        await sink.start()
        try:
            records = [
                Record(topic, b'{"id":1}', b'{"v":1}', [("id", b"42"), ("type", b"Order")]),
                Record(topic, b'{"id":2}', b'{"v":2}'),
            ]
            await (await sink.write(records, StoredOffset(PgPosition(100))))
        finally:
            await sink.close()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level="read_committed")
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            batches = await consumer.getmany(tp, timeout_ms=10_000)
            return [list(r.headers) for r in batches.get(tp, [])]
        finally:
            await consumer.stop()

    assert asyncio.run(write_and_read()) == [[("id", b"42"), ("type", b"Order")], []]
