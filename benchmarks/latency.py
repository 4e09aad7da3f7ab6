"""Phase 3 of a source: a reader's latency at a steady rate, commit to Kafka.

The reader starts from "now", a probe row shows it streams, then ``load.py steady``
commits at a fixed rate; each row's latency is the append time of its record minus the
generator's clock just before it sent the row's transaction (only rows after the
warm-up count). While the host steals CPU the window is repeated, up to ``--rounds``
windows, and the one with the least host steal counts (never chosen by its latency).
Read second by second, a window shows whether its slow seconds came with steal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import load
from backlog import SourceRun
from harness import HERE, PROBE_FIRST_ID, Options, log, log_tail
from kafka_tools import TopicReader, TopicStats, broker_log_dirs, transaction_markers, visible_at
from procstat import CpuMeter, ProcWatch
from readers import Follow, cdcd_follow, debezium_follow, spawn, stop

# A window with less host steal than this (cores) is not repeated.
QUIET_STEAL_CORES = 0.1

# -- the phases ---------------------------------------------------------------------------


async def cdcd_latency(run: SourceRun) -> None:
    """cdcd (``--latency-delivery``) at ``--steady-rate``, once the server has settled
    from the backlog."""
    opts = run.opts
    if "latency" in opts.skip or "cdcd" in opts.skip:
        return
    log(
        f"{run.name}: cdcd ({opts.latency_delivery}) latency at {opts.steady_rate:.0f} events/s "
        f"for {opts.steady_seconds:.0f} s ..."
    )
    try:
        run.out["settle"] = run.bench.settle()
        source = run.bench.cdcd_latency_source("lat", run.bench.latency_start("lat"))
        follow, _ = cdcd_follow(run, "latency", "lat", source, opts.latency_delivery)
        run.out["latency"] = result = await steady_latency(run, follow)
        run.note_error("latency", result)
    except Exception as exc:  # noqa: BLE001
        run.failed("latency", exc)


async def debezium_latency(run: SourceRun) -> None:
    """The same phase through Debezium (``--debezium-latency``)."""
    if not run.opts.debezium_latency or "debezium" in run.opts.skip:
        return
    log(f"{run.name}: Debezium latency ...")
    try:
        dbz_dir = run.workdir / "debezium-latency"
        dbz_dir.mkdir(exist_ok=True)
        start = run.bench.latency_start("dbzlat")
        props = run.bench.debezium_latency_props("dbzlat", start, run.prefixes["dbzlat"], dbz_dir)
        follow = debezium_follow(run, "dbzlat", "latency", props, dbz_dir)
        run.out["debezium_latency"] = result = await steady_latency(run, follow)
        run.note_error("debezium_latency", result)
    except Exception as exc:  # noqa: BLE001
        run.failed("debezium_latency", exc)


async def steady_latency(run: SourceRun, follow: Follow) -> dict[str, Any]:
    """Start the reader, wait until a probe row comes through, then commit at a steady
    rate and compare each row's commit (send) time with its record's append time.

    Up to ``opts.rounds`` windows, one after the other, while the host steals CPU
    (>= ``QUIET_STEAL_CORES`` over a window): the figures are those of the window with
    the least host steal (chosen by the interference, never by the latency), and every
    window is recorded under ``windows``."""
    opts = run.opts
    reader = TopicReader(opts.kafka, follow.topic, keep_ids=True)
    await reader.start()
    proc = spawn(follow)
    watch = ProcWatch(proc.pid)
    result: dict[str, Any] = {
        "rate": opts.steady_rate,
        "tx_rows": opts.tx_rows,
        "warmup_s": opts.warmup_seconds,
        "window_s": opts.steady_seconds,
        "windows": [],
        "log": str(follow.log_path),
        "clock": "commit = generator's clock just before sending the transaction; "
        "ack = broker LogAppendTime of the record",
    }
    try:
        await _wait_for_probe(run, follow, reader, proc, watch)
        windows: list[dict[str, Any]] = result["windows"]
        for index in range(opts.rounds):
            if index:
                log(
                    f"{run.name}: host steal {windows[-1]['host_steal_cores']:.2f} cores in "
                    f"that window: another one ({index + 1} of {opts.rounds}) ..."
                )
            window = await _steady_window(run, follow, reader, proc, watch, index)
            windows.append(window)
            if "error" in window or window["host_steal_cores"] < QUIET_STEAL_CORES:
                break
        chosen = _choose_window(windows)
        result.update(watch.snapshot())  # peak RSS over the whole run
        # The chosen window's figures, its CPU seconds included (not the whole run's).
        result.update({k: v for k, v in chosen.items() if k != "window"})
        result["chosen_window"] = chosen["window"]
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        result["error"] = str(exc)
    finally:
        result["exit_code"] = stop(proc)
        await reader.stop()
    return result


async def _wait_for_probe(
    run: SourceRun,
    follow: Follow,
    reader: TopicReader,
    proc: subprocess.Popen[bytes],
    watch: ProcWatch,
) -> None:
    """The reader is streaming once a probe row reaches Kafka (one more every 0.5 s)."""
    opts = run.opts
    executor = load._Executor(run.bench.db, run.bench.dsn)
    probe = PROBE_FIRST_ID + secrets.randbelow(10_000_000) * 100
    deadline = time.monotonic() + opts.startup_timeout
    try:
        while await reader.end_offset() == 0:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{follow.name} exited with code {proc.returncode}: {log_tail(follow.log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{follow.name} delivered no probe row in {opts.startup_timeout:.0f} s"
                )
            executor.transaction([load._insert(probe)])
            probe += 1
            watch.sample()
            await asyncio.sleep(0.5)
    finally:
        executor.close()


def _choose_window(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The window that counts: the one with the least host steal (an error loses), by
    the interference measured, never by the latency found."""
    return min(windows, key=lambda w: ("error" in w, w.get("host_steal_cores", 0.0)))


# -- one window ---------------------------------------------------------------------------


async def _steady_window(
    run: SourceRun,
    follow: Follow,
    reader: TopicReader,
    proc: subprocess.Popen[bytes],
    watch: ProcWatch,
    index: int,
) -> dict[str, Any]:
    """One steady-load window (after its warm-up): the latency of each of its rows, and
    what else the machine did meanwhile."""
    result: dict[str, Any] = {"window": index + 1}
    steady, steal_samples = await _generate(run, follow, watch, index, result)
    stats = await _wait_for_rows(run.opts, reader, proc, steady)
    assert stats.ids is not None
    commits = steady["commits"]
    # The latency of the rows committed after the warm-up.
    window_start = commits[0][2] + int(run.opts.warmup_seconds * 1e9) if commits else 0
    rows = _RowLatencies.of(commits, stats, window_start)
    result["by_second"] = _by_second(
        commits, stats.ids, window_start, steal_samples, reader_ts=stats.reader_ts_ns or {}
    )
    result["events"] = len(rows.latencies)
    result["missing"] = rows.missing
    if rows.latencies:
        result.update(_summary(rows.latencies))
        result["mean_ms"] = round(statistics.fmean(rows.latencies), 1)
    # Exactly-once: when a read_committed consumer could see each row (its transaction's
    # COMMIT marker appended), from the broker's log on this machine.
    with contextlib.suppress(Exception):
        await _visible(run.opts, follow.topic, commits, stats, window_start, result)
    if rows.to_reader and len(rows.to_reader) == len(rows.latencies):
        result["stages"] = rows.stages()
    if rows.from_source and run.bench.db == "postgres":
        # PostgreSQL stamps commits in microseconds (the binlog: in whole seconds).
        result["from_source_ts"] = {
            "what": "source.ts_us (the server's commit timestamp) to LogAppendTime",
            **_summary(rows.from_source),
        }
    if rows.missing:
        result["error"] = f"{rows.missing} rows of the window never reached Kafka"
    return result


async def _generate(
    run: SourceRun, follow: Follow, watch: ProcWatch, index: int, result: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[int, float]]]:
    """The steady load of one window, the generator in its own process: what it sent
    (``load.py steady``'s output) and the host's steal sampled meanwhile; the reader's
    and the machine's CPU go into ``result``."""
    opts = run.opts
    commits_path = run.workdir / f"steady-{follow.name}-{index + 1}.json"
    first_id = load.STEADY_FIRST_ID + secrets.randbelow(1000) * 1_000_000
    watch.sample()
    cpu_before = dict(watch.cpu)
    meter = CpuMeter()
    gen = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "load.py"), "steady", "--db", run.bench.db,
        "--dsn", run.bench.dsn, "--rate", str(opts.steady_rate),
        "--seconds", str(opts.warmup_seconds + opts.steady_seconds),
        "--tx-rows", str(opts.tx_rows), "--first-id", str(first_id),
        "--out", str(commits_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    gen_started = time.monotonic()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    waiter = asyncio.ensure_future(gen.communicate())
    steal_samples = [(time.time_ns(), CpuMeter.steal_s())]  # (clock, steal s so far)
    while not waiter.done():
        await asyncio.wait({waiter}, timeout=0.25)
        watch.sample()
        steal_samples.append((time.time_ns(), CpuMeter.steal_s()))
    _, err = waiter.result()
    gen_elapsed = time.monotonic() - gen_started
    if gen.returncode != 0:
        raise RuntimeError(f"steady load failed: {err.decode(errors='replace')[-400:]}")
    watch.sample()
    cpu_each = {pid: cpu - cpu_before.get(pid, 0.0) for pid, cpu in watch.cpu.items()}
    result["machine_busy_cores"] = meter.busy_cores()
    result["host_steal_cores"] = meter.steal_cores()
    # Who else used the CPU meanwhile (the broker, the server, the load generator, this
    # harness): on 2 cores, the tail follows the machine's load.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the generator, reaped
    generator_cpu_s = (children.ru_utime + children.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    result["others_cpu_s"] = sorted(
        [*meter.others(set(watch.cpu), top=5), ("load generator", round(generator_cpu_s, 1))],
        key=lambda item: -item[1],
    )
    steady: dict[str, Any] = json.loads(commits_path.read_text())
    result["achieved_rate"] = steady["achieved_rate"]
    result["late_transactions"] = steady["late_transactions"]
    result["cpu_s"] = round(sum(cpu_each.values()), 2)
    result["cpu_s_each"] = [round(c, 2) for c in cpu_each.values()]
    result["reader_cpu_percent"] = round(result["cpu_s"] / gen_elapsed * 100, 1)
    return steady, steal_samples


async def _wait_for_rows(
    opts: Options, reader: TopicReader, proc: subprocess.Popen[bytes], steady: dict[str, Any]
) -> TopicStats:
    """The topic once every row sent arrived (or the stall timeout passed, or the reader
    exited)."""
    rows = {c[0] + j for c in steady["commits"] for j in range(c[1])}
    deadline = time.monotonic() + opts.stall_timeout
    while True:
        stats = await reader.catch_up()
        assert stats.ids is not None
        if rows <= stats.ids.keys() or time.monotonic() > deadline:
            return stats
        if proc.poll() is not None:
            return stats
        await asyncio.sleep(0.5)


async def _visible(
    opts: Options,
    topic: str,
    commits: list[list[int]],
    stats: TopicStats,
    window_start: int,
    result: dict[str, Any],
) -> None:
    """Commit to the COMMIT marker of each row's Kafka transaction (``visible``), when
    the topic has markers (exactly-once)."""
    markers = transaction_markers(await broker_log_dirs(opts.kafka), topic)
    offsets = stats.offsets or {}
    if not markers:
        return
    visible: list[float] = []
    unseen = 0
    for row, sent_ns in _window_rows(commits, window_start):
        offset = offsets.get(row)
        at = visible_at(markers, offset) if offset is not None else None
        if at is None:
            unseen += 1
        else:
            visible.append(at - sent_ns / 1e6)
    visible.sort()
    if visible:
        result["visible"] = {
            "what": "commit -> the COMMIT marker of the row's Kafka transaction "
            "appended (read_committed consumers see the row from then on)",
            **_summary(visible),
            "rows_without_marker": unseen,
        }
        if unseen:
            result["error"] = f"{unseen} rows have no COMMIT marker after them"


@dataclass
class _RowLatencies:
    """A window's rows, in ms: commit to append (``latencies``), the server's commit
    stamp to append (``from_source``), and the two halves split at the envelope's
    ``ts_ns`` (when the reader had the change): commit -> reader (the server's
    replication, the reader's decoding), reader -> Kafka append (encoding, the Kafka
    transaction). Each list sorted."""

    latencies: list[float] = field(default_factory=list)
    from_source: list[float] = field(default_factory=list)
    to_reader: list[float] = field(default_factory=list)
    to_kafka: list[float] = field(default_factory=list)
    missing: int = 0

    @classmethod
    def of(cls, commits: list[list[int]], stats: TopicStats, window_start: int) -> _RowLatencies:
        rows = cls()
        ids = stats.ids or {}
        source_ts = stats.source_ts_us or {}
        reader_ts = stats.reader_ts_ns or {}
        for row, sent_ns in _window_rows(commits, window_start):
            ts = ids.get(row)
            if ts is None:
                rows.missing += 1
                continue
            rows.latencies.append(ts - sent_ns / 1e6)
            if row in source_ts:
                rows.from_source.append(ts - source_ts[row] / 1000)
            seen = reader_ts.get(row)
            if seen is not None:
                rows.to_reader.append((seen - sent_ns) / 1e6)
                rows.to_kafka.append(ts - seen / 1e6)
        for values in (rows.latencies, rows.from_source, rows.to_reader, rows.to_kafka):
            values.sort()
        return rows

    def stages(self) -> dict[str, Any]:
        return {
            "what": "commit -> the reader's envelope ts_ns -> Kafka append (ms clocks: "
            "the reader's is exact, the broker's in whole ms)",
            "to_reader_p50_ms": round(_percentile(self.to_reader, 0.50), 1),
            "to_reader_p99_ms": round(_percentile(self.to_reader, 0.99), 1),
            "to_kafka_p50_ms": round(_percentile(self.to_kafka, 0.50), 1),
            "to_kafka_p99_ms": round(_percentile(self.to_kafka, 0.99), 1),
        }


# -- the arithmetic -------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[k]


def _summary(sorted_values: list[float]) -> dict[str, float]:
    """p50, p99 and max of non-empty sorted latencies, in ms to 0.1."""
    return {
        "p50_ms": round(_percentile(sorted_values, 0.50), 1),
        "p99_ms": round(_percentile(sorted_values, 0.99), 1),
        "max_ms": round(sorted_values[-1], 1),
    }


def _window_rows(commits: list[list[int]], window_start: int) -> Iterator[tuple[int, int]]:
    """(row id, the generator's clock just before sending its transaction, ns) of each row
    sent from ``window_start`` on (the warm-up's rows left out)."""
    for first, count, sent_ns, _done_ns in commits:
        if sent_ns >= window_start:
            for row in range(first, first + count):
                yield row, sent_ns


def _steal_at(steal_samples: list[tuple[int, float]], window_start: int, second: int) -> float:
    """Host steal (cores) in one second of the window, from the samples around it."""
    lo = window_start + second * 1_000_000_000
    hi = lo + 1_000_000_000
    inside = [(t, v) for t, v in steal_samples if lo - 250_000_000 <= t <= hi + 250_000_000]
    if len(inside) < 2:
        return 0.0
    (t0, v0), (t1, v1) = inside[0], inside[-1]
    return (v1 - v0) / ((t1 - t0) / 1e9) if t1 > t0 else 0.0


def _by_second(
    commits: list[list[int]],
    ids: Mapping[int, float],
    window_start: int,
    steal_samples: list[tuple[int, float]],
    target_ms: float = 50.0,
    reader_ts: dict[int, int] | None = None,
) -> dict[str, Any]:
    """The window second by second: how many seconds had a p99 above ``target_ms``, the
    worst ones, and the host steal in them and in the others (a latency spike that comes
    with steal is the hypervisor's, not the reader's)."""
    per_second: dict[int, list[float]] = {}
    to_reader: dict[int, list[float]] = {}  # commit -> the reader had it, when known
    reader_ts = reader_ts or {}
    for row, sent_ns in _window_rows(commits, window_start):
        ts = ids.get(row)
        if ts is not None:
            second = (sent_ns - window_start) // 1_000_000_000
            per_second.setdefault(second, []).append(ts - sent_ns / 1e6)
            seen = reader_ts.get(row)
            if seen is not None:
                to_reader.setdefault(second, []).append((seen - sent_ns) / 1e6)
    seconds = []
    for second, values in sorted(per_second.items()):
        values.sort()
        steal = _steal_at(steal_samples, window_start, second)
        seconds.append((second, _percentile(values, 0.99), steal))
    slow = [s for s in seconds if s[1] > target_ms]
    other = [s for s in seconds if s[1] <= target_ms]
    return {
        "seconds": len(seconds),
        "seconds_over_target": len(slow),
        "target_ms": target_ms,
        "steal_cores_in_slow_seconds": round(statistics.fmean(s[2] for s in slow), 2)
        if slow
        else None,
        "steal_cores_in_other_seconds": round(statistics.fmean(s[2] for s in other), 2)
        if other
        else None,
        "worst": [
            {
                "second": s,
                "p99_ms": round(p, 1),
                "to_reader_p99_ms": round(_percentile(sorted(to_reader[s]), 0.99), 1)
                if to_reader.get(s)
                else None,
                "steal_cores": round(st, 2),
            }
            for s, p, st in sorted(seconds, key=lambda x: -x[1])[:5]
        ],
    }
