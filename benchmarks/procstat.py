"""What a reader costs to run: peak resident memory and CPU seconds, read from /proc.

A reader may be one process (cdcd, the JVM) or a tree (a worker process, py-spy's
child): the figures cover the process and all its descendants. Peak RSS is the kernel's
own high-water mark (``VmHWM``) of each process, summed over the processes alive at the
same sample, the largest such sum (for one process it is exact; for several an upper
bound: each one's peak counted as if they all peaked together; a process that has ended
holds nothing, so a snapshot's scan process and the stream's reader that follows it are
not added up); next to it the sum over every process the tree ever had (a looser bound,
``peak_rss_hwm_sum_mb``) and the largest sampled sum of current RSS. CPU seconds are user + system time (``utime + stime``) of the tree, plus what
children that already exited left in their parent's ``cutime + cstime`` (a child seen
while it ran counts once: by its parent's figure once it is reaped).

``CpuMeter`` reads the whole machine meanwhile (/proc/stat): how busy it was, what the
hypervisor stole, which other processes used the CPU; ``machine()`` describes it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
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
    peak_living_hwm_kb: int = 0  # the largest sum of VmHWM over processes alive together
    hwm_kb: dict[int, int] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        total = living_hwm = 0
        living = tree(self.pid)
        # A descendant gone from the tree was reaped: its CPU time is in its parent's
        # cutime + cstime now (a scan process ends before the daemon), not to count twice.
        for gone in set(self.cpu) - set(living) - {self.pid}:
            del self.cpu[gone]
        for p in living:
            if p in self.exclude:
                continue
            rss = _status_kb(p, "VmRSS:")
            hwm = _status_kb(p, "VmHWM:")
            cpu = _cpu_s(p)
            if rss is not None:
                total += rss
            if hwm is not None:
                self.hwm_kb[p] = max(self.hwm_kb.get(p, 0), hwm)
                living_hwm += self.hwm_kb[p]
            if cpu is not None:
                self.cpu[p] = max(self.cpu.get(p, 0.0), cpu)
        self.peak_sampled_kb = max(self.peak_sampled_kb, total)
        self.peak_living_hwm_kb = max(self.peak_living_hwm_kb, living_hwm)

    def snapshot(self) -> dict[str, Any]:
        self.sample()
        return {
            "peak_rss_mb": round(self.peak_living_hwm_kb / 1024, 1),
            "peak_rss_hwm_sum_mb": round(sum(self.hwm_kb.values()) / 1024, 1),
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


class CpuMeter:
    """How busy the whole machine was (in cores) between two readings of /proc/stat, and
    which processes other than the reader used it (a noisy neighbour, a server still
    purging its backlog)."""

    def __init__(self) -> None:
        self.start = self._read()
        self.start_by_process = self._by_process()

    @staticmethod
    def _by_process() -> dict[int, tuple[str, float]]:
        out = {}
        tick = os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            out[int(stat.parent.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
        return out

    def others(self, reader: set[int], top: int = 3) -> list[tuple[str, float]]:
        """The processes outside ``reader`` that used the most CPU seconds since the
        start (by name, at least 0.5 s)."""
        used: dict[str, float] = {}
        for pid, (name, cpu) in self._by_process().items():
            if pid in reader:
                continue
            if pid == os.getpid():
                name = "harness"  # its Kafka consumer, when it follows a topic meanwhile
            before = self.start_by_process.get(pid, (name, 0.0))[1]
            used[name] = used.get(name, 0.0) + cpu - before
        ranked = sorted(used.items(), key=lambda item: -item[1])
        return [(name, round(cpu, 1)) for name, cpu in ranked[:top] if cpu >= 0.5]

    @staticmethod
    def _read() -> tuple[float, float, float]:
        """Now, CPU seconds the machine ran anything, and those the hypervisor took for
        others (steal: on a shared host, the reason one run is slower than the next)."""
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        idle, steal = values[3] + values[4], values[7]
        tick = os.sysconf("SC_CLK_TCK")
        return time.monotonic(), (sum(values[:7]) - idle) / tick, steal / tick

    @classmethod
    def steal_s(cls) -> float:
        """CPU seconds the hypervisor took for others since boot (for a series of samples)."""
        return cls._read()[2]

    def busy_cores(self) -> float:
        t1, b1, _ = self._read()
        t0, b0, _ = self.start
        return round((b1 - b0) / (t1 - t0), 2) if t1 > t0 else 0.0

    def steal_cores(self) -> float:
        t1, _, s1 = self._read()
        t0, _, s0 = self.start
        return round((s1 - s0) / (t1 - t0), 2) if t1 > t0 else 0.0


def machine() -> dict[str, Any]:
    """The machine the run is on, its load average at the start."""
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        mem = int(fh.readline().split()[1]) // 1024
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cpus": os.cpu_count(),
        "memory_mb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": java[0] if java else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
