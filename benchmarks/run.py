"""The benchmark runner: cdcd, Debezium and the C tools on the same backlog, in one run.

For each source (PostgreSQL, MariaDB; MySQL 8 on request) it loads the backlog of
``load.py`` once, after every reader's start point was fixed (PostgreSQL: one slot per
reader, created before the load; MariaDB/MySQL: the binlog position before the table
was created), then lets each reader catch it up, one after the other:

- the C limit: ``pg_recvlogical`` (pgoutput, binary, to /dev/null) or
  ``mariadb-binlog --read-from-remote-server -v`` (decoded, to /dev/null), timed by the
  wall clock from start to exit;
- python-mysql-replication iterating the rows (MariaDB/MySQL only), no Kafka;
- cdcd (``cdcd run``) into the real Kafka broker;
- Debezium's embedded engine with a KafkaProducer into the same broker (benchmarks/debezium);
- cdcd again under py-spy, for the profile of the hot path (not a measured figure);

then measures cdcd's end-to-end latency at a steady rate. Kafka readers are timed from
the broker's own append timestamps (LogAppendTime): first to last row event. The table
is printed, and the figures written to benchmarks/results/latest.json (and a dated copy).

    python benchmarks/run.py            # N = 500,000: the comparable figures
    python benchmarks/run.py --quick    # N = 20,000, a short latency window: a smoke run

Exit status: 0 when the harness ran to its end, whatever the figures and whatever a
reader's failure (recorded in the JSON under ``errors``); nonzero when the harness itself
broke (a database or Kafka unreachable, a bug here). ``--strict`` also fails on reader
errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# The harness's modules, and the cdcd of this tree (not whichever checkout a shared
# virtualenv's editable install points at): the one ``readers.cdcd_argv`` runs.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import catchup  # noqa: E402
import latency  # noqa: E402
import load  # noqa: E402
import report  # noqa: E402
import snapshot  # noqa: E402
import takeover  # noqa: E402
from backlog import Bench, load_backlog, make_bench  # noqa: E402
from harness import (  # noqa: E402
    CACHE,
    DEBEZIUM_VERSIONS,
    PRODUCER,
    REPO,
    RESULTS,
    TARGET_MIN_N,
    Options,
    log,
)
from kafka_tools import delete_topics  # noqa: E402
from procstat import machine  # noqa: E402
from readers import cdcd_fields  # noqa: E402

# -- options ---------------------------------------------------------------------------


def _testenv() -> dict[str, str]:
    """The exports of .testenv/env, if the test environment wrote it."""
    out: dict[str, str] = {}
    path = REPO / ".testenv" / "env"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                key, value = line[7:].split("=", 1)
                out[key] = value.strip().strip("'\"")
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small N and short latency window (CI)")
    p.add_argument("-n", type=int, help="backlog inserts (default 500000; --quick: 20000)")
    p.add_argument("--sources", default="postgres,mysql", help="postgres,mysql[,mysql8]")
    p.add_argument(
        "--skip",
        default=None,
        help="comma list of: c, pyrepl, cdcd, debezium, transforms, profile, latency, bigtx, "
        "snapshot, takeover (default: none)",
    )
    _add_steady_options(p)
    _add_cdcd_options(p)
    _add_phase_options(p)
    _add_takeover_options(p)
    p.add_argument("--keep-topics", action="store_true", help="keep the run's Kafka topics")
    p.add_argument("--strict", action="store_true", help="exit 2 when a reader failed")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    return p


def _add_steady_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steady-rate", type=float, default=5000.0, help="events/s (default 5000)")
    p.add_argument("--steady-seconds", type=float, help="measured window (default 30; --quick: 6)")
    p.add_argument(
        "--warmup-seconds", type=float, help="steady load before the window (default 5; --quick: 2)"
    )
    p.add_argument("--tx-rows", type=int, default=10, help="rows per steady transaction")


def _add_cdcd_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--delivery",
        default="at-least-once",
        help="cdcd's delivery key when its config has one (at-least-once, as Debezium; "
        "exactly-once; or 'default' to leave it out)",
    )
    p.add_argument(
        "--latency-delivery",
        default="exactly-once",
        help="cdcd's delivery in the latency phase (default exactly-once, the target's)",
    )
    p.add_argument(
        "--reader",
        choices=["process", "inline"],
        help="where cdcd reads and decodes the source: a worker process, or inline in the "
        "daemon (PostgreSQL reader = inline, MySQL reader = thread); default: cdcd's default",
    )


def _add_phase_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rounds",
        type=int,
        help="catch-ups of cdcd and of Debezium, taken in turn; each one's fastest counts "
        "(default 2; --quick: 1): a burst of host steal then spoils one round, not the ratio; "
        "also the most latency windows, repeated while the host steals >= 0.1 core, the "
        "least stolen one counting",
    )
    p.add_argument(
        "--big-tx",
        type=int,
        help="rows of the single-transaction memory phase (default 1000000; --quick: 0, off)",
    )
    p.add_argument(
        "--stall-timeout",
        type=float,
        help="seconds without a new record before a reader counts as stalled "
        "(default 300; --quick: 30)",
    )
    p.add_argument("--debezium-latency", action="store_true", help="measure Debezium's latency too")
    p.add_argument(
        "--snapshot-rows",
        type=int,
        help="rows of the initial-snapshot phase's table, snapshotted by cdcd and by Debezium "
        "(default 1000000; --quick: 20000; 0: off)",
    )
    p.add_argument(
        "--snapshot-threads",
        type=int,
        help="cdcd's [snapshot] max_threads in that phase (default: cdcd's default)",
    )
    p.add_argument(
        "--snapshot-reader",
        choices=["process", "inline"],
        help="where cdcd reads a snapshot's tables in that phase: a worker process, or the "
        "daemon (PostgreSQL snapshot_reader = inline, MySQL = thread); default: cdcd's",
    )


def _add_takeover_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--takeovers",
        type=int,
        help="the takeover phase's SIGKILLs of a pair's active cdcd, with exactly-once and "
        "again with at-least-once (default 10; --quick: 2; 0 and no --handovers: no phase)",
    )
    p.add_argument(
        "--handovers",
        type=int,
        help="its SIGTERMs of the active cdcd, exactly-once (default 5; --quick: 1)",
    )
    p.add_argument("--lease-ms", type=int, default=5000, help="the pair's [ha] lease_ms")
    p.add_argument("--heartbeat-ms", type=int, default=1000, help="the pair's [ha] heartbeat_ms")
    p.add_argument("--takeover-rate", type=float, default=1000.0, help="rows/s of its steady load")


def parse_options(argv: list[str] | None = None) -> Options:
    """The command line (and the test servers' addresses), defaults resolved."""
    env = {**_testenv(), **os.environ}
    p = _parser()
    a = p.parse_args(argv)
    sources = [s.strip() for s in a.sources.split(",") if s.strip()]
    for s in sources:
        if s not in ("postgres", "mysql", "mysql8"):
            p.error(f"unknown source {s!r}")
    if "CDCD_TEST_KAFKA_BOOTSTRAP" not in env or "CDCD_TEST_PG_DSN" not in env:
        p.error("no test servers: run scripts/testenv up (or export CDCD_TEST_* )")
    return _options(a, sources, env)


def _options(a: argparse.Namespace, sources: list[str], env: dict[str, str]) -> Options:
    """What was not given, by mode: the comparable run's defaults, or --quick's."""
    quick = a.quick
    skip = a.skip if a.skip is not None else ""
    return Options(
        n=a.n or (20_000 if quick else 500_000),
        quick=quick,
        sources=sources,
        skip={s.strip() for s in skip.split(",") if s.strip()},
        steady_rate=a.steady_rate,
        steady_seconds=a.steady_seconds or (6.0 if quick else 30.0),
        warmup_seconds=a.warmup_seconds
        if a.warmup_seconds is not None
        else (2.0 if quick else 5.0),
        tx_rows=a.tx_rows,
        delivery=a.delivery,
        latency_delivery=a.latency_delivery,
        reader=a.reader,
        rounds=max(1, a.rounds if a.rounds is not None else (1 if quick else 2)),
        big_tx=a.big_tx if a.big_tx is not None else (0 if quick else 1_000_000),
        startup_timeout=90.0 if quick else 240.0,
        stall_timeout=a.stall_timeout or (30.0 if quick else 300.0),
        debezium_latency=a.debezium_latency,
        keep_topics=a.keep_topics,
        strict=a.strict,
        out=a.out,
        kafka=env["CDCD_TEST_KAFKA_BOOTSTRAP"],
        pg_dsn=env["CDCD_TEST_PG_DSN"],
        mysql_url=env.get("CDCD_TEST_MYSQL_URL", ""),
        mysql8_url=env.get("CDCD_TEST_MYSQL8_URL"),
        snapshot_rows=a.snapshot_rows
        if a.snapshot_rows is not None
        else (20_000 if quick else 1_000_000),
        snapshot_threads=a.snapshot_threads,
        snapshot_reader=a.snapshot_reader,
        takeovers=a.takeovers if a.takeovers is not None else (2 if quick else 10),
        handovers=a.handovers if a.handovers is not None else (1 if quick else 5),
        lease_ms=a.lease_ms,
        heartbeat_ms=a.heartbeat_ms,
        takeover_rate=a.takeover_rate,
    )


# -- the phases, in order ----------------------------------------------------------------


async def bench_source(opts: Options, bench: Bench) -> dict[str, Any]:
    """One source's phases, in order (its ``sources.<name>`` in the JSON). A phase that
    fails is recorded under ``errors`` and the next one runs; only preparing the server
    and loading the backlog stop the source."""
    run = await load_backlog(opts, bench)
    catchup.c_limit(run)
    catchup.python_mysql_replication(run)
    await catchup.cdcd_and_debezium(run)
    await catchup.cdcd_transforms(run)
    await catchup.profile(run)
    await latency.cdcd_latency(run)
    await catchup.big_transaction(run)
    await latency.debezium_latency(run)
    await snapshot.initial_snapshot(run)
    await takeover.takeovers(run)
    return run.out


def _prune_runs(keep: int = 10) -> None:
    """Keep the work directories (logs, configs) of the last ``keep`` runs."""
    runs = sorted((CACHE / "runs").glob("*"))
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _run_header(opts: Options) -> dict[str, Any]:
    """The run's own keys of the JSON: its id, mode, machine, workload, settings."""
    result: dict[str, Any] = {
        "harness_version": 1,
        "run_id": opts.run_id,
        "mode": "quick" if opts.quick else "full",
        "comparable": opts.n >= TARGET_MIN_N,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "workload": {
            **load.Workload(opts.n).describe(),
            "steady_rate": opts.steady_rate,
            "steady_seconds": opts.steady_seconds,
            "warmup_seconds": opts.warmup_seconds,
            "steady_tx_rows": opts.tx_rows,
            "snapshot_rows": opts.snapshot_rows,
            "takeovers": opts.takeovers,
            "handovers": opts.handovers,
            "takeover_rate": opts.takeover_rate,
        },
        "settings": {
            "cdcd_delivery": opts.delivery
            if "delivery" in cdcd_fields()["top"]
            else "(no such key)",
            "cdcd_latency_delivery": opts.latency_delivery,
            "cdcd_reader": opts.reader or "default",
            "cdcd_snapshot_threads": opts.snapshot_threads or "default",
            "cdcd_snapshot_reader": opts.snapshot_reader or "default",
            "cdcd_ha": {"lease_ms": opts.lease_ms, "heartbeat_ms": opts.heartbeat_ms},
            "debezium": DEBEZIUM_VERSIONS,
            "producer": PRODUCER,
            "kafka": opts.kafka,
            "work_dir": str(opts.work),
        },
        "sources": {},
    }
    if not result["comparable"]:
        result["note"] = (
            f"N = {opts.n} < {TARGET_MIN_N}: figures are a smoke test, not comparable "
            "(Debezium's JIT is cold, start-up dominates)"
        )
    return result


async def _one_source(opts: Options, name: str) -> dict[str, Any]:
    """A source's figures with its headline; a source that cannot even be prepared
    gets an ``error`` (exit status 1), the others still run."""
    bench = make_bench(opts, name)
    try:
        out = await bench_source(opts, bench)
    except Exception as exc:  # noqa: BLE001 - one source failing does not stop the others
        log(f"{name}: failed: {exc}")
        out = {
            "error": f"{exc.__class__.__name__}: {exc}",
            "readers": {},
            "errors": {"source": str(exc)},
            "events": load.Workload(opts.n).events,
        }
        if not isinstance(exc, RuntimeError | OSError):
            out["traceback"] = traceback.format_exc()
    finally:
        with contextlib.suppress(Exception):
            bench.cleanup()
    report.headline(name, out, opts)
    return out


async def main_async(opts: Options) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    opts.work.mkdir(parents=True, exist_ok=True)
    _prune_runs()
    result = _run_header(opts)
    started = time.monotonic()
    try:
        for name in opts.sources:
            result["sources"][name] = await _one_source(opts, name)
    finally:
        if not opts.keep_topics:
            with contextlib.suppress(Exception):
                await delete_topics(opts.kafka, opts.topic_root)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["duration_s"] = round(time.monotonic() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    # aiokafka logs retries it recovers from (a new topic's leader election) as errors.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    log(f"run {opts.run_id}: N={opts.n}, sources {', '.join(opts.sources)}, work dir {opts.work}")
    result = asyncio.run(main_async(opts))
    print(report.write(result, opts))
    log(f"written {opts.out} in {result['duration_s']} s")
    failures = {s: o["errors"] for s, o in result["sources"].items() if o.get("errors")}
    if failures:
        log(f"reader errors (recorded in the JSON): {json.dumps(failures)[:600]}")
    if any(o.get("error") for o in result["sources"].values()):
        return 1
    return 2 if (opts.strict and failures) else 0


if __name__ == "__main__":
    sys.exit(main())
