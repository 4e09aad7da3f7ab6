"""The takeover phase of a source (the last one): an active/standby pair of cdcd under a
steady load, its active instance killed (SIGKILL) or stopped (SIGTERM) again and again,
the stopped one restarted each time as the new standby.

A table of its own (``bench.takeover_orders``), written by ``load.py steady`` at
``--takeover-rate`` rows/s. Two ``cdcd run`` with one configuration (``[ha] lease_ms``,
``heartbeat_ms``: ``--lease-ms``, ``--heartbeat-ms``, the defaults users get), each as on
a host of its own (``unshare --uts``: its own host name, so the election's same-host
shortcut does not apply and the lease decides, as between two machines). A session per
delivery: exactly-once with ``--takeovers`` SIGKILLs then ``--handovers`` SIGTERMs, and
at-least-once with the SIGKILLs only (``--quick``: one).

A takeover's time: from the signal to the moment a ``read_committed`` consumer (from the
start of the topic, in the background) read the first record appended (the broker's
LogAppendTime) after the new leader logged ``leadership acquired``: the old one is dead
(SIGKILL) or has drained and said ``stopped`` by then (SIGTERM), and with exactly-once
anything a fenced producer wrote stays invisible. From the same consumer: the rows the
generator committed, duplicates (a row read twice) and missing ones (never read); with
exactly-once both must be 0 (else an error of the phase), with at-least-once duplicates
are the repeats a takeover may cost (missing ones are an error). Each duplicate counts
for the last takeover before it was appended, each missing row for the first takeover
after it was committed (a takeover's moment: its ``leadership acquired``), so that the
counts are split by kind too."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backlog import SourceRun
from harness import Options, log, log_tail
from kafka_tools import broker_log_dirs, create_topics, transaction_markers, visible_at
from latency import _percentile
from pair import Instance, Load, Seen, Status, Tail
from readers import cdcd_config, cdcd_fields, stop, write_toml

from cdcd.config import HaConfig

TABLE = "takeover_orders"
FIRST_ID = 3_000_000_000  # apart from the other phases' ids
# A session per delivery (a cdcd name, slot and topic of its own), by its reader role.
ROLES = {"exactly-once": "tkeo", "at-least-once": "tkalo"}
SIGNALS = {"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM}
DEBEZIUM_NOTE = (
    "Debezium has no comparable standby: Kafka Connect's distributed mode rebalances a "
    "failed worker's tasks to the others (not run here)"
)


def plan(opts: Options) -> dict[str, list[tuple[str, int]]]:
    """The sessions to run: the kinds of takeover of each delivery, and how many."""
    sessions = {
        "exactly-once": [("sigkill", opts.takeovers), ("sigterm", opts.handovers)],
        # --quick: one, to keep the smoke run short.
        "at-least-once": [("sigkill", min(1, opts.takeovers) if opts.quick else opts.takeovers)],
    }
    return {
        delivery: kinds
        for delivery, kinds in ((d, [(k, n) for k, n in ks if n > 0]) for d, ks in sessions.items())
        if kinds
    }


async def takeovers(run: SourceRun) -> None:
    """The phase: the table, a session per delivery, the table dropped at the end."""
    opts = run.opts
    sessions = plan(opts)
    if "takeover" in opts.skip or "cdcd" in opts.skip or not sessions:
        return
    table = f"bench.{TABLE}"
    out: dict[str, Any] = {
        "table": table,
        "lease_ms": opts.lease_ms,
        "heartbeat_ms": opts.heartbeat_ms,
        "rate": opts.takeover_rate,
        "tx_rows": opts.tx_rows,
        "debezium": DEBEZIUM_NOTE,
        "sessions": {},
    }
    run.out["takeover"] = out
    try:
        _check_can_run()
        run.bench.takeover_prepare(table)
        for delivery, kinds in sessions.items():
            what = ", ".join(f"{n} {kind}" for kind, n in kinds)
            log(f"{run.name}: takeovers of a cdcd pair ({delivery}): {what} ...")
            try:
                result = await _session(run, delivery, kinds, table)
                out["sessions"][delivery] = result
                run.note_error(f"takeover {delivery}", result)
            except Exception as exc:  # noqa: BLE001
                run.failed(f"takeover {delivery}", exc)
    except Exception as exc:  # noqa: BLE001
        run.failed("takeover", exc)
    finally:
        with contextlib.suppress(Exception):
            run.bench.takeover_cleanup(table)


def _check_can_run() -> None:
    if "ha" not in cdcd_fields()["top"]:
        raise RuntimeError("this cdcd has no [ha] in its configuration: no standby pair")
    if shutil.which("unshare") is None or os.geteuid() != 0:
        raise RuntimeError(
            "the takeover phase needs root and unshare(1) (util-linux): each instance runs "
            "with a host name of its own"
        )


# -- a session ------------------------------------------------------------------------------


async def _session(
    run: SourceRun, delivery: str, kinds: list[tuple[str, int]], table: str
) -> dict[str, Any]:
    """A pair under the steady load through the takeovers of ``kinds``; its figures."""
    opts = run.opts
    role = ROLES[delivery]
    run.prefixes[role] = f"{opts.topic_root}{run.name}-{role}"
    run.topics[role] = topic = f"{run.prefixes[role]}.{table}"
    await create_topics(opts.kafka, [topic])
    source = run.bench.cdcd_takeover_source(role, table)
    name = f"bench-{run.name}-{opts.run_id}-{role}"
    config = cdcd_config(opts, name, source, run.prefixes[role], delivery)
    config["ha"] = {"lease_ms": opts.lease_ms, "heartbeat_ms": opts.heartbeat_ms}
    path = run.workdir / f"cdcd-{role}.toml"
    write_toml(path, config)
    pair = _Pair(
        [Instance(host, path, f"cdcd-{role}") for host in ("host-a", "host-b")],
        Tail(opts.kafka, topic),
        Status(opts.kafka, HaConfig().status_topic, name),
        opts.startup_timeout,
    )
    result: dict[str, Any] = {"delivery": delivery, "config": str(path), "takeovers": []}
    await pair.tail.start()
    try:
        try:
            await pair.start()
            first_id = FIRST_ID + 100_000_000 * list(ROLES.values()).index(role)
            out_path = run.workdir / f"steady-{role}.json"
            pair.load = await Load.start(run, table, first_id, out_path)
            # The load streams through the leader.
            await pair.tail.first_after(0, pair.timeout, check=pair.load.check)
            await _run_takeovers(run, pair, kinds, result["takeovers"])
        except Exception as exc:  # noqa: BLE001 - recorded; what was read is counted
            result["error"] = str(exc)
        if pair.load is not None:
            steady = await pair.load.finish()
            result["load"] = {k: steady[k] for k in ("rows", "achieved_rate", "late_transactions")}
            await pair.tail.until_rows(_rows(steady["commits"]), opts.stall_timeout)
            result.update(counts(pair.tail.records, steady["commits"], result["takeovers"]))
    finally:
        result["exit_codes"] = await pair.stop()
        if any(result["exit_codes"]):
            result["warning"] = f"exit codes {result['exit_codes']} when the pair was stopped"
    with contextlib.suppress(Exception):
        _commit_markers(await broker_log_dirs(opts.kafka), topic, result["takeovers"])
    result["kinds"] = by_kind(result)
    _verdict(result)
    return result


@dataclass
class _Pair:
    """A session's pair (``instances[0]`` the active one, ``[1]`` the standby), its
    consumers and its load."""

    instances: list[Instance]
    tail: Tail
    status: Status
    timeout: float
    load: Load | None = None

    async def start(self) -> None:
        """The first instance streaming, then the second standing by."""
        first, second = self.instances
        first.start()
        await first.wait_for('"streaming"', self.timeout)
        await self.status.start()  # from now: the topic exists, the second is still to come
        second.start()
        await self.status.wait_for(second, "standby", self.timeout)

    async def stop(self) -> list[int]:
        """Everything ended; the instances' exit codes (the standby's first: the active
        one's stop would hand over to it)."""
        if self.load is not None:
            await self.load.kill()
        codes = [stop(i.proc) for i in reversed(self.instances) if i.proc is not None]
        await self.tail.stop()
        await self.status.stop()
        return codes


async def _run_takeovers(
    run: SourceRun, pair: _Pair, kinds: list[tuple[str, int]], takeovers: list[dict[str, Any]]
) -> None:
    """Each takeover of ``kinds`` after a pause of 1-2 s; the pair's roles swapped."""
    rng = random.Random()
    for kind, count in kinds:
        for _ in range(count):
            await asyncio.sleep(rng.uniform(1.0, 2.0))
            one = await _takeover(pair, kind)
            takeovers.append(one)
            log(f"{run.name}: {kind}: taken over in {one['takeover_s']:.2f} s")
            pair.instances.reverse()
    await asyncio.sleep(1)


async def _takeover(pair: _Pair, kind: str) -> dict[str, Any]:
    """One takeover: the active one signalled and gone, the first record of the new
    leader read, the old one restarted and standing by."""
    active, standby = pair.instances
    assert active.proc is not None and pair.load is not None
    pair.load.check()
    since = len(pair.tail.records)
    signalled = time.time()
    active.proc.send_signal(SIGNALS[kind])
    try:
        code = await asyncio.to_thread(active.proc.wait, pair.timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"cdcd on {active.host} still runs {pair.timeout:.0f} s after {kind}"
        ) from None
    exited = time.time()
    if kind == "sigterm" and code != 0:
        raise RuntimeError(
            f"cdcd on {active.host} exited with code {code} after SIGTERM: "
            f"{log_tail(active.log_path)}"
        )
    # What is appended from then on is the new leader's: the old one is dead (SIGKILL)
    # or has drained and said so (SIGTERM), and a fenced producer commits nothing.
    acquired = max(signalled, await standby.wait_for("leadership acquired", pair.timeout))
    first = await pair.tail.first_after(acquired, pair.timeout, since, pair.load.check)
    active.start()
    await pair.status.wait_for(active, "standby", pair.timeout)
    return {
        "kind": kind,
        "signalled_at": round(signalled, 3),
        "exited_s": round(exited - signalled, 3),
        "acquired_s": round(acquired - signalled, 3),
        "takeover_s": round(first.read_at - signalled, 3),
        "appended_s": round(first.ts_ms / 1000 - signalled, 3),
        "first_offset": first.offset,
        "leader": standby.host,
    }


def _commit_markers(log_dirs: list[Path], topic: str, takeovers: list[dict[str, Any]]) -> None:
    """Exactly-once: when the COMMIT marker after each takeover's first record was
    appended (the broker's clock), a cross-check of the consumer's read time."""
    markers = transaction_markers(log_dirs, topic)
    for one in takeovers:
        at = visible_at(markers, one["first_offset"]) if markers else None
        if at is not None:
            one["commit_marker_s"] = round(at / 1000 - one["signalled_at"], 3)


# -- the arithmetic -------------------------------------------------------------------------


def _rows(commits: list[list[int]]) -> set[int]:
    return {first + j for first, count, *_ in commits for j in range(count)}


def counts(
    records: list[Seen], commits: list[list[int]], takeovers: list[dict[str, Any]]
) -> dict[str, Any]:
    """Rows committed, read, duplicated and missing, and each duplicate and missing row
    put to a takeover: a duplicate to the last one before its append, a missing row to
    the first one after its commit, a takeover's moment its new leader's ``leadership
    acquired`` (``by_takeover``: index -> counts; -1: none)."""
    exits_ms = [(t["signalled_at"] + t["acquired_s"]) * 1000 for t in takeovers]
    committed: dict[int, int] = {}  # row -> the generator's send time, ms
    for first, count, sent_ns, *_ in commits:
        for row in range(first, first + count):
            committed[row] = sent_ns // 1_000_000
    by_takeover: dict[int, Counter[str]] = {}
    seen: Counter[int] = Counter()
    for record in records:
        seen[record.row] += 1
        if seen[record.row] > 1:
            index = bisect.bisect_right(exits_ms, record.ts_ms) - 1
            by_takeover.setdefault(index, Counter())["duplicates"] += 1
    missing = [row for row in committed if row not in seen]
    for row in missing:
        index = bisect.bisect_left(exits_ms, committed[row])
        index = index if index < len(takeovers) else -1
        by_takeover.setdefault(index, Counter())["missing"] += 1
    return {
        "changes": len(committed),
        "read": len(seen),
        "duplicates": sum(n - 1 for n in seen.values()),
        "missing": len(missing),
        "unexpected": sum(1 for row in seen if row not in committed),
        "by_takeover": {str(i): dict(c) for i, c in sorted(by_takeover.items())},
    }


def by_kind(result: dict[str, Any]) -> dict[str, Any]:
    """Per kind of takeover: how many, the takeover time's median, p90 and max, and the
    duplicates and missing rows put to them."""
    takeovers = result["takeovers"]
    split = result.get("by_takeover") or {}
    kinds: dict[str, Any] = {}
    for index, one in enumerate(takeovers):
        kind = kinds.setdefault(one["kind"], {"times_s": [], "duplicates": 0, "missing": 0})
        kind["times_s"].append(one["takeover_s"])
        for key in ("duplicates", "missing"):
            kind[key] += (split.get(str(index)) or {}).get(key, 0)
    for kind in kinds.values():
        times = sorted(kind["times_s"])
        kind.update(
            takeovers=len(times),
            median_s=round(statistics.median(times), 3),
            p90_s=round(_percentile(times, 0.90), 3),
            max_s=times[-1],
        )
    return kinds


def _verdict(result: dict[str, Any]) -> None:
    """With exactly-once a duplicate or a missing row is an error of the phase; with
    at-least-once only a missing one (repeats are reported)."""
    if "error" in result or "changes" not in result:
        return
    wrong = [f"{result['missing']} missing"] if result["missing"] else []
    if result["delivery"] == "exactly-once" and result["duplicates"]:
        wrong.append(f"{result['duplicates']} duplicates")
    if result["unexpected"]:
        wrong.append(f"{result['unexpected']} rows never committed")
    if wrong:
        result["error"] = (
            f"{result['delivery']}: {', '.join(wrong)} of {result['changes']} changes "
            "read by a read_committed consumer"
        )
