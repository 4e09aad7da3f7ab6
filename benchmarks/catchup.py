"""Phase 2 of a source: the readers catch the backlog up, one after the other (never two
at once: 2 cores). The C limit, python-mysql-replication, cdcd and Debezium in turn for
``--rounds`` rounds (each reader's fastest counts), cdcd under py-spy; and later, after
the latency phase, cdcd over one big transaction. Each phase records its figures under
``readers`` (or its own key) and its failure under ``errors``; the run goes on."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import load
from backlog import SourceRun
from harness import DEBEZIUM_VERSIONS, RESULTS, log, log_tail
from procstat import CpuMeter
from profile_top import format_top, top_entries
from readers import Follow, catch_up, cdcd_follow, debezium_follow
from server_mysql import MysqlBench


def c_limit(run: SourceRun) -> None:
    """``pg_recvlogical`` / ``mariadb-binlog -v`` to /dev/null: what the server can serve."""
    if "c" in run.opts.skip:
        return
    log(f"{run.name}: C limit ...")
    try:
        meter = CpuMeter()
        result = run.bench.c_limit(run.out["end"], run.workdir)
        result["host_steal_cores"] = meter.steal_cores()
        result["events"] = run.workload.events
        if "error" not in result and result.get("wall_s"):
            result["events_per_s"] = round(run.workload.events / result["wall_s"], 1)
        run.readers["c_limit"] = result
        run.note_error("c_limit", result)
    except Exception as exc:  # noqa: BLE001
        run.failed("c_limit", exc)


def python_mysql_replication(run: SourceRun) -> None:
    """The rows iterated by the library cdcd's MySQL source builds on (no Kafka)."""
    if not isinstance(run.bench, MysqlBench) or "pyrepl" in run.opts.skip:
        return
    log(f"{run.name}: python-mysql-replication ...")
    try:
        meter = CpuMeter()
        run.readers["python_mysql_replication"] = result = run.bench.pyrepl(run.workdir)
        result["host_steal_cores"] = meter.steal_cores()
        run.note_error("python_mysql_replication", result)
    except Exception as exc:  # noqa: BLE001
        run.failed("python_mysql_replication", exc)


async def cdcd_and_debezium(run: SourceRun) -> None:
    """cdcd and Debezium in turn, ``--rounds`` times, each from a start point of its
    own; each reader's fastest round counts."""
    opts = run.opts
    rounds: dict[str, list[dict[str, Any]]] = {"cdcd": [], "debezium": []}
    for index in range(opts.rounds):
        of = f" (round {index + 1} of {opts.rounds})" if opts.rounds > 1 else ""
        for key, phase, role in (
            ("cdcd", _cdcd_catch_up, run.cdcd_roles[index]),
            ("debezium", _debezium_catch_up, run.dbz_roles[index]),
        ):
            if key in opts.skip:
                continue
            log(f"{run.name}: {'cdcd' if key == 'cdcd' else 'Debezium'} catch-up{of} ...")
            try:
                rounds[key].append(await phase(run, role))
            except Exception as exc:  # noqa: BLE001
                run.failed(f"{key} (round {index + 1})", exc)
    for key, results in rounds.items():
        if results:
            run.readers[key] = result = _fastest(results)
            run.note_error(key, result)


def _fastest(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of a reader's catch-ups (one that delivered the backlog, if any did),
    with every round's figures under ``rounds``."""
    done = [r for r in results if "error" not in r and r.get("events_per_s")]
    best = dict(max(done, key=lambda r: r["events_per_s"]) if done else results[0])
    if len(results) > 1:
        best["rounds"] = [
            {
                "events_per_s": r.get("events_per_s"),
                "host_steal_cores": r.get("host_steal_cores"),
                "machine_busy_cores": r.get("machine_busy_cores"),
                "cpu_s": r.get("cpu_s"),
                **({"error": r["error"]} if "error" in r else {}),
            }
            for r in results
        ]
    return best


async def _cdcd_catch_up(run: SourceRun, role: str) -> dict[str, Any]:
    phase = f"catchup{role.removeprefix('cdcd')}"
    follow, path = cdcd_follow(run, phase, role, run.bench.cdcd_catchup_source(role))
    result = await catch_up(run.opts, follow, run.workload)
    result["config"] = str(path)
    return result


async def _debezium_catch_up(run: SourceRun, role: str) -> dict[str, Any]:
    dbz_dir = run.workdir / ("debezium" if role == "dbz" else f"debezium-{role}")
    dbz_dir.mkdir(exist_ok=True)
    props = run.bench.debezium_catchup_props(role, run.prefixes[role], dbz_dir)
    follow = debezium_follow(run, role, "catchup", props, dbz_dir)
    result = await catch_up(run.opts, follow, run.workload)
    debezium_figures(run, follow, result)
    return result


def debezium_figures(run: SourceRun, follow: Follow, result: dict[str, Any]) -> None:
    """What a Debezium result adds: its version and format, and the runner's own rate."""
    result["version"] = DEBEZIUM_VERSIONS[run.bench.family]
    result["format"] = (
        "JsonConverter, schemas.enable=false; KafkaProducer acks=all, idempotent, lz4"
    )
    with contextlib.suppress(Exception):
        # The runner's own count, from the first to the last record the engine handed it.
        assert follow.stdout_path is not None
        lines = follow.stdout_path.read_text().strip().splitlines()
        final = json.loads(lines[-1])
        if final["first_event_ms"] and final["last_event_ms"] > final["first_event_ms"]:
            result["in_engine_events_per_s"] = round(
                final["events"] / ((final["last_event_ms"] - final["first_event_ms"]) / 1000),
                1,
            )


# The transforms row: masking, hashing and truncation (``[shaping]``), Debezium's
# ExtractNewRecordState (``[flatten]``, deletes rewritten with their tombstone kept, so the
# topic holds as many row events and tombstones as plain cdcd's) and an outbox router over
# the stream. The backlog has no outbox rows: the router's cost is its pass over every
# message, not the routing of outbox rows.
TRANSFORMS = {
    "shaping": {
        "column.mask.with.8.chars": "bench.orders.note",
        "column.mask.hash.SHA-256.with.salt.CzQMA0cB5K": "bench.orders.status",
        "column.truncate.to.4.chars": "bench.orders.status",
    },
    "flatten": {
        "delete.tombstone.handling.mode": "rewrite-with-tombstone",
        "add.fields": "op,source.ts_ms",
    },
    "outbox": {"tables": ["bench.outbox"]},
}


async def cdcd_transforms(run: SourceRun) -> None:
    """cdcd's catch-up of the same backlog with the transforms above: their cost in ev/s
    against plain cdcd's catch-up of the same run."""
    if "transforms" in run.opts.skip or "cdcd" in run.opts.skip:
        return
    log(f"{run.name}: cdcd catch-up with transforms (outbox, flatten, masking) ...")
    try:
        source = run.bench.cdcd_catchup_source("tf")
        # bench.outbox captured (so routable), though no such table: orders' entry widened.
        source["tables"] = ["bench\\.(orders|outbox)"]
        follow, path = cdcd_follow(
            run, "transforms", "tf", source, name="cdcd-transforms", sections=TRANSFORMS
        )
        result = await catch_up(run.opts, follow, run.workload)
        result["config"] = str(path)
        result["transforms"] = "outbox, flatten (rewrite-with-tombstone), mask/hash/truncate"
        run.readers["cdcd_transforms"] = result
        run.note_error("cdcd_transforms", result)
    except Exception as exc:  # noqa: BLE001
        run.failed("cdcd_transforms", exc)


async def profile(run: SourceRun) -> None:
    """cdcd's catch-up again, under py-spy: the profile of the hot path (its rate is no
    measurement)."""
    if "profile" in run.opts.skip or "cdcd" in run.opts.skip:
        return
    log(f"{run.name}: cdcd under py-spy ...")
    try:
        profile_path = RESULTS / f"profile-{run.name}.speedscope.json"
        follow, _ = cdcd_follow(
            run,
            "profile",
            "prof",
            run.bench.cdcd_catchup_source("prof"),
            name="cdcd-profiled",
            profile_path=profile_path,
        )
        profile_path.unlink(missing_ok=True)
        result = await catch_up(run.opts, follow, run.workload)
        for _ in range(40):  # py-spy writes its file when cdcd has exited
            if profile_path.exists():
                break
            await asyncio.sleep(0.25)
        if profile_path.exists():
            _profile_top(run, profile_path, result)
        else:
            result.setdefault(
                "error",
                f"py-spy wrote no profile: {log_tail(run.workdir / 'cdcd-profile.py-spy.log')}",
            )
        run.readers["cdcd_profiled"] = result
        run.note_error("profile", result)
    except Exception as exc:  # noqa: BLE001
        run.failed("profile", exc)


def _profile_top(run: SourceRun, profile_path: Path, result: dict[str, Any]) -> None:
    """The profile's top functions, written next to it and the first ten in the JSON."""
    top = top_entries(profile_path)
    top_path = RESULTS / f"profile-{run.name}-top.txt"
    top_path.write_text(
        f"cdcd catch-up of {run.workload.events} events ({run.name}) under py-spy, "
        f"run {run.opts.run_id}\n\n{format_top(top)}"
    )
    result["profile"] = str(profile_path)
    result["top"] = str(top_path)
    result["top_self"] = top["self"][:10]


async def big_transaction(run: SourceRun) -> None:
    """One transaction of ``--big-tx`` rows, caught up by cdcd: its peak RSS."""
    opts = run.opts
    if not opts.big_tx or "bigtx" in opts.skip or "cdcd" in opts.skip:
        return
    big = load.BigTransaction(opts.big_tx)
    log(f"{run.name}: one transaction of {big.rows} rows, cdcd ({opts.latency_delivery}) ...")
    try:
        start = run.bench.latency_start("big")
        run.out["big_transaction_load"] = load.load_generated(run.bench.db, run.bench.dsn, big)
        source = run.bench.cdcd_latency_source("big", start)
        follow, _ = cdcd_follow(run, "bigtx", "big", source, opts.latency_delivery)
        result = await catch_up(opts, follow, big)
        result["workload"] = big.describe()
        run.out["big_transaction"] = result
        run.note_error("big_transaction", result)
    except Exception as exc:  # noqa: BLE001
        run.failed("big_transaction", exc)
