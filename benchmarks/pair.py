"""The takeover phase's processes and consumers: the instances of a cdcd pair (each as on
a host of its own), the steady load, and two consumers in the background: the pair's
topic (``read_committed``, every record as it was read) and the status topic (each
instance's role, from its heartbeats)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from backlog import SourceRun
from harness import HERE, REPO, log_tail
from readers import Follow, cdcd_argv, spawn


class Instance:
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
        """The task and the consumer ended (nothing to do if it never started)."""
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

    async def wait_for(self, instance: Instance, role: str, timeout: float) -> None:
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


class Load:
    """``load.py steady`` into the phase's table in its own process, until told to stop
    (SIGTERM: it ends after the transaction in flight and writes what it committed)."""

    def __init__(self, proc: asyncio.subprocess.Process, out_path: Path) -> None:
        self.proc, self.out_path = proc, out_path
        self.steady: dict[str, Any] | None = None

    @classmethod
    async def start(cls, run: SourceRun, table: str, first_id: int, out_path: Path) -> Load:
        """Rows of ids from ``first_id`` into ``table`` at ``--takeover-rate``; what was
        committed written to ``out_path`` at the end."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "load.py"), "steady", "--db", run.bench.db,
            "--dsn", run.bench.dsn, "--rate", str(run.opts.takeover_rate),
            "--seconds", "86400", "--tx-rows", str(run.opts.tx_rows),
            "--first-id", str(first_id), "--table", table.split(".")[1],
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
