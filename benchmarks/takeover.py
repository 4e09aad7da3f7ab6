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
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from backlog import SourceRun
from harness import HERE, REPO, Options, log, log_tail
from kafka_tools import broker_log_dirs, create_topics, transaction_markers, visible_at
from latency import _percentile
from readers import Follow, cdcd_argv, cdcd_config, cdcd_fields, spawn, stop, write_toml

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


# -- the pair -------------------------------------------------------------------------------


class _Instance:
    """One of the pair: ``cdcd run`` as on host ``host``; each start logs to a file of
    its own (``<stem>-<host>-<n>.log``)."""

    def __init__(self, host: str, config_path: Path, stem: str) -> None:
        self.host, self.config_path, self.stem = host, config_path, stem
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = config_path

    def start(self) -> None:
        self.starts += 1
        self.log_path = self.config_path.with_name(f"{self.stem}-{self.host}-{self.starts}.log")
        prefix = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.host]
        argv = [*prefix, *cdcd_argv(self.config_path)]
        self.proc = spawn(Follow(f"cdcd on {self.host}", argv, "", self.log_path, cwd=REPO))

    async def wait_for(self, needle: str, timeout: float) -> float:
        """Until this start's log has ``needle``: when that line was logged (its
        ``timestamp``, the wall clock); an error when cdcd exits first."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                for line in self.log_path.read_text(errors="replace").splitlines():
                    if needle in line:
                        return _logged_at(line)
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"cdcd on {self.host} exited with code {self.proc.returncode}: "
                    f"{log_tail(self.log_path)}"
                )
            await asyncio.sleep(0.05)
        raise RuntimeError(
            f"no {needle} in the log of cdcd on {self.host} after {timeout:.0f} s: "
            f"{log_tail(self.log_path)}"
        )


def _logged_at(line: str) -> float:
    """The wall clock of a JSON log line (its ISO ``timestamp``; now, if it has none)."""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        stamp = orjson.loads(line)["timestamp"].replace("Z", "+00:00")
        return datetime.fromisoformat(stamp).timestamp()
    return time.time()


@dataclass(frozen=True)
class Seen:
    """A record as the consumer read it: its row id, offset, append time (ms) and the
    wall clock when it was read (s)."""

    row: int
    offset: int
    ts_ms: int
    read_at: float


def _no_check() -> None:
    pass


class _Follower:
    """A consumer of one single-partition topic in the background (a task of the
    harness's loop), from its start or from its end; ``_take`` gets each record."""

    def __init__(self, bootstrap: str, topic: str, *, from_start: bool, **settings: Any) -> None:
        self.partition = TopicPartition(topic, 0)
        self.from_start = from_start
        self.error: BaseException | None = None
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="cdcd-bench-takeover",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,  # a record's read time is at most this late
            **settings,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign([self.partition])
        if self.from_start:
            await self._consumer.seek_to_beginning(self.partition)
        else:
            await self._consumer.seek_to_end(self.partition)
            await self._consumer.position(self.partition)  # the end now, not when first read
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                batches = await self._consumer.getmany(self.partition, timeout_ms=100)
                now = time.time()
                for record in batches.get(self.partition, ()):
                    self._take(record, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported by the waits
            self.error = exc

    def _take(self, record: Any, now: float) -> None:
        raise NotImplementedError

    def _check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the consumer of {self.partition.topic} failed: {self.error}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


class Status(_Follower):
    """The pair's heartbeats on the status topic (``[ha] status_topic``) from now on:
    each instance's last role, by its process id."""

    def __init__(self, bootstrap: str, topic: str, name: str) -> None:
        super().__init__(bootstrap, topic, from_start=False)
        self.name = name
        self.roles: dict[int, str] = {}

    def _take(self, record: Any, now: float) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            beat = orjson.loads(record.value)
            if beat["name"] == self.name:
                self.roles[int(beat["pid"])] = beat["role"]

    async def wait_for(self, instance: _Instance, role: str, timeout: float) -> None:
        """Until ``instance`` says ``role`` in its heartbeats; an error when it exits."""
        assert instance.proc is not None
        deadline = time.monotonic() + timeout
        while self.roles.get(instance.proc.pid) != role:
            self._check()
            if instance.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"cdcd on {instance.host} did not say {role} in {timeout:.0f} s "
                    f"(exit code {instance.proc.poll()}): {log_tail(instance.log_path)}"
                )
            await asyncio.sleep(0.05)


class Tail(_Follower):
    """A ``read_committed`` consumer of the pair's topic from its start: each record as
    it was read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic, from_start=True, isolation_level="read_committed")
        self.records: list[Seen] = []

    def _take(self, record: Any, now: float) -> None:
        if record.key is not None:
            row = int(orjson.loads(record.key)["id"])
            self.records.append(Seen(row, record.offset, record.timestamp, now))

    async def first_after(
        self, moment: float, timeout: float, since: int = 0, check: Callable[[], None] = _no_check
    ) -> Seen:
        """The first record (from index ``since``) appended after ``moment`` (wall clock);
        ``check`` raises when waiting is pointless (the load failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check()
            check()
            for seen in self.records[since:]:
                if seen.ts_ms > moment * 1000:
                    return seen
            since = len(self.records)
            await asyncio.sleep(0.01)
        raise RuntimeError(f"no record appended after {moment:.3f} within {timeout:.0f} s")

    async def until_rows(self, rows: set[int], stall_timeout: float) -> None:
        """Until every row of ``rows`` was read, or nothing new came for
        ``stall_timeout``; then two seconds more, for a late duplicate."""
        count, progress = -1, time.monotonic()
        while self.error is None and time.monotonic() - progress < stall_timeout:
            if rows <= {seen.row for seen in self.records}:
                break
            if len(self.records) != count:
                count, progress = len(self.records), time.monotonic()
            await asyncio.sleep(0.25)
        await asyncio.sleep(2)


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
        [_Instance(host, path, f"cdcd-{role}") for host in ("host-a", "host-b")],
        Tail(opts.kafka, topic),
        Status(opts.kafka, HaConfig().status_topic, name),
        opts.startup_timeout,
    )
    result: dict[str, Any] = {"delivery": delivery, "config": str(path), "takeovers": []}
    await pair.tail.start()
    await pair.status.start()
    try:
        try:
            await pair.start()
            pair.load = await _Load.start(run, table, role)
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
    with contextlib.suppress(Exception):
        _commit_markers(await broker_log_dirs(opts.kafka), topic, result["takeovers"])
    result["kinds"] = by_kind(result)
    _verdict(result)
    return result


@dataclass
class _Pair:
    """A session's pair (``instances[0]`` the active one, ``[1]`` the standby), its
    consumers and its load."""

    instances: list[_Instance]
    tail: Tail
    status: Status
    timeout: float
    load: _Load | None = None

    async def start(self) -> None:
        """The first instance streaming, then the second standing by."""
        first, second = self.instances
        first.start()
        await first.wait_for('"streaming"', self.timeout)
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


class _Load:
    """``load.py steady`` into the phase's table in its own process, until told to stop
    (SIGTERM: it ends after the transaction in flight and writes what it committed)."""

    def __init__(self, proc: asyncio.subprocess.Process, out_path: Path) -> None:
        self.proc, self.out_path = proc, out_path
        self.steady: dict[str, Any] | None = None

    @classmethod
    async def start(cls, run: SourceRun, table: str, role: str) -> _Load:
        out_path = run.workdir / f"steady-{role}.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "load.py"), "steady", "--db", run.bench.db,
            "--dsn", run.bench.dsn, "--rate", str(run.opts.takeover_rate),
            "--seconds", "86400", "--tx-rows", str(run.opts.tx_rows),
            "--first-id", str(FIRST_ID + 100_000_000 * list(ROLES.values()).index(role)),
            "--table", table.split(".")[1],
            "--out", str(out_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc, out_path)

    def check(self) -> None:
        if self.proc.returncode is not None:
            raise RuntimeError(f"the steady load exited with code {self.proc.returncode}")

    async def finish(self) -> dict[str, Any]:
        """Stop it (once); what it committed."""
        if self.steady is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            _, err = await self.proc.communicate()
            if self.proc.returncode != 0:
                raise RuntimeError(f"steady load failed: {err.decode(errors='replace')[-400:]}")
            self.steady = orjson.loads(self.out_path.read_bytes())
        return self.steady

    async def kill(self) -> None:
        """Ended at once, if it still runs (a session that failed)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


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
