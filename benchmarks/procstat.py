"""What a reader costs to run: peak resident memory and CPU seconds, read from /proc.

A reader may be one process (cdcd, the JVM) or a tree (a worker process, py-spy's
child): the figures cover the process and all its descendants. Peak RSS is the kernel's
own high-water mark (``VmHWM``) of each process, summed over the tree (for one process
it is exact; for several an upper bound), next to the largest sampled sum of current
RSS. CPU seconds are user + system time (``utime + stime``) of the tree, plus what
children that already exited left in their parent's ``cutime + cstime``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _cpu_s(pid: int) -> float | None:
    """utime + stime + cutime + cstime of ``pid`` in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    return sum(int(v) for v in fields[11:15]) / _TICK


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its living descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


@dataclass
class ProcWatch:
    """Samples one process tree; ``snapshot()`` gives the figures so far."""

    pid: int
    exclude: set[int] = field(default_factory=set)  # e.g. py-spy itself
    peak_sampled_kb: int = 0
    hwm_kb: dict[int, int] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        total = 0
        for p in tree(self.pid):
            if p in self.exclude:
                continue
            rss = _status_kb(p, "VmRSS:")
            hwm = _status_kb(p, "VmHWM:")
            cpu = _cpu_s(p)
            if rss is not None:
                total += rss
            if hwm is not None:
                self.hwm_kb[p] = max(self.hwm_kb.get(p, 0), hwm)
            if cpu is not None:
                self.cpu[p] = max(self.cpu.get(p, 0.0), cpu)
        self.peak_sampled_kb = max(self.peak_sampled_kb, total)

    def snapshot(self) -> dict[str, Any]:
        self.sample()
        return {
            "peak_rss_mb": round(sum(self.hwm_kb.values()) / 1024, 1),
            "peak_rss_sampled_mb": round(self.peak_sampled_kb / 1024, 1),
            "cpu_s": round(sum(self.cpu.values()), 2),
            # Each process's share (the root first): which one bounds a two-process reader.
            "cpu_s_each": [
                round(self.cpu[p], 2) for p in sorted(self.cpu, key=lambda p: p != self.pid)
            ],
            "processes": len(self.hwm_kb),
        }


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdout: Any = None,
    stderr: Any = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run a short-lived command to its end: wall time, peak RSS and CPU seconds.

    Peak RSS is the largest ``VmHWM`` sampled every 2 ms while it runs (not wait4()'s
    ``ru_maxrss``, which keeps the forking Python process's size across exec); CPU
    seconds come from wait4()."""
    import time

    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr)
    deadline = None if timeout is None else started + timeout
    hwm_kb = 0
    while True:
        hwm = _status_kb(proc.pid, "VmHWM:")
        if hwm is not None:
            hwm_kb = max(hwm_kb, hwm)
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            return {
                "error": f"timed out after {timeout:.0f} s",
                "wall_s": round(time.monotonic() - started, 3),
            }
        time.sleep(0.002)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": proc.returncode,
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(hwm_kb / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }
