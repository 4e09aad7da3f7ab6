"""Micro-benchmark of the pipeline's per-event cost, without a server.

Generated change events go through ``Pipeline.run``: the encoder (the envelope, the
default transforms: table topics, tombstones after deletes; the JSON serializer), the
segments, the writer and the acker, into a sink that keeps nothing. Chunks of 2,000
items, a commit every 1,000 events, as a source's catch-up hands them over. The figure
is the pipeline's CPU time per event (the process's, so that other processes on a shared
machine count less), the source's decoding and Kafka left out.

Workloads (``--mix``), rows of seven common columns in each:

- ``bench``: the bench harness's backlog (``benchmarks/load.py``): one table; inserts in
  transactions of 1,000, then updates and deletes (1.3 events a row);
- ``mixed``: each transaction on one of four tables, of 20 changes 8 inserts, 6 updates,
  4 deletes, 2 updates, in that order;
- ``alternating``: the table changes with every event (three tables in turn), the ops as
  in ``mixed``: the worst case for anything that counts consecutive changes together.

    .venv/bin/python benchmarks/micro_pipeline.py                    # this tree
    .venv/bin/python benchmarks/micro_pipeline.py --code /tmp/other  # another tree's cdcd/

On a shared machine compare the best of several passes, and alternate the trees.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHUNK_ITEMS = 2_000
TX_EVENTS = 1_000
TABLES = (("shop", "orders"), ("shop", "customers"), ("billing", "invoices"), ("billing", "lines"))


def _row(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "customer_id": 1_000 + i % 997,
        "status": ("new", "paid", "shipped")[i % 3],
        "amount": f"{i % 100_000}.{i % 100:02d}",
        "created_at": "2024-05-01T12:00:00.123456Z",
        "paid": bool(i % 2),
        "note": None if i % 5 == 0 else f"order {i} for customer {i % 997}",
    }


def _op_and_table(mix: str, i: int, events: int) -> tuple[str, tuple[str, str]]:
    if mix == "bench":  # of 13 events: 10 inserts, then 2 updates, then 1 delete
        op = "c" if i < events * 10 // 13 else "u" if i < events * 12 // 13 else "d"
        return op, TABLES[0]
    slot = i % 20
    op = "c" if slot < 8 else "u" if slot < 14 or slot >= 18 else "d"
    if mix == "mixed":
        return op, TABLES[(i // TX_EVENTS) % len(TABLES)]
    return op, TABLES[3] if slot >= 18 else TABLES[i % 3]


def backlog(events: int, mix: str = "mixed") -> list[list[Any]]:
    """The chunks of ``events`` change events, with a commit after every 1,000."""
    from cdcd.events import ChangeEvent, Commit
    from cdcd.positions import PgPosition

    items: list[Any] = []
    for i in range(events):
        op, (namespace, table) = _op_and_table(mix, i, events)
        row = _row(i)
        source = {
            "ts_ms": 1_717_000_000_000 + i,
            "db": "bench",
            "sequence": f'[null,"{i}"]',
            "schema": namespace,
            "table": table,
            "txId": 1_000 + i // TX_EVENTS,
            "lsn": 0x10_0000 + i * 100,
            "xmin": None,
        }
        before = row if op == "d" else None
        after = None if op == "d" else row
        txid = str(1_000 + i // TX_EVENTS)
        items.append(ChangeEvent(op, namespace, table, {"id": i}, before, after, source, txid))
        if (i + 1) % TX_EVENTS == 0:
            items.append(Commit(PgPosition(0x10_0000 + i * 100 + 50), txid, 1_717_000_000_000 + i))
    return [items[at : at + CHUNK_ITEMS] for at in range(0, len(items), CHUNK_ITEMS)]


class _NullSink:
    """Takes every write at once and keeps nothing."""

    async def write(self, records: list[Any], offset: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def _run(chunks: list[list[Any]], events: int) -> float:
    from cdcd.config import parse_config
    from cdcd.encoder import EnvelopeEncoder
    from cdcd.runtime.pipeline import Pipeline

    config = parse_config(
        {
            "name": "bench",
            "source": {"kind": "postgres", "dsn": "postgresql://cdc@localhost:5432/bench"},
            "sink": {"kind": "stdout"},
        }
    )

    async def ack(_checkpoint: Any) -> None:
        return None

    async def stream() -> Any:
        for chunk in chunks:
            yield chunk

    pipeline = Pipeline(_NullSink(), EnvelopeEncoder.from_config(config, "postgresql"), ack)  # type: ignore[arg-type]
    started = time.process_time()
    await pipeline.run(stream())
    elapsed = time.process_time() - started
    if pipeline.stats.events != events:
        raise SystemExit(f"{pipeline.stats.events} events through the pipeline: not all of them")
    return elapsed


def measure(events: int, passes: int, mix: str) -> dict[str, Any]:
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)  # as the daemon runs (cdcd.runtime.daemon.tune_gc)
    asyncio.run(_run(backlog(10_000, mix), 10_000))  # warm up
    timings = []
    for _ in range(passes):
        chunks = backlog(events, mix)
        timings.append(asyncio.run(_run(chunks, events)) / events * 1e6)
        del chunks
    return {"events": events, "us_per_event": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--mix", choices=("bench", "mixed", "alternating"), default="mixed")
    parser.add_argument("--code", type=Path, default=ROOT, help="the tree whose cdcd/ is measured")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    result = measure(args.events, args.passes, args.mix)
    timings = result["us_per_event"]
    summary = (
        f"{args.events} events ({args.mix}): best {min(timings):.3f} us/event, "
        f"median {statistics.median(timings):.3f} ({len(timings)} passes)"
    )
    print(json.dumps(result) if args.json else summary)


if __name__ == "__main__":
    main()
