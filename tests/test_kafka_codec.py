"""The lz4 level of record batches: the Java client's fast compressor, not LZ4 HC."""

from __future__ import annotations

from aiokafka import codec
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from cdcd.sinks.kafka import shims

LZ4 = 3  # compression type id in a record batch


def test_batches_are_compressed_with_lz4_at_the_fast_level(monkeypatch):
    shims.install()  # as the sink does when it starts
    levels: list[int] = []
    encode = codec.lz4_encode

    def spy(payload, level=9):
        levels.append(level)
        return encode(payload, level)

    monkeypatch.setattr(codec, "lz4_encode", spy)
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=LZ4,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    values = [b'{"after":{"id":%d,"note":"%s"}}' % (i, b"x" * 100) for i in range(500)]
    for offset, value in enumerate(values):
        builder.append(offset, timestamp=None, key=b"k", value=value, headers=[])
    built = bytes(builder.build())
    assert levels == [shims.LZ4_LEVEL] and shims.LZ4_LEVEL < 3  # 3 and more: LZ4 HC
    assert len(built) < sum(map(len, values)) // 10  # compressed
    batch = MemoryRecords(built).next_batch()
    assert [record.value for record in batch] == values  # and readable as written
