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
import hashlib
import json
import logging
import os
import platform
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402
from kafka_tools import (  # noqa: E402
    TopicReader,
    broker_log_dirs,
    create_topics,
    delete_topics,
    transaction_markers,
    visible_at,
)
from procstat import ProcWatch, run_measured  # noqa: E402
from profile_top import format_top, top_entries  # noqa: E402

RESULTS = HERE / "results"
CACHE = Path(os.environ.get("CDCD_BENCH_CACHE", Path.home() / ".cache" / "cdcd" / "bench"))
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PROBE_FIRST_ID = 2_000_000_000

# Debezium: the newest release of each connector family on Maven Central (the MariaDB
# connector's newest is older than the PostgreSQL one's; one version per classpath).
DEBEZIUM_VERSIONS = {"postgres": "3.6.3.Final", "binlog": "3.5.0.Final"}
# The same producer settings as cdcd's defaults (conf/cdcd.example.toml), so the two
# differ in their pipelines, not in how they batch for Kafka.
PRODUCER = {
    "acks": "all",
    "enable.idempotence": "true",
    "compression.type": "lz4",
    "linger.ms": "5",
    "batch.size": "1048576",
    "max.request.size": "4194304",
}
TARGETS = {
    "postgres": {"cdcd_vs_debezium": 1.5},
    "mysql": {"cdcd_vs_debezium": 1.0},
    "mysql8": {"cdcd_vs_debezium": 1.0},
}
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 150.0
TARGET_MIN_N = 500_000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- options ---------------------------------------------------------------------------


@dataclass
class Options:
    n: int
    quick: bool
    sources: list[str]
    skip: set[str]
    steady_rate: float
    steady_seconds: float
    warmup_seconds: float
    tx_rows: int
    delivery: str
    latency_delivery: str
    reader: str | None
    rounds: int
    big_tx: int
    startup_timeout: float
    stall_timeout: float
    debezium_latency: bool
    keep_topics: bool
    strict: bool
    out: Path
    kafka: str
    pg_dsn: str
    mysql_url: str
    mysql8_url: str | None
    run_id: str = field(
        default_factory=lambda: time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
    )

    @property
    def work(self) -> Path:
        return CACHE / "runs" / self.run_id

    @property
    def topic_root(self) -> str:
        return f"bench-{self.run_id}-"


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


def parse_options(argv: list[str] | None = None) -> Options:
    env = {**_testenv(), **os.environ}
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small N and short latency window (CI)")
    p.add_argument("-n", type=int, help="backlog inserts (default 500000; --quick: 20000)")
    p.add_argument("--sources", default="postgres,mysql", help="postgres,mysql[,mysql8]")
    p.add_argument(
        "--skip",
        default=None,
        help="comma list of: c, pyrepl, cdcd, debezium, profile, latency, bigtx (default: none)",
    )
    p.add_argument("--steady-rate", type=float, default=5000.0, help="events/s (default 5000)")
    p.add_argument("--steady-seconds", type=float, help="measured window (default 30; --quick: 6)")
    p.add_argument(
        "--warmup-seconds", type=float, help="steady load before the window (default 5; --quick: 2)"
    )
    p.add_argument("--tx-rows", type=int, default=10, help="rows per steady transaction")
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
    p.add_argument("--keep-topics", action="store_true", help="keep the run's Kafka topics")
    p.add_argument("--strict", action="store_true", help="exit 2 when a reader failed")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    a = p.parse_args(argv)
    n = a.n or (20_000 if a.quick else 500_000)
    skip_default = ""
    sources = [s.strip() for s in a.sources.split(",") if s.strip()]
    for s in sources:
        if s not in ("postgres", "mysql", "mysql8"):
            p.error(f"unknown source {s!r}")
    if "CDCD_TEST_KAFKA_BOOTSTRAP" not in env or "CDCD_TEST_PG_DSN" not in env:
        p.error("no test servers: run scripts/testenv up (or export CDCD_TEST_* )")
    return Options(
        n=n,
        quick=a.quick,
        sources=sources,
        skip={
            s.strip()
            for s in (a.skip if a.skip is not None else skip_default).split(",")
            if s.strip()
        },
        steady_rate=a.steady_rate,
        steady_seconds=a.steady_seconds or (6.0 if a.quick else 30.0),
        warmup_seconds=a.warmup_seconds
        if a.warmup_seconds is not None
        else (2.0 if a.quick else 5.0),
        tx_rows=a.tx_rows,
        delivery=a.delivery,
        latency_delivery=a.latency_delivery,
        reader=a.reader,
        rounds=max(1, a.rounds if a.rounds is not None else (1 if a.quick else 2)),
        big_tx=a.big_tx if a.big_tx is not None else (0 if a.quick else 1_000_000),
        startup_timeout=90.0 if a.quick else 240.0,
        stall_timeout=a.stall_timeout or (30.0 if a.quick else 300.0),
        debezium_latency=a.debezium_latency,
        keep_topics=a.keep_topics,
        strict=a.strict,
        out=a.out,
        kafka=env["CDCD_TEST_KAFKA_BOOTSTRAP"],
        pg_dsn=env["CDCD_TEST_PG_DSN"],
        mysql_url=env.get("CDCD_TEST_MYSQL_URL", ""),
        mysql8_url=env.get("CDCD_TEST_MYSQL8_URL"),
    )


# -- the machine ------------------------------------------------------------------------


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

    def busy_cores(self) -> float:
        t1, b1, _ = self._read()
        t0, b0, _ = self.start
        return round((b1 - b0) / (t1 - t0), 2) if t1 > t0 else 0.0

    def steal_cores(self) -> float:
        t1, _, s1 = self._read()
        t0, _, s0 = self.start
        return round((s1 - s0) / (t1 - t0), 2) if t1 > t0 else 0.0


def machine() -> dict[str, Any]:
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


# -- processes ----------------------------------------------------------------------------


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip()[:400] for line in text[-lines:])


def _stop(proc: subprocess.Popen[Any], timeout: float = 30.0) -> int:
    """SIGTERM (a reader drains and exits), then SIGKILL if it does not end in time."""
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@dataclass
class Follow:
    """A reader running as a process and writing to one Kafka topic."""

    name: str
    argv: list[str]
    topic: str
    log_path: Path
    env: dict[str, str] | None = None
    stdout_path: Path | None = None
    profile_path: Path | None = None  # record it with py-spy while it catches up


def _spawn(follow: Follow) -> subprocess.Popen[bytes]:
    """Start the reader, its standard error into its log (the child keeps the files)."""
    with (
        open(follow.stdout_path or os.devnull, "wb") as stdout,
        open(follow.log_path, "wb") as stderr,
    ):
        return subprocess.Popen(follow.argv, stdout=stdout, stderr=stderr, env=follow.env)


def py_spy_path() -> Path:
    found = VENV_BIN / "py-spy"
    if found.exists():
        return found
    other = shutil.which("py-spy")
    if not other:
        raise RuntimeError("py-spy is not installed (pip install -r benchmarks/requirements.txt)")
    return Path(other)


async def _attach_profiler(
    proc: subprocess.Popen[bytes], follow: Follow
) -> subprocess.Popen[bytes]:
    """py-spy on the reader from the moment it streams (its log says so), not its start-up:
    the profile is the catch-up's."""
    assert follow.profile_path is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError):
            text = follow.log_path.read_text(errors="replace")
            if '"streaming"' in text or '"started"' in text:
                break
        await asyncio.sleep(0.02)
    argv = [
        str(py_spy_path()), "record", "--pid", str(proc.pid), "--format", "speedscope",
        "--rate", "100", "--subprocesses", "-o", str(follow.profile_path),
    ]  # fmt: skip
    with open(follow.log_path.with_suffix(".py-spy.log"), "wb") as err:
        return subprocess.Popen(argv, stdout=err, stderr=err)


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


async def catch_up(opts: Options, follow: Follow, workload: load.Workload) -> dict[str, Any]:
    """Run a Kafka reader until the whole backlog is in its topic; its figures."""
    expected_events = workload.events
    expected_tombstones = workload.deletes
    reader = TopicReader(opts.kafka, follow.topic)
    await reader.start()
    meter = CpuMeter()
    spawned = time.time()
    proc = _spawn(follow)
    result: dict[str, Any] = {"log": str(follow.log_path)}
    profiler: subprocess.Popen[bytes] | None = None
    try:
        if follow.profile_path is not None:
            profiler = await _attach_profiler(proc, follow)
        watch = ProcWatch(proc.pid)
        last_end, last_progress = -1, time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            watch.sample()
            if proc.poll() is not None:
                result["error"] = (
                    f"{follow.name} exited with code {proc.returncode}: {_tail(follow.log_path)}"
                )
                break
            end = await reader.end_offset()
            now = time.monotonic()
            if end != last_end:
                last_end, last_progress = end, now
            if end >= expected_events + expected_tombstones:
                stats = await reader.catch_up()
                if stats.values >= expected_events and stats.tombstones >= expected_tombstones:
                    break
            limit = opts.startup_timeout if end <= 0 else opts.stall_timeout
            if now - last_progress > limit:
                what = "wrote nothing" if end <= 0 else f"stalled at offset {end}"
                result["error"] = (
                    f"{follow.name} {what} for {limit:.0f} s (expected {expected_events} events); "
                    f"log: {_tail(follow.log_path, 3)}"
                )
                break
        result.update(watch.snapshot())
        result["machine_busy_cores"] = meter.busy_cores()
        result["host_steal_cores"] = meter.steal_cores()
        result["others_cpu_s"] = meter.others({os.getpid(), *watch.cpu})
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(60)
            if profiler.poll() is None:
                profiler.kill()
                profiler.wait()
        result["exit_code"] = _stop(proc)
        stats = await reader.catch_up()
        await reader.stop()
    result.update(stats.describe())
    first, last = stats.first_ts_ms, stats.last_ts_ms
    if first is not None and last is not None and last > first:
        span = (last - first) / 1000
        result["first_to_last_s"] = round(span, 3)
        result["events_per_s"] = round(stats.values / span, 1)
        result["wall_s"] = round(last / 1000 - spawned, 3)
        result["wall_events_per_s"] = round(stats.values / (last / 1000 - spawned), 1)
        result["startup_s"] = round(first / 1000 - spawned, 3)
    if stats.timestamp_type != 1 and stats.values:
        result["warning"] = "topic not stamped with LogAppendTime: producer timestamps used"
    if "error" not in result and stats.values != expected_events:
        result["warning"] = f"{stats.values} row events, expected {expected_events}"
    if result.get("cpu_s") and stats.values:
        result["cpu_us_per_event"] = round(result["cpu_s"] / stats.values * 1e6, 1)
    return result


# -- cdcd ------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_toml(path: Path, config: dict[str, Any]) -> None:
    lines = [f"{k} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, values in config.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
    path.write_text("\n".join(lines) + "\n")


def _cdcd_fields() -> dict[str, set[str]]:
    """Which optional keys this cdcd's configuration knows (it changes while cdcd grows)."""
    try:
        from cdcd.config import Config, KafkaSinkConfig, MysqlSourceConfig, PostgresSourceConfig

        return {
            "top": set(Config.model_fields),
            "mysql": set(MysqlSourceConfig.model_fields),
            "postgres": set(PostgresSourceConfig.model_fields),
            "sink": set(KafkaSinkConfig.model_fields),
        }
    except Exception:  # noqa: BLE001 - a broken cdcd is reported when it runs
        return {"top": set(), "mysql": set(), "postgres": set(), "sink": set()}


def cdcd_config(
    opts: Options,
    name: str,
    source: dict[str, Any],
    topic_prefix: str,
    delivery: str | None = None,
) -> dict[str, Any]:
    known = _cdcd_fields()
    config: dict[str, Any] = {"name": name}
    delivery = delivery or opts.delivery
    if delivery != "default" and "delivery" in known["top"]:
        config["delivery"] = delivery
    kind = source["kind"]
    config["source"] = {k: v for k, v in source.items() if k in known[kind] or k in ("kind", "dsn")}
    if opts.reader is not None and "reader" in known[kind]:
        inline = "thread" if kind == "mysql" else "inline"
        config["source"]["reader"] = inline if opts.reader == "inline" else "process"
    config["sink"] = {
        "kind": "kafka",
        "bootstrap_servers": opts.kafka,
        "topic_prefix": topic_prefix,
        "tombstones_on_delete": True,
    }
    config["log"] = {"level": "info", "format": "json"}
    return config


def cdcd_argv(config_path: Path) -> list[str]:
    return [str(VENV_BIN / "cdcd"), "run", "--config", str(config_path)]


# -- Debezium ----------------------------------------------------------------------------


def debezium_build(family: str) -> Path:
    """Build (once) the Debezium runner of a connector family; the cached directory."""
    version = DEBEZIUM_VERSIONS[family]
    digest = hashlib.sha256()
    for path in sorted((HERE / "debezium").rglob("*")):
        if path.is_file() and "target" not in path.parts:
            digest.update(path.read_bytes())
    out = CACHE / f"debezium-{family}-{version}-{digest.hexdigest()[:12]}"
    if (out / "dbz-bench.jar").exists() and (out / "lib").is_dir():
        return out
    log(f"building the Debezium {version} runner ({family}) into {out} ...")
    run = subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(HERE / "debezium" / "pom.xml"),
            "-P",
            family,
            f"-Ddebezium.version={version}",
            f"-Dbench.build.dir={out}",
            "package",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if run.returncode != 0 or not (out / "dbz-bench.jar").exists():
        errors = [line for line in run.stdout.splitlines() if "ERROR" in line][:3]
        raise RuntimeError(f"mvn package failed: {' '.join(errors) or run.stderr[-400:]}")
    return out


def _properties(path: Path, props: dict[str, str]) -> None:
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n")

    path.write_text("".join(f"{k}={esc(str(v))}\n" for k, v in props.items()))


def debezium_argv(build: Path, props_path: Path) -> list[str]:
    return [
        "java",
        "-Xmx2g",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-cp",
        f"{build / 'dbz-bench.jar'}:{build / 'lib'}/*",
        "io.cdcd.bench.DebeziumBench",
        str(props_path),
    ]


# -- sources -----------------------------------------------------------------------------


def _url_parts(url: str) -> dict[str, Any]:
    u = urlsplit(url)
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port,
        "user": unquote(u.username or ""),
        "password": unquote(u.password or ""),
        "database": unquote(u.path.strip("/")),
    }


class PostgresBench:
    """PostgreSQL: database ``bench``, publication ``bench_pub``, one slot per reader."""

    name = "postgres"
    family = "postgres"
    connector = "io.debezium.connector.postgresql.PostgresConnector"

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        u = urlsplit(opts.pg_dsn)
        self.admin_dsn = opts.pg_dsn
        self.dsn = urlunsplit(u._replace(path="/bench"))
        self.parts = _url_parts(self.dsn)
        self.publication = "bench_pub"
        self.slots: list[str] = []
        self.start: dict[str, Any] = {}

    def _conn(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True)

    def prepare(self, roles: list[str]) -> dict[str, Any]:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = 'bench'").fetchone():
                admin.execute("CREATE DATABASE bench")
        load.create_table("postgres", self.dsn)
        with self._conn() as conn:
            # Inactive slots of an earlier, interrupted run of this harness retain WAL.
            for (slot,) in conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'bench\\_%' "
                "AND database = 'bench' AND NOT active"
            ).fetchall():
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute(f"DROP PUBLICATION IF EXISTS {self.publication}")
            conn.execute(f"CREATE PUBLICATION {self.publication} FOR TABLE bench.orders")
        self.start = {"slots": {role: self.create_slot(role) for role in roles}}
        return self.start

    def create_slot(self, role: str) -> str:
        slot = f"bench_{role}_{self.opts.run_id}"
        with self._conn() as conn:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        self.slots.append(slot)
        return slot

    def end_position(self) -> dict[str, Any]:
        with self._conn() as conn:
            return {"lsn": conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]}

    def settle(self) -> dict[str, Any]:
        """After the backlog: its dead rows vacuumed and a checkpoint written now, so that
        autovacuum and a checkpoint do not land inside the latency window."""
        started = time.monotonic()
        with self._conn() as conn:
            conn.execute("VACUUM (ANALYZE) bench.orders")
            conn.execute("CHECKPOINT")
        return {
            "settle_s": round(time.monotonic() - started, 3),
            "did": "VACUUM ANALYZE, CHECKPOINT",
        }

    def cdcd_source(self, role: str, slot: str) -> dict[str, Any]:
        return {
            "kind": "postgres",
            "dsn": self.dsn,
            "tables": ["bench.orders"],
            "slot_name": slot,
            "publication_name": self.publication,
            "create_slot": False,
            "create_publication": False,
        }

    def cdcd_catchup_source(self, role: str) -> dict[str, Any]:
        return self.cdcd_source(role, self.start["slots"][role])

    def debezium_props(self, role: str, slot: str, prefix: str, workdir: Path) -> dict[str, str]:
        p = self.parts
        return {
            "name": f"bench-dbz-{self.name}",
            "connector.class": self.connector,
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(workdir / "offsets.dat"),
            "offset.flush.interval.ms": "10000",
            "database.hostname": p["host"],
            "database.port": str(p["port"] or 5432),
            "database.user": p["user"],
            "database.password": p["password"],
            "database.dbname": "bench",
            "topic.prefix": prefix,
            "plugin.name": "pgoutput",
            "slot.name": slot,
            "publication.name": self.publication,
            "publication.autocreate.mode": "disabled",
            "snapshot.mode": "no_data",
            "table.include.list": "bench.orders",
        }

    def debezium_catchup_props(self, role: str, prefix: str, workdir: Path) -> dict[str, str]:
        return self.debezium_props(role, self.start["slots"][role], prefix, workdir)

    def c_limit(self, end: dict[str, Any], workdir: Path) -> dict[str, Any]:
        p = self.parts
        argv = [
            str(PG_BIN / "pg_recvlogical"),
            "-d",
            f"host={p['host']} port={p['port'] or 5432} user={p['user']} dbname=bench",
            "--slot",
            self.start["slots"]["c"],
            "--start",
            "--endpos",
            end["lsn"],
            "-o",
            "proto_version=1",
            "-o",
            f"publication_names={self.publication}",
            "-f",
            "/dev/null",
            "--no-loop",
        ]
        env = {**os.environ, "PGPASSWORD": p["password"]}
        with open(workdir / "pg_recvlogical.log", "wb") as err:
            result = run_measured(argv, env=env, stderr=err, timeout=1800)
        result["reader"] = "pg_recvlogical (pgoutput proto 1, binary to /dev/null)"
        if result.get("returncode"):
            result["error"] = (
                f"pg_recvlogical exited {result['returncode']}: "
                f"{_tail(workdir / 'pg_recvlogical.log')}"
            )
        return result

    def latency_start(self, role: str) -> dict[str, Any]:
        return {"slot": self.create_slot(role)}

    def cdcd_latency_source(self, role: str, start: dict[str, Any]) -> dict[str, Any]:
        return self.cdcd_source(role, start["slot"])

    def debezium_latency_props(
        self, role: str, start: dict[str, Any], prefix: str, workdir: Path
    ) -> dict[str, str]:
        return self.debezium_props(role, start["slot"], prefix, workdir)

    def cleanup(self) -> None:
        with self._conn() as conn:
            for slot in self.slots:
                for _ in range(20):
                    row = conn.execute(
                        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                    ).fetchone()
                    if row is None:
                        break
                    if row[0] is None:
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                        break
                    time.sleep(0.5)
                else:
                    log(f"slot {slot} still in use: not dropped")
        self.slots.clear()


class MysqlBench:
    """MariaDB (``mysql``) or MySQL 8 (``mysql8``): database ``bench``, binlog positions."""

    family = "binlog"

    def __init__(self, opts: Options, name: str) -> None:
        self.opts = opts
        self.name = name
        self.url = opts.mysql_url if name == "mysql" else (opts.mysql8_url or "")
        self.parts = _url_parts(self.url)
        self.start: dict[str, Any] = {}
        self.flavor = "mariadb" if name == "mysql" else "mysql"
        self.connector = (
            "io.debezium.connector.mariadb.MariaDbConnector"
            if self.flavor == "mariadb"
            else "io.debezium.connector.mysql.MySqlConnector"
        )

    def position(self) -> dict[str, Any]:
        conn = load.mysql_connect(self.url)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW MASTER STATUS")
                row = cur.fetchone()
                gtid = None
                if self.flavor == "mariadb":
                    cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
                    gtid = cur.fetchone()[0]
                elif len(row) > 4:
                    gtid = row[4]
            return {"file": row[0], "pos": int(row[1]), "gtid": gtid}
        finally:
            conn.close()

    def prepare(self, roles: list[str]) -> dict[str, Any]:
        if not self.url:
            raise RuntimeError(f"no server for {self.name}: CDCD_TEST_MYSQL8_URL is not set")
        conn = load.mysql_connect(self.url)
        try:
            load.mysql_script(conn, load.MYSQL_DROP)
            # A fresh binlog file: a reader starting from a GTID does not make the server
            # scan the long file the other tests filled to find it.
            load.mysql_script(conn, "FLUSH BINARY LOGS")
            # Every reader starts before CREATE TABLE: the DDL is in the stream, so Debezium
            # learns the table from it (its schema history starts empty).
            self.start = self.position()
            load.mysql_script(conn, load.MYSQL_CREATE)
        finally:
            conn.close()
        return self.start

    def end_position(self) -> dict[str, Any]:
        return self.position()

    def cdcd_source(self, role: str, start: dict[str, Any]) -> dict[str, Any]:
        # The GTID position when the server has one (a transaction boundary, whatever the
        # file), else file:pos.
        initial = start["gtid"] or f"{start['file']}:{start['pos']}"
        return {
            "kind": "mysql",
            "dsn": self.url,
            "tables": ["bench.orders"],
            "initial_position": initial,
            "schema_changes": False,
        }

    def cdcd_catchup_source(self, role: str) -> dict[str, Any]:
        return self.cdcd_source(role, self.start)

    def debezium_props(
        self, role: str, start: dict[str, Any], prefix: str, workdir: Path
    ) -> dict[str, str]:
        p = self.parts
        name = f"bench-dbz-{self.name}"
        props = {
            "name": name,
            "connector.class": self.connector,
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(workdir / "offsets.dat"),
            "offset.flush.interval.ms": "10000",
            "database.hostname": p["host"],
            "database.port": str(p["port"] or 3306),
            "database.user": p["user"],
            "database.password": p["password"],
            "database.server.id": str(5400 + secrets.randbelow(500)),
            "topic.prefix": prefix,
            "database.include.list": "bench",
            "table.include.list": "bench.orders",
            "include.schema.changes": "false",
            "snapshot.mode": "configuration_based",
            "snapshot.mode.configuration.based.snapshot.schema": "false",
            "snapshot.mode.configuration.based.snapshot.data": "false",
            "snapshot.mode.configuration.based.start.stream": "true",
            # An offset without a schema history: start from the offset with an empty
            # history, which the CREATE TABLE in the stream then fills.
            "snapshot.mode.configuration.based.snapshot.on.schema.error": "true",
            "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
            "schema.history.internal.file.filename": str(workdir / "schema-history.dat"),
            # The start position, as the engine's file offset store holds it.
            "bench.seed.offset.key": json.dumps([name, {"server": prefix}], separators=(",", ":")),
            "bench.seed.offset.value": json.dumps(
                {
                    "file": start["file"],
                    "pos": start["pos"],
                    **({"gtids": start["gtid"]} if start["gtid"] else {}),
                },
                separators=(",", ":"),
            ),
        }
        return props

    def debezium_catchup_props(self, role: str, prefix: str, workdir: Path) -> dict[str, str]:
        return self.debezium_props(role, self.start, prefix, workdir)

    def c_limit(self, end: dict[str, Any], workdir: Path) -> dict[str, Any]:
        p = self.parts
        argv = [
            "mariadb-binlog",
            "--read-from-remote-server",
            f"--host={p['host']}",
            f"--port={p['port'] or 3306}",
            f"--user={p['user']}",
            "-v",
            f"--start-position={self.start['pos']}",
            "--to-last-log",
            self.start["file"],
        ]
        env = {**os.environ, "MYSQL_PWD": p["password"]}
        with open(workdir / "mariadb-binlog.log", "wb") as err:
            result = run_measured(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=err, timeout=1800
            )
        result["reader"] = "mariadb-binlog --read-from-remote-server -v (decoded, to /dev/null)"
        if result.get("returncode"):
            result["error"] = (
                f"mariadb-binlog exited {result['returncode']}: "
                f"{_tail(workdir / 'mariadb-binlog.log')}"
            )
        return result

    def pyrepl(self, workdir: Path) -> dict[str, Any]:
        argv = [
            sys.executable,
            str(HERE / "pyrepl_reader.py"),
            "--dsn",
            self.url,
            "--file",
            self.start["file"],
            "--pos",
            str(self.start["pos"]),
        ]
        out_path = workdir / "pyrepl.out"
        with open(out_path, "wb") as out, open(workdir / "pyrepl.log", "wb") as err:
            result = run_measured(argv, stdout=out, stderr=err, timeout=3600)
        if result.get("returncode"):
            result["error"] = (
                f"pyrepl_reader exited {result['returncode']}: {_tail(workdir / 'pyrepl.log')}"
            )
            return result
        with contextlib.suppress(Exception):
            result.update(json.loads(out_path.read_text().strip().splitlines()[-1]))
        return result

    def latency_start(self, role: str) -> dict[str, Any]:
        return self.position()

    def cdcd_latency_source(self, role: str, start: dict[str, Any]) -> dict[str, Any]:
        return self.cdcd_source(role, start)

    def debezium_latency_props(
        self, role: str, start: dict[str, Any], prefix: str, workdir: Path
    ) -> dict[str, str]:
        # Streaming from "now": no offset to seed; the table's schema comes from a schema
        # snapshot (no CREATE TABLE ahead in the stream this time).
        props = self.debezium_props(role, start, prefix, workdir)
        props.pop("bench.seed.offset.key")
        props.pop("bench.seed.offset.value")
        props["snapshot.mode.configuration.based.snapshot.schema"] = "true"
        # (without an offset, on.schema.error=true makes the connector refuse to start)
        props["snapshot.mode.configuration.based.snapshot.on.schema.error"] = "false"
        return props

    def settle(self, timeout: float = 60.0) -> dict[str, Any]:
        """After the backlog: until InnoDB has purged its old row versions (history list
        under 1,000) and written its dirty pages (PostgreSQL's CHECKPOINT), so that
        neither lands inside the latency window."""
        started = time.monotonic()
        conn = load.mysql_connect(self.url)
        history = dirty = None
        try:
            with conn.cursor() as cur:
                while time.monotonic() - started < timeout:
                    cur.execute(
                        "SELECT COUNT FROM information_schema.INNODB_METRICS "
                        "WHERE NAME = 'trx_rseg_history_len'"
                    )
                    row = cur.fetchone()
                    history = int(row[0]) if row else 0
                    if history < 1000:
                        break
                    time.sleep(1)
                cur.execute("FLUSH TABLES")
                cur.execute("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
                (pct,) = cur.fetchone()
                cur.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
                try:
                    while time.monotonic() - started < timeout:
                        cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
                        row = cur.fetchone()
                        dirty = int(row[1]) if row else 0
                        if dirty < 100:
                            break
                        time.sleep(0.5)
                finally:
                    cur.execute(f"SET GLOBAL innodb_max_dirty_pages_pct = {float(pct)}")
        finally:
            conn.close()
        return {
            "settle_s": round(time.monotonic() - started, 3),
            "history_len": history,
            "dirty_pages": dirty,
        }

    def cleanup(self) -> None:
        pass


Bench = PostgresBench | MysqlBench


# A window with less host steal than this (cores) is not repeated.
QUIET_STEAL_CORES = 0.1

# -- latency -----------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[k]


def _window_rows(commits: list[list[int]], window_start: int) -> Iterator[tuple[int, int]]:
    """(row id, the generator's clock just before sending its transaction, ns) of each row
    sent from ``window_start`` on (the warm-up's rows left out)."""
    for first, count, sent_ns, _done_ns in commits:
        if sent_ns >= window_start:
            for row in range(first, first + count):
                yield row, sent_ns


def _by_second(
    commits: list[list[int]],
    ids: dict[int, float],
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

    def steal_at(second: int) -> float:
        lo = window_start + second * 1_000_000_000
        hi = lo + 1_000_000_000
        inside = [(t, v) for t, v in steal_samples if lo - 250_000_000 <= t <= hi + 250_000_000]
        if len(inside) < 2:
            return 0.0
        (t0, v0), (t1, v1) = inside[0], inside[-1]
        return (v1 - v0) / ((t1 - t0) / 1e9) if t1 > t0 else 0.0

    seconds = []
    for second, values in sorted(per_second.items()):
        values.sort()
        seconds.append((second, _percentile(values, 0.99), steal_at(second)))
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


async def steady_latency(
    opts: Options, bench: Bench, follow: Follow, workdir: Path
) -> dict[str, Any]:
    """Start the reader, wait until a probe row comes through, then commit at a steady
    rate and compare each row's commit (send) time with its record's append time.

    Up to ``opts.rounds`` windows, one after the other, while the host steals CPU
    (>= ``QUIET_STEAL_CORES`` over a window): the figures are those of the window with
    the least host steal (chosen by the interference, never by the latency), and every
    window is recorded under ``windows``."""
    db = "postgres" if bench.name == "postgres" else "mysql"
    dsn = bench.dsn if isinstance(bench, PostgresBench) else bench.url
    reader = TopicReader(opts.kafka, follow.topic, keep_ids=True)
    await reader.start()
    proc = _spawn(follow)
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
        # 1. The reader is streaming once a probe row reaches Kafka.
        executor = load._Executor(db, dsn)
        probe = PROBE_FIRST_ID + secrets.randbelow(10_000_000) * 100
        deadline = time.monotonic() + opts.startup_timeout
        try:
            while await reader.end_offset() == 0:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{follow.name} exited with code {proc.returncode}: "
                        f"{_tail(follow.log_path)}"
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
        # 2. Steady load windows, the generator in its own process.
        windows: list[dict[str, Any]] = result["windows"]
        for index in range(opts.rounds):
            if index:
                log(
                    f"{bench.name}: host steal {windows[-1]['host_steal_cores']:.2f} cores in "
                    f"that window: another one ({index + 1} of {opts.rounds}) ..."
                )
            window = await _steady_window(
                opts, db, dsn, reader, proc, watch, follow, workdir, index
            )
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
        result["exit_code"] = _stop(proc)
        await reader.stop()
    return result


def _choose_window(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The window that counts: the one with the least host steal (an error loses), by
    the interference measured, never by the latency found."""
    return min(windows, key=lambda w: ("error" in w, w.get("host_steal_cores", 0.0)))


async def _steady_window(
    opts: Options,
    db: str,
    dsn: str,
    reader: TopicReader,
    proc: subprocess.Popen[bytes],
    watch: ProcWatch,
    follow: Follow,
    workdir: Path,
    index: int,
) -> dict[str, Any]:
    """One steady-load window (after its warm-up): the latency of each of its rows, and
    what else the machine did meanwhile."""
    result: dict[str, Any] = {"window": index + 1}
    commits_path = workdir / f"steady-{follow.name}-{index + 1}.json"
    seconds = opts.warmup_seconds + opts.steady_seconds
    first_id = load.STEADY_FIRST_ID + secrets.randbelow(1000) * 1_000_000
    watch.sample()
    cpu_before = dict(watch.cpu)
    meter = CpuMeter()
    gen = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "load.py"),
        "steady",
        "--db",
        db,
        "--dsn",
        dsn,
        "--rate",
        str(opts.steady_rate),
        "--seconds",
        str(seconds),
        "--tx-rows",
        str(opts.tx_rows),
        "--first-id",
        str(first_id),
        "--out",
        str(commits_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    gen_started = time.monotonic()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    waiter = asyncio.ensure_future(gen.communicate())
    steal_samples = [(time.time_ns(), CpuMeter._read()[2])]  # (clock, steal s so far)
    while not waiter.done():
        await asyncio.wait({waiter}, timeout=0.25)
        watch.sample()
        steal_samples.append((time.time_ns(), CpuMeter._read()[2]))
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
    steady = json.loads(commits_path.read_text())
    result["achieved_rate"] = steady["achieved_rate"]
    result["late_transactions"] = steady["late_transactions"]
    result["cpu_s"] = round(sum(cpu_each.values()), 2)
    result["cpu_s_each"] = [round(c, 2) for c in cpu_each.values()]
    result["reader_cpu_percent"] = round(result["cpu_s"] / gen_elapsed * 100, 1)
    # Wait until every row arrived (or give up after the stall timeout).
    rows = {c[0] + j for c in steady["commits"] for j in range(c[1])}
    deadline = time.monotonic() + opts.stall_timeout
    while True:
        stats = await reader.catch_up()
        assert stats.ids is not None
        if rows <= stats.ids.keys() or time.monotonic() > deadline:
            break
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.5)
    # The latency of the rows committed after the warm-up.
    window_start = (
        steady["commits"][0][2] + int(opts.warmup_seconds * 1e9) if steady["commits"] else 0
    )
    latencies: list[float] = []
    from_source: list[float] = []  # from the database's own commit stamp, when exact
    source_ts = stats.source_ts_us or {}
    # The two halves, split at the envelope's ts_ns (when the reader had the change):
    # commit -> reader (the server's replication, the reader's decoding) and
    # reader -> Kafka append (encoding, the Kafka transaction).
    reader_ts = stats.reader_ts_ns or {}
    to_reader: list[float] = []
    to_kafka: list[float] = []
    missing = 0
    for row, sent_ns in _window_rows(steady["commits"], window_start):
        ts = stats.ids.get(row)
        if ts is None:
            missing += 1
            continue
        latencies.append(ts - sent_ns / 1e6)
        if row in source_ts:
            from_source.append(ts - source_ts[row] / 1000)
        seen = reader_ts.get(row)
        if seen is not None:
            to_reader.append((seen - sent_ns) / 1e6)
            to_kafka.append(ts - seen / 1e6)
    result["by_second"] = _by_second(
        steady["commits"], stats.ids, window_start, steal_samples, reader_ts=reader_ts
    )
    latencies.sort()
    result["events"] = len(latencies)
    result["missing"] = missing
    if latencies:
        result.update(
            p50_ms=round(_percentile(latencies, 0.50), 1),
            p99_ms=round(_percentile(latencies, 0.99), 1),
            max_ms=round(latencies[-1], 1),
            mean_ms=round(statistics.fmean(latencies), 1),
        )
    # Exactly-once: when a read_committed consumer could see each row (its transaction's
    # COMMIT marker appended), from the broker's log on this machine.
    with contextlib.suppress(Exception):
        markers = transaction_markers(await broker_log_dirs(opts.kafka), follow.topic)
        offsets = stats.offsets or {}
        if markers:
            visible: list[float] = []
            unseen = 0
            for row, sent_ns in _window_rows(steady["commits"], window_start):
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
                    "p50_ms": round(_percentile(visible, 0.50), 1),
                    "p99_ms": round(_percentile(visible, 0.99), 1),
                    "max_ms": round(visible[-1], 1),
                    "rows_without_marker": unseen,
                }
                if unseen:
                    result["error"] = f"{unseen} rows have no COMMIT marker after them"
    if to_reader and len(to_reader) == len(latencies):
        to_reader.sort()
        to_kafka.sort()
        result["stages"] = {
            "what": "commit -> the reader's envelope ts_ns -> Kafka append (ms clocks: "
            "the reader's is exact, the broker's in whole ms)",
            "to_reader_p50_ms": round(_percentile(to_reader, 0.50), 1),
            "to_reader_p99_ms": round(_percentile(to_reader, 0.99), 1),
            "to_kafka_p50_ms": round(_percentile(to_kafka, 0.50), 1),
            "to_kafka_p99_ms": round(_percentile(to_kafka, 0.99), 1),
        }
    if from_source and db == "postgres":
        # PostgreSQL stamps commits in microseconds (the binlog: in whole seconds).
        from_source.sort()
        result["from_source_ts"] = {
            "what": "source.ts_us (the server's commit timestamp) to LogAppendTime",
            "p50_ms": round(_percentile(from_source, 0.50), 1),
            "p99_ms": round(_percentile(from_source, 0.99), 1),
            "max_ms": round(from_source[-1], 1),
        }
    if missing:
        result["error"] = f"{missing} rows of the window never reached Kafka"
    return result


# -- one source --------------------------------------------------------------------------


async def bench_source(opts: Options, bench: Bench) -> dict[str, Any]:
    name = bench.name
    workdir = opts.work / name
    workdir.mkdir(parents=True, exist_ok=True)
    workload = load.Workload(opts.n)
    out: dict[str, Any] = {
        "events": workload.events,
        "workload": workload.describe(),
        "readers": {},
        "errors": {},
    }
    readers = out["readers"]

    def failed(what: str, exc: BaseException) -> None:
        log(f"{name}: {what} failed: {exc}")
        out["errors"][what] = str(exc) or exc.__class__.__name__
        if not isinstance(exc, RuntimeError):
            out["errors"][what] += " | " + traceback.format_exc(limit=3).replace("\n", " ")

    # One start point per catch-up: cdcd and Debezium take turns, round after round.
    cdcd_roles = ["cdcd", *(f"cdcd{r}" for r in range(2, opts.rounds + 1))]
    dbz_roles = ["dbz", *(f"dbz{r}" for r in range(2, opts.rounds + 1))]
    roles = ["c", *cdcd_roles, *dbz_roles, "prof"]
    log(f"{name}: preparing (start points for {', '.join(roles)}) and loading N={opts.n} ...")
    start = bench.prepare(roles)
    out["start"] = start
    out["load"] = load.load_backlog(
        "postgres" if name == "postgres" else "mysql",
        bench.dsn if isinstance(bench, PostgresBench) else bench.url,
        workload,
    )
    end = bench.end_position()
    out["end"] = end
    log(f"{name}: backlog of {workload.events} events loaded in {out['load']['load_s']} s")
    # Every reader then finds the server at rest (not purging or vacuuming the backlog).
    out["settle_after_load"] = bench.settle()

    topic_of = {}
    prefixes = {}
    for role in (*cdcd_roles, *dbz_roles, "prof", "lat", "dbzlat", "big"):
        prefixes[role] = f"{opts.topic_root}{name}-{role}"
        topic_of[role] = f"{prefixes[role]}.bench.orders"
    await create_topics(opts.kafka, list(topic_of.values()))

    # The C limit.
    if "c" not in opts.skip:
        log(f"{name}: C limit ...")
        try:
            meter = CpuMeter()
            result = bench.c_limit(end, workdir)
            result["host_steal_cores"] = meter.steal_cores()
            result["events"] = workload.events
            if "error" not in result and result.get("wall_s"):
                result["events_per_s"] = round(workload.events / result["wall_s"], 1)
            readers["c_limit"] = result
            if "error" in result:
                out["errors"]["c_limit"] = result["error"]
        except Exception as exc:  # noqa: BLE001
            failed("c_limit", exc)

    # python-mysql-replication.
    if isinstance(bench, MysqlBench) and "pyrepl" not in opts.skip:
        log(f"{name}: python-mysql-replication ...")
        try:
            meter = CpuMeter()
            readers["python_mysql_replication"] = result = bench.pyrepl(workdir)
            result["host_steal_cores"] = meter.steal_cores()
            if "error" in result:
                out["errors"]["python_mysql_replication"] = result["error"]
        except Exception as exc:  # noqa: BLE001
            failed("python_mysql_replication", exc)

    async def cdcd_catch_up(role: str) -> dict[str, Any]:
        suffix = role.removeprefix("cdcd")
        path = workdir / f"cdcd-catchup{suffix}.toml"
        write_toml(
            path,
            cdcd_config(
                opts,
                f"bench-{name}-{opts.run_id}-catchup{suffix}",
                bench.cdcd_catchup_source(role),
                prefixes[role],
            ),
        )
        result = await catch_up(
            opts,
            Follow("cdcd", cdcd_argv(path), topic_of[role], workdir / f"cdcd-catchup{suffix}.log"),
            workload,
        )
        result["config"] = str(path)
        return result

    async def debezium_catch_up(role: str) -> dict[str, Any]:
        build = debezium_build(bench.family)
        dbz_dir = workdir / ("debezium" if role == "dbz" else f"debezium-{role}")
        dbz_dir.mkdir(exist_ok=True)
        props = bench.debezium_catchup_props(role, prefixes[role], dbz_dir)
        props.update({f"producer.{k}": v for k, v in PRODUCER.items()})
        props["producer.bootstrap.servers"] = opts.kafka
        props["producer.client.id"] = f"bench-dbz-{name}"
        props_path = dbz_dir / "catchup.properties"
        _properties(props_path, props)
        result = await catch_up(
            opts,
            Follow(
                "debezium",
                debezium_argv(build, props_path),
                topic_of[role],
                dbz_dir / "catchup.log",
                stdout_path=dbz_dir / "catchup.out",
            ),
            workload,
        )
        result["version"] = DEBEZIUM_VERSIONS[bench.family]
        result["format"] = (
            "JsonConverter, schemas.enable=false; KafkaProducer acks=all, idempotent, lz4"
        )
        with contextlib.suppress(Exception):
            lines = (dbz_dir / "catchup.out").read_text().strip().splitlines()
            final = json.loads(lines[-1])
            if final["first_event_ms"] and final["last_event_ms"] > final["first_event_ms"]:
                result["in_engine_events_per_s"] = round(
                    final["events"] / ((final["last_event_ms"] - final["first_event_ms"]) / 1000),
                    1,
                )
        return result

    # cdcd and Debezium, in turn.
    rounds: dict[str, list[dict[str, Any]]] = {"cdcd": [], "debezium": []}
    for index in range(opts.rounds):
        of = f" (round {index + 1} of {opts.rounds})" if opts.rounds > 1 else ""
        for key, skip, phase, role in (
            ("cdcd", "cdcd", cdcd_catch_up, cdcd_roles[index]),
            ("debezium", "debezium", debezium_catch_up, dbz_roles[index]),
        ):
            if skip in opts.skip:
                continue
            log(f"{name}: {'cdcd' if key == 'cdcd' else 'Debezium'} catch-up{of} ...")
            try:
                rounds[key].append(await phase(role))
            except Exception as exc:  # noqa: BLE001
                failed(f"{key} (round {index + 1})", exc)
    for key, results in rounds.items():
        if results:
            readers[key] = result = _fastest(results)
            if "error" in result:
                out["errors"][key] = result["error"]

    # The profile: cdcd again, under py-spy.
    if "profile" not in opts.skip and "cdcd" not in opts.skip:
        log(f"{name}: cdcd under py-spy ...")
        try:
            path = workdir / "cdcd-profile.toml"
            write_toml(
                path,
                cdcd_config(
                    opts,
                    f"bench-{name}-{opts.run_id}-profile",
                    bench.cdcd_catchup_source("prof"),
                    prefixes["prof"],
                ),
            )
            profile = RESULTS / f"profile-{name}.speedscope.json"
            profile.unlink(missing_ok=True)
            follow = Follow(
                "cdcd-profiled",
                cdcd_argv(path),
                topic_of["prof"],
                workdir / "cdcd-profile.log",
                profile_path=profile,
            )
            result = await catch_up(opts, follow, workload)
            for _ in range(40):  # py-spy writes its file when cdcd has exited
                if profile.exists():
                    break
                await asyncio.sleep(0.25)
            if profile.exists():
                top = top_entries(profile)
                text = format_top(top)
                (RESULTS / f"profile-{name}-top.txt").write_text(
                    f"cdcd catch-up of {workload.events} events ({name}) under py-spy, "
                    f"run {opts.run_id}\n\n{text}"
                )
                result["profile"] = str(profile)
                result["top"] = str(RESULTS / f"profile-{name}-top.txt")
                result["top_self"] = top["self"][:10]
            else:
                result.setdefault(
                    "error",
                    f"py-spy wrote no profile: {_tail(workdir / 'cdcd-profile.py-spy.log')}",
                )
            readers["cdcd_profiled"] = result
            if "error" in result:
                out["errors"]["profile"] = result["error"]
        except Exception as exc:  # noqa: BLE001
            failed("profile", exc)

    # Latency at a steady rate.
    if "latency" not in opts.skip and "cdcd" not in opts.skip:
        log(
            f"{name}: cdcd ({opts.latency_delivery}) latency at {opts.steady_rate:.0f} events/s "
            f"for {opts.steady_seconds:.0f} s ..."
        )
        try:
            out["settle"] = bench.settle()
            start_lat = bench.latency_start("lat")
            path = workdir / "cdcd-latency.toml"
            write_toml(
                path,
                cdcd_config(
                    opts,
                    f"bench-{name}-{opts.run_id}-latency",
                    bench.cdcd_latency_source("lat", start_lat),
                    prefixes["lat"],
                    opts.latency_delivery,
                ),
            )
            out["latency"] = result = await steady_latency(
                opts,
                bench,
                Follow("cdcd", cdcd_argv(path), topic_of["lat"], workdir / "cdcd-latency.log"),
                workdir,
            )
            if "error" in result:
                out["errors"]["latency"] = result["error"]
        except Exception as exc:  # noqa: BLE001
            failed("latency", exc)
    if opts.big_tx and "bigtx" not in opts.skip and "cdcd" not in opts.skip:
        big = load.BigTransaction(opts.big_tx)
        log(f"{name}: one transaction of {big.rows} rows, cdcd ({opts.latency_delivery}) ...")
        try:
            start_big = bench.latency_start("big")
            out["big_transaction_load"] = load.load_big_transaction(
                "postgres" if name == "postgres" else "mysql",
                bench.dsn if isinstance(bench, PostgresBench) else bench.url,
                big,
            )
            path = workdir / "cdcd-bigtx.toml"
            write_toml(
                path,
                cdcd_config(
                    opts,
                    f"bench-{name}-{opts.run_id}-bigtx",
                    bench.cdcd_latency_source("big", start_big),
                    prefixes["big"],
                    opts.latency_delivery,
                ),
            )
            result = await catch_up(
                opts,
                Follow("cdcd", cdcd_argv(path), topic_of["big"], workdir / "cdcd-bigtx.log"),
                big,  # type: ignore[arg-type]
            )
            result["workload"] = big.describe()
            out["big_transaction"] = result
            if "error" in result:
                out["errors"]["big_transaction"] = result["error"]
        except Exception as exc:  # noqa: BLE001
            failed("big_transaction", exc)
    if opts.debezium_latency and "debezium" not in opts.skip:
        log(f"{name}: Debezium latency ...")
        try:
            build = debezium_build(bench.family)
            dbz_dir = workdir / "debezium-latency"
            dbz_dir.mkdir(exist_ok=True)
            start_lat = bench.latency_start("dbzlat")
            props = bench.debezium_latency_props("dbzlat", start_lat, prefixes["dbzlat"], dbz_dir)
            props.update({f"producer.{k}": v for k, v in PRODUCER.items()})
            props["producer.bootstrap.servers"] = opts.kafka
            props_path = dbz_dir / "latency.properties"
            _properties(props_path, props)
            out["debezium_latency"] = result = await steady_latency(
                opts,
                bench,
                Follow(
                    "debezium",
                    debezium_argv(build, props_path),
                    topic_of["dbzlat"],
                    dbz_dir / "latency.log",
                ),
                workdir,
            )
            if "error" in result:
                out["errors"]["debezium_latency"] = result["error"]
        except Exception as exc:  # noqa: BLE001
            failed("debezium_latency", exc)
    return out


def headline(source: str, out: dict[str, Any], opts: Options) -> None:
    """The figures the issue names, at the top of each source's block."""
    readers = out["readers"]

    def rate(reader: str) -> float | None:
        r = readers.get(reader) or {}
        return None if "error" in r else r.get("events_per_s")

    cdcd = rate("cdcd")
    dbz = rate("debezium")
    c = rate("c_limit")
    lat = out.get("latency") or {}
    big = out.get("big_transaction") or {}
    rss = [
        v
        for v in (
            (readers.get("cdcd") or {}).get("peak_rss_mb"),
            lat.get("peak_rss_mb"),
            big.get("peak_rss_mb"),
        )
        if v
    ]
    out.update(
        cdcd_events_per_s=cdcd,
        debezium_events_per_s=dbz,
        c_limit_events_per_s=c,
        # Exactly-once: until consumers can read the row (its COMMIT marker appended).
        p50_latency_ms=(lat.get("visible") or lat).get("p50_ms"),
        p99_latency_ms=(lat.get("visible") or lat).get("p99_ms"),
        big_transaction_rows=(big.get("workload") or {}).get("rows"),
        big_transaction_peak_rss_mb=big.get("peak_rss_mb"),
        big_transaction_events_per_s=big.get("events_per_s"),
        max_latency_ms=(lat.get("visible") or lat).get("max_ms"),
        peak_rss_mb=max(rss) if rss else None,
        cdcd_cpu_s=(readers.get("cdcd") or {}).get("cpu_s"),
        debezium_peak_rss_mb=(readers.get("debezium") or {}).get("peak_rss_mb"),
        debezium_cpu_s=(readers.get("debezium") or {}).get("cpu_s"),
    )
    out["ratios"] = {
        "cdcd_vs_debezium": round(cdcd / dbz, 3) if cdcd and dbz else None,
        "cdcd_vs_c_limit": round(cdcd / c, 3) if cdcd and c else None,
    }
    comparable = opts.n >= TARGET_MIN_N
    target = TARGETS[source]["cdcd_vs_debezium"]

    def verdict(ok: bool | None) -> str:
        if ok is None:
            return "n/a"
        return ("PASS" if ok else "FAIL") + ("" if comparable else " (N < 500k: not comparable)")

    ratio = out["ratios"]["cdcd_vs_debezium"]
    p99 = out["p99_latency_ms"]
    peak = out["peak_rss_mb"]
    out["targets"] = {
        f"cdcd_vs_debezium >= {target}": verdict(None if ratio is None else ratio >= target),
        f"p99_latency_ms <= {TARGET_P99_MS:.0f}": verdict(
            None if p99 is None else p99 <= TARGET_P99_MS
        ),
        f"peak_rss_mb <= {TARGET_RSS_MB:.0f}": verdict(
            None if peak is None else peak <= TARGET_RSS_MB
        ),
    }


# -- report ----------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def report(result: dict[str, Any]) -> str:
    w = result["workload"]
    m = result["machine"]
    lines = [
        "",
        f"cdcd benchmark {result['run_id']} ({result['mode']}): N = {w['n']:,} inserts -> "
        f"{w['events']:,} row events per source; {m['cpus']} CPUs, load average "
        f"{m['loadavg'][0]} at start, {result['loadavg_end'][0]} at end",
        "",
        f"{'source':9} {'reader':34} {'ev/s':>10} {'1st-last s':>10} {'wall s':>8} {'RSS MB':>8} "
        f"{'CPU s':>7} {'busy':>5}  note",
    ]
    names = {
        "c_limit": "C limit",
        "python_mysql_replication": "python-mysql-replication (no Kafka)",
        "cdcd": "cdcd -> Kafka",
        "debezium": "Debezium embedded -> Kafka",
        "cdcd_profiled": "cdcd -> Kafka under py-spy",
    }
    for source, out in result["sources"].items():
        for key, label in names.items():
            r = out.get("readers", {}).get(key)
            if r is None:
                continue
            if key == "c_limit":
                label = (
                    "C limit ("
                    + ("pg_recvlogical" if source == "postgres" else "mariadb-binlog -v")
                    + ")"
                )
            note = r.get("error") or r.get("warning") or ""
            if key == "debezium" and "version" in r:
                note = note or f"Debezium {r['version']}"
            if key in ("c_limit", "python_mysql_replication"):
                note = note or "wall clock, no Kafka"
            parts = [note] if note else []
            each = r.get("cpu_s_each") or []
            if key.startswith("cdcd") and len(each) > 1 and not note:
                parts.append("CPU s by process: " + " + ".join(f"{c:.1f}" for c in each))
            others = r.get("others_cpu_s") or []
            if others and not r.get("error"):
                parts.append("others: " + ", ".join(f"{n} {c:.1f} s" for n, c in others))
            if (r.get("host_steal_cores") or 0) >= 0.1:
                parts.append(f"host steal {r['host_steal_cores']:.1f} cores")
            if r.get("rounds"):
                speeds = " / ".join(_fmt(x.get("events_per_s")) for x in r["rounds"])
                parts.append(f"fastest of {speeds}")
            note = "; ".join(parts)
            span = r.get("first_to_last_s")
            lines.append(
                f"{source:9} {label[:34]:34} {_fmt(r.get('events_per_s')):>10} {_fmt(span, 2):>10} "
                f"{_fmt(r.get('wall_s'), 2):>8} {_fmt(r.get('peak_rss_mb'), 1):>8} "
                f"{_fmt(r.get('cpu_s'), 1):>7} {_fmt(r.get('machine_busy_cores'), 1):>5}  "
                f"{note[:120]}"
            )
        if out.get("error"):
            lines.append(f"{source:9} (source failed) {out['error'][:200]}")
    lines.append("")
    lines.append("latency at a steady rate (from the commit), ratios, targets:")
    for source, out in result["sources"].items():
        lat = out.get("latency") or {}
        if lat:
            lines.append(
                f"  {source:9} cdcd ({result['settings'].get('cdcd_latency_delivery', '?')}) "
                f"latency at {_fmt(lat.get('rate'))} ev/s "
                f"(achieved {_fmt(lat.get('achieved_rate'))}, {_fmt(lat.get('events'))} events): "
                f"to the record's append: p50 {_fmt(lat.get('p50_ms'), 1)} ms, "
                f"p99 {_fmt(lat.get('p99_ms'), 1)} ms, max {_fmt(lat.get('max_ms'), 1)} ms; "
                f"cdcd CPU {_fmt(lat.get('reader_cpu_percent'), 0)}% "
                + (f"[{lat['error'][:100]}]" if lat.get("error") else "")
            )
            windows = lat.get("windows") or []
            if len(windows) > 1:
                lines.append(
                    f"  {source:9}   window {lat.get('chosen_window')} of {len(windows)} counts "
                    "(the least host steal); each window's p99 / host steal: "
                    + ", ".join(
                        f"{_fmt(w.get('p99_ms'), 1)} ms / {_fmt(w.get('host_steal_cores'), 2)}"
                        for w in windows
                    )
                )
            seen = lat.get("visible")
            if seen:
                lines.append(
                    f"  {source:9}   to read_committed consumers (its transaction's COMMIT "
                    f"marker appended): p50 {_fmt(seen['p50_ms'], 1)} ms, p99 "
                    f"{_fmt(seen['p99_ms'], 1)} ms, max {_fmt(seen['max_ms'], 1)} ms"
                )
            stages = lat.get("stages")
            if stages:
                lines.append(
                    f"  {source:9}   commit -> cdcd has it: p50 "
                    f"{_fmt(stages['to_reader_p50_ms'], 1)} ms, p99 "
                    f"{_fmt(stages['to_reader_p99_ms'], 1)} ms; cdcd -> Kafka append: p50 "
                    f"{_fmt(stages['to_kafka_p50_ms'], 1)} ms, p99 "
                    f"{_fmt(stages['to_kafka_p99_ms'], 1)} ms"
                )
            if lat.get("others_cpu_s"):
                lines.append(
                    f"  {source:9}   machine busy {_fmt(lat.get('machine_busy_cores'), 2)} cores; "
                    "CPU s of the others: "
                    + ", ".join(f"{n} {c:.1f}" for n, c in lat["others_cpu_s"])
                )
            seconds = lat.get("by_second") or {}
            if seconds.get("seconds"):
                lines.append(
                    f"  {source:9}   seconds with p99 > {_fmt(seconds['target_ms'])} ms: "
                    f"{seconds['seconds_over_target']} of {seconds['seconds']}; host steal "
                    f"{_fmt(lat.get('host_steal_cores'), 2)} cores over the window, "
                    f"{_fmt(seconds.get('steal_cores_in_slow_seconds'), 2)} in those seconds, "
                    f"{_fmt(seconds.get('steal_cores_in_other_seconds'), 2)} in the others"
                )
        big = out.get("big_transaction") or {}
        if big:
            lines.append(
                f"  {source:9} cdcd, one transaction of {_fmt((big.get('workload') or {}).get('rows'))} "
                f"rows: {_fmt(big.get('events_per_s'))} ev/s, peak RSS {_fmt(big.get('peak_rss_mb'), 1)} MB "
                f"({_fmt(big.get('processes'))} processes)"
                + (f" [{big['error'][:100]}]" if big.get("error") else "")
            )
        fs = lat.get("from_source_ts")
        if fs:
            lines.append(
                f"  {source:9}   (from the server's commit stamp source.ts_us: p50 "
                f"{_fmt(fs.get('p50_ms'), 1)} ms, p99 {_fmt(fs.get('p99_ms'), 1)} ms)"
            )
        dl = out.get("debezium_latency")
        if dl:
            lines.append(
                f"  {source:9} Debezium latency: p50 {_fmt(dl.get('p50_ms'), 1)} ms, "
                f"p99 {_fmt(dl.get('p99_ms'), 1)} ms, max {_fmt(dl.get('max_ms'), 1)} ms"
            )
        ratios = out.get("ratios") or {}
        lines.append(
            f"  {source:9} cdcd/Debezium {_fmt(ratios.get('cdcd_vs_debezium'), 2)}x, "
            f"cdcd/C-limit {_fmt(ratios.get('cdcd_vs_c_limit'), 3)}x, "
            f"cdcd peak RSS {_fmt(out.get('peak_rss_mb'), 1)} MB"
        )
        for target, verdict in (out.get("targets") or {}).items():
            lines.append(f"  {source:9}   target {target}: {verdict}")
    lines.append("")
    lines.append(
        "ev/s: row events / (first to last row event): Kafka readers by the broker's "
        "LogAppendTime stamps, the others by the wall clock; busy: cores the whole "
        "machine used meanwhile."
    )
    return "\n".join(lines) + "\n"


# -- main --------------------------------------------------------------------------------


def _prune_runs(keep: int = 10) -> None:
    """Keep the work directories (logs, configs) of the last ``keep`` runs."""
    runs = sorted((CACHE / "runs").glob("*"))
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


async def main_async(opts: Options) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    opts.work.mkdir(parents=True, exist_ok=True)
    _prune_runs()
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
        },
        "settings": {
            "cdcd_delivery": opts.delivery
            if "delivery" in _cdcd_fields()["top"]
            else "(no such key)",
            "cdcd_latency_delivery": opts.latency_delivery,
            "cdcd_reader": opts.reader or "default",
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
    started = time.monotonic()
    try:
        for name in opts.sources:
            bench: Bench = PostgresBench(opts) if name == "postgres" else MysqlBench(opts, name)
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
            headline(name, out, opts)
            result["sources"][name] = out
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
    # The few keys a dashboard reads first, then everything.
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str)
    opts.out.write_text(text)
    (RESULTS / f"run-{opts.run_id}.json").write_text(text)
    table = report(result)
    opts.out.with_suffix(".txt").write_text(table)
    print(table)
    log(f"written {opts.out} in {result['duration_s']} s")
    failures = {s: o["errors"] for s, o in result["sources"].items() if o.get("errors")}
    if failures:
        log(f"reader errors (recorded in the JSON): {json.dumps(failures)[:600]}")
    if any(o.get("error") for o in result["sources"].values()):
        return 1
    return 2 if (opts.strict and failures) else 0


if __name__ == "__main__":
    sys.exit(main())
