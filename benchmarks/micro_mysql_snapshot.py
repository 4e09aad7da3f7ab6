"""Micro-benchmark of the MySQL/MariaDB snapshot reader (``MysqlSnapshotReader``).

No Kafka: a table of the bench's ``snapshot_orders`` shape (BIGINT key, INT, VARCHAR(16),
DECIMAL(12,2), ~100-character TEXT, TIMESTAMP(6), small JSON) in a database of its own
(``--db``, default ``cdcd_microsnap``; created and filled by the server when it does not
hold ``--rows`` rows), read in a consistent view chunk by chunk as the initial snapshot
reads it; ``--encode`` also runs each chunk through the envelope and the JSON
serializer, as the daemon does before Kafka. Each round is a process of its own; the
fastest round counts.

    .venv/bin/python benchmarks/micro_mysql_snapshot.py --rows 200000
    .venv/bin/python benchmarks/micro_mysql_snapshot.py --url "$CDCD_TEST_MYSQL8_URL"
    .venv/bin/python benchmarks/micro_mysql_snapshot.py --against main --rounds 3
        # rounds alternate between this tree and the cdcd/ of git ref "main"

Prints a JSON line per round and per tree: rows/s, CPU seconds per 100,000 rows (this
process, all threads; the server's are not counted; with ``--reader process`` the
snapshot reader process's apart), peak RSS of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TABLE = "snapshot_orders"


def ensure_table(url: str, db: str, rows: int) -> None:
    """``db.snapshot_orders`` with exactly ``rows`` rows (re-created otherwise)."""
    sys.path.insert(0, str(HERE))
    import load

    load.SCHEMA = db
    conn = load.mysql_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (db, TABLE),
            )
            if cur.fetchone()[0]:
                cur.execute(f"SELECT COUNT(*) FROM {db}.{TABLE}")
                if cur.fetchone()[0] == rows:
                    return
            cur.execute(f"DROP TABLE IF EXISTS {db}.{TABLE}")
            cur.execute(load.mysql_create(TABLE))
    finally:
        conn.close()
    load.load_generated("mysql", url, load.snapshot_table(rows))


async def scan(
    url: str, db: str, encode: bool, chunk_size: int, reader_kind: str
) -> dict[str, Any]:
    from cdcd.envelope import EnvelopeBuilder
    from cdcd.serialization import JsonSerializer
    from cdcd.sources.mysql.config import MysqlSourceConfig
    from cdcd.sources.mysql.source import MysqlSource

    config = MysqlSourceConfig(
        kind="mysql", dsn=url, tables=[f"{db}.{TABLE}"], snapshot_reader=reader_kind
    )
    source = MysqlSource(config, name="microsnap")
    reader = source.snapshot_reader()
    (table,) = await reader.tables()
    builder = EnvelopeBuilder("microsnap", "mysql")
    serializer = JsonSerializer()
    records: list[Any] = []
    wall, cpu = time.perf_counter(), time.process_time()
    view = await reader.consistent(1)
    count = 0
    async for chunk in view.scan(table, None, chunk_size, None):
        count += len(chunk.rows)
        if encode:
            for row in chunk.rows:
                row.source["snapshot"] = "true"  # as the core marks them
            records.clear()
            messages = builder.messages(chunk.rows, time.time_ns())
            serializer.serialize_all(messages, records, lambda item, at: None)
        if chunk.done:
            break
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await view.close()
    await reader.close()
    worker = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "worker_cpu_s_per_100k": round((worker.ru_utime + worker.ru_stime) / count * 100_000, 3),
        "rows": count,
        "rows_per_s": round(count / wall),
        "cpu_s_per_100k": round(cpu / count * 100_000, 3),
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _round(args: argparse.Namespace, tree: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": tree}
    command = [sys.executable, __file__, "--url", args.url, "--db", args.db, "--child"]
    command += ["--chunk-size", str(args.chunk_size), "--reader", args.reader]
    command += ["--encode"] if args.encode else []
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"round in {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def compare(args: argparse.Namespace) -> None:
    this = str(HERE.parent)
    trees = {"this": this}
    with tempfile.TemporaryDirectory() as other:
        if args.against:
            archive = subprocess.run(
                ["git", "archive", args.against, "cdcd"], cwd=this, capture_output=True, check=True
            )
            subprocess.run(["tar", "-x", "-C", other], input=archive.stdout, check=True)
            trees[args.against] = other
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in reversed(trees.items()):  # the other tree first: A, B, A, B
                result = _round(args, tree)
                results[name].append(result)
                print(json.dumps({"tree": name, **result}), flush=True)
    for name, rounds in results.items():
        best = max(rounds, key=lambda r: r["rows_per_s"])
        print(
            json.dumps(
                {
                    "tree": name,
                    "best_rows_per_s": best["rows_per_s"],
                    "median_rows_per_s": round(statistics.median(r["rows_per_s"] for r in rounds)),
                    "best_cpu_s_per_100k": min(r["cpu_s_per_100k"] for r in rounds),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("CDCD_TEST_MYSQL_URL"))
    parser.add_argument("--db", default="cdcd_microsnap")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--encode", action="store_true", help="also envelope and serialize")
    parser.add_argument("--reader", choices=("thread", "process"), default="thread")
    parser.add_argument("--against", metavar="GIT_REF", help="alternate rounds with its cdcd/")
    parser.add_argument("--drop", action="store_true", help="drop the database and exit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.url:
        raise SystemExit("no --url (nor CDCD_TEST_MYSQL_URL)")
    if args.child:
        print(
            json.dumps(
                asyncio.run(scan(args.url, args.db, args.encode, args.chunk_size, args.reader))
            )
        )
        return
    if args.drop:
        sys.path.insert(0, str(HERE))
        import load

        conn = load.mysql_connect(args.url)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {args.db}")
        conn.close()
        return
    ensure_table(args.url, args.db, args.rows)
    compare(args)


if __name__ == "__main__":
    main()
