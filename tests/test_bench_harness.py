"""The benchmark harness's own arithmetic: how a latency window is read second by second
and which window counts (benchmarks/latency.py), where Kafka's transaction markers are
(benchmarks/kafka_tools.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import latency  # noqa: E402

S = 1_000_000_000  # ns


def test_by_second_counts_slow_seconds_and_splits_them_at_the_reader():
    start = 100 * S
    # Second 0: ten one-row transactions, each 5 ms to Kafka (2 ms to the reader);
    # second 1: ten more, each 80 ms to Kafka, 70 of them before the reader had them.
    commits, ids, reader_ts = [], {}, {}
    for second, (total_ms, reader_ms) in enumerate([(5, 2), (80, 70)]):
        for k in range(10):
            row = second * 100 + k
            sent = start + second * S + k * 50_000_000
            commits.append([row, 1, sent, sent + 1_000_000])
            ids[row] = sent / 1e6 + total_ms
            reader_ts[row] = sent + reader_ms * 1_000_000
    # One transaction before the window (warm-up): not counted.
    commits.append([999, 1, start - S, start - S + 1])
    ids[999] = (start - S) / 1e6 + 500
    steal = [(start - S, 0.0), (start + S, 0.1), (start + 2 * S, 0.9)]
    out = latency._by_second(commits, ids, start, steal, target_ms=50.0, reader_ts=reader_ts)
    assert out["seconds"] == 2 and out["seconds_over_target"] == 1
    worst = out["worst"][0]
    assert worst["second"] == 1
    assert worst["p99_ms"] == 80.0 and worst["to_reader_p99_ms"] == 70.0
    assert out["steal_cores_in_slow_seconds"] > out["steal_cores_in_other_seconds"]


def test_the_window_with_the_least_host_steal_counts_whatever_its_latency():
    windows = [
        {"window": 1, "host_steal_cores": 0.4, "p99_ms": 20.0},
        {"window": 2, "host_steal_cores": 0.05, "p99_ms": 90.0},
        {"window": 3, "host_steal_cores": 0.01, "error": "rows missing"},
    ]
    assert latency._choose_window(windows)["window"] == 2
    assert latency._choose_window(windows[:1])["window"] == 1


def test_transaction_markers_are_read_from_the_log_segment(tmp_path):
    """Batches laid out by aiokafka's own builder (a control batch: its attributes'
    control bit, the key version 0 and type 1 = commit, 0 = abort)."""
    import struct

    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
    from kafka_tools import transaction_markers, visible_at

    def batch(base: int, ts: int, key: bytes, control: bool = False) -> bytes:
        builder = _DefaultRecordBatchBuilderPy(2, 0, 1, 7, 0, 0, 1 << 20)
        builder.append(0, ts, key, b"{}" if not control else b"\x00\x00\x00\x00", [])
        data = builder.build()
        struct.pack_into(">q", data, 0, base)
        if control:
            attributes = struct.unpack_from(">h", data, 21)[0] | 0x20
            struct.pack_into(">h", data, 21, attributes)
        return bytes(data)

    commit, abort = b"\x00\x00\x00\x01", b"\x00\x00\x00\x00"
    folder = tmp_path / "t-0"
    folder.mkdir()
    segment = (
        batch(0, 1000, b"a")
        + batch(1, 1005, commit, control=True)
        + batch(2, 1010, b"b")
        + batch(3, 1020, abort, control=True)
        + batch(4, 1030, b"c")
    )
    (folder / "00000000000000000000.log").write_bytes(segment + batch(5, 1040, b"d")[:30])
    markers = transaction_markers([tmp_path], "t")
    assert markers == [(1, 1005, 1), (3, 1020, 0)]
    assert visible_at(markers, 0) == 1005
    assert visible_at(markers, 2) is None  # aborted
    assert visible_at(markers, 4) is None  # not committed yet
    assert transaction_markers([tmp_path], "other") == []
