"""The benchmark harness's own arithmetic (benchmarks/run.py): how a latency window is
read second by second, and which window counts."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import run  # noqa: E402

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
    out = run._by_second(commits, ids, start, steal, target_ms=50.0, reader_ts=reader_ts)
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
    assert run._choose_window(windows)["window"] == 2
    assert run._choose_window(windows[:1])["window"] == 1
