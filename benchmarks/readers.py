"""The readers that write to Kafka (cdcd, Debezium): how each is configured and started,
and how a catch-up is followed until the whole backlog is in its topic.

The C tools and python-mysql-replication run to their own end; their command lines are
the servers' (``server_postgres.py``, ``server_mysql.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import load
from backlog import SourceRun
from harness import (
    CACHE,
    DEBEZIUM_VERSIONS,
    HERE,
    PRODUCER,
    REPO,
    VENV_BIN,
    Options,
    log,
    log_tail,
)
from kafka_tools import TopicReader, TopicStats
from procstat import CpuMeter, ProcWatch

# -- a reader's process -------------------------------------------------------------------


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
    cwd: Path | None = None


def spawn(follow: Follow) -> subprocess.Popen[bytes]:
    """Start the reader, its standard error into its log (the child keeps the files)."""
    with (
        open(follow.stdout_path or os.devnull, "wb") as stdout,
        open(follow.log_path, "wb") as stderr,
    ):
        return subprocess.Popen(
            follow.argv, stdout=stdout, stderr=stderr, env=follow.env, cwd=follow.cwd
        )


def stop(proc: subprocess.Popen[Any], timeout: float = 30.0) -> int:
    """SIGTERM (a reader drains and exits), then SIGKILL if it does not end in time."""
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


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


def _stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(signal.SIGINT)  # py-spy writes its file and exits
    with contextlib.suppress(subprocess.TimeoutExpired):
        profiler.wait(60)
    if profiler.poll() is None:
        profiler.kill()
        profiler.wait()


# -- a catch-up -------------------------------------------------------------------------------


async def catch_up(
    opts: Options, follow: Follow, workload: load.Workload | load.GeneratedRows
) -> dict[str, Any]:
    """Run a Kafka reader until the whole backlog is in its topic; its figures."""
    reader = TopicReader(opts.kafka, follow.topic)
    await reader.start()
    meter = CpuMeter()
    spawned = time.time()
    proc = spawn(follow)
    result: dict[str, Any] = {"log": str(follow.log_path)}
    profiler: subprocess.Popen[bytes] | None = None
    try:
        if follow.profile_path is not None:
            profiler = await _attach_profiler(proc, follow)
        watch = ProcWatch(proc.pid)
        error = await _until_delivered(opts, follow, proc, reader, watch, workload)
        if error is not None:
            result["error"] = error
        result.update(watch.snapshot())
        result["machine_busy_cores"] = meter.busy_cores()
        result["host_steal_cores"] = meter.steal_cores()
        result["others_cpu_s"] = meter.others({os.getpid(), *watch.cpu})
    finally:
        if profiler is not None:
            _stop_profiler(profiler)
        result["exit_code"] = stop(proc)
        stats = await reader.catch_up()
        await reader.stop()
    result.update(stats.describe())
    _stream_figures(result, stats, spawned, workload.events)
    return result


async def _until_delivered(
    opts: Options,
    follow: Follow,
    proc: subprocess.Popen[bytes],
    reader: TopicReader,
    watch: ProcWatch,
    workload: load.Workload | load.GeneratedRows,
) -> str | None:
    """Sample the reader until its topic holds every row event and tombstone; why not,
    when it exits, writes nothing or stalls first."""
    expected_events = workload.events
    expected_tombstones = workload.deletes
    last_end, last_progress = -1, time.monotonic()
    while True:
        await asyncio.sleep(0.25)
        watch.sample()
        if proc.poll() is not None:
            return f"{follow.name} exited with code {proc.returncode}: {log_tail(follow.log_path)}"
        end = await reader.end_offset()
        now = time.monotonic()
        if end != last_end:
            last_end, last_progress = end, now
        if end >= expected_events + expected_tombstones:
            stats = await reader.catch_up()
            if stats.values >= expected_events and stats.tombstones >= expected_tombstones:
                return None
        limit = opts.startup_timeout if end <= 0 else opts.stall_timeout
        if now - last_progress > limit:
            what = "wrote nothing" if end <= 0 else f"stalled at offset {end}"
            return (
                f"{follow.name} {what} for {limit:.0f} s (expected {expected_events} events); "
                f"log: {log_tail(follow.log_path, 3)}"
            )


def _stream_figures(
    result: dict[str, Any], stats: TopicStats, spawned: float, expected_events: int
) -> None:
    """The stream's rate from the records' append times, start-up and CPU per event."""
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


# -- cdcd ------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml_key(key: str) -> str:
    """A key as TOML reads it back whole (Debezium's dotted option names quoted)."""
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def write_toml(path: Path, config: dict[str, Any]) -> None:
    lines = [f"{k} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, values in config.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items())
    path.write_text("\n".join(lines) + "\n")


# Where each configuration model lives: (cdcd's module after the move to a folder per
# source and sink, the model's name), with ``cdcd.config`` holding it before the move.
_CONFIG_MODELS = {
    "mysql": ("cdcd.sources.mysql.config", "MysqlSourceConfig"),
    "postgres": ("cdcd.sources.postgres.config", "PostgresSourceConfig"),
    "sink": ("cdcd.sinks.kafka.config", "KafkaSinkConfig"),
}


def _config_model(module_name: str, name: str) -> Any:
    """A configuration model from its own module, or from ``cdcd.config`` (older layout)."""
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return getattr(importlib.import_module("cdcd.config"), name)


def cdcd_fields() -> dict[str, set[str]]:
    """Which optional keys this cdcd's configuration knows (it changes while cdcd grows)."""
    try:
        from cdcd.config import Config

        fields = {"top": set(Config.model_fields)}
        for kind, (module_name, name) in _CONFIG_MODELS.items():
            fields[kind] = set(_config_model(module_name, name).model_fields)
        fields["snapshot"] = _section_fields(Config.model_fields.get("snapshot"))
        return {key: fields[key] for key in _FIELD_KINDS}
    except Exception:  # noqa: BLE001 - a broken cdcd is reported when it runs
        return {key: set() for key in _FIELD_KINDS}


_FIELD_KINDS = ("top", "mysql", "postgres", "sink", "snapshot")


def _section_fields(field: Any) -> set[str]:
    """The keys of a top-level section's model (``[snapshot]``), if cdcd has it."""
    if field is None:
        return set()
    for model in (field.annotation, *typing.get_args(field.annotation)):
        if hasattr(model, "model_fields"):
            return set(model.model_fields)
    return set()


def _snapshot_section(known: dict[str, set[str]], snapshot: dict[str, Any]) -> dict[str, Any]:
    """cdcd's ``[snapshot]``: the keys it knows (a missing ``mode`` is an error: that
    cdcd takes no initial snapshot)."""
    if "mode" not in known["snapshot"]:
        raise RuntimeError(
            "this cdcd has no [snapshot] mode in its configuration: it takes no initial snapshot"
        )
    left_out = sorted(set(snapshot) - known["snapshot"])
    if left_out:
        log(f"cdcd knows no [snapshot] {', '.join(left_out)}: left out")
    return {k: v for k, v in snapshot.items() if k in known["snapshot"]}


def cdcd_config(
    opts: Options,
    name: str,
    source: dict[str, Any],
    topic_prefix: str,
    delivery: str | None = None,
    snapshot: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """cdcd's configuration for one phase: ``source`` and ``snapshot`` (the ``[snapshot]``
    section, for the snapshot phase) reduced to the keys this cdcd knows. Without
    ``snapshot``, a cdcd that knows the section gets ``mode = "no_data"``: its default
    (``initial``) would read the table into a catch-up's topic too (Debezium streams
    with ``snapshot.mode=no_data`` there)."""
    known = cdcd_fields()
    config: dict[str, Any] = {"name": name}
    delivery = delivery or opts.delivery
    if delivery != "default" and "delivery" in known["top"]:
        config["delivery"] = delivery
    kind = source["kind"]
    config["source"] = {k: v for k, v in source.items() if k in known[kind] or k in ("kind", "dsn")}
    inline = "thread" if kind == "mysql" else "inline"
    if opts.reader is not None and "reader" in known[kind]:
        config["source"]["reader"] = inline if opts.reader == "inline" else "process"
    chosen = getattr(opts, "snapshot_reader", None)
    if snapshot is not None and chosen is not None and "snapshot_reader" in known[kind]:
        config["source"]["snapshot_reader"] = inline if chosen == "inline" else "process"
    config["sink"] = {
        "kind": "kafka",
        "bootstrap_servers": opts.kafka,
        "topic_prefix": topic_prefix,
        "tombstones_on_delete": True,
    }
    config["log"] = {"level": "info", "format": "json"}
    if snapshot is not None:
        config["snapshot"] = _snapshot_section(known, snapshot)
    elif "mode" in known["snapshot"]:
        config["snapshot"] = {"mode": "no_data"}
    return config


# cdcd as its console script starts it, but run in this tree (``Follow.cwd``): the
# current directory comes first on ``sys.path`` (for ``-c`` and for its reader process's
# ``-m``), so the cdcd measured is this checkout's even when the virtualenv is shared by
# several (git worktrees) and its editable install points at another.
_CDCD_MAIN = "import sys; from cdcd.cli import main; sys.argv[0] = 'cdcd'; sys.exit(main())"


def cdcd_argv(config_path: Path) -> list[str]:
    return [sys.executable, "-c", _CDCD_MAIN, "run", "--config", str(config_path)]


def cdcd_follow(
    run: SourceRun,
    phase: str,
    role: str,
    source: dict[str, Any],
    delivery: str | None = None,
    *,
    name: str = "cdcd",
    profile_path: Path | None = None,
    snapshot: dict[str, Any] | None = None,
    sections: dict[str, Any] | None = None,
) -> tuple[Follow, Path]:
    """cdcd in one phase of a source (``catchup``, ``profile``, ``latency``, ``bigtx``,
    ``snapshot``, ``transforms``):
    its configuration written to ``cdcd-<phase>.toml`` (the path returned), its log in
    ``cdcd-<phase>.log``, its topic the role's. ``sections``: more of its configuration
    (the transforms' ``[shaping]``, ``[flatten]``, ``[outbox]``)."""
    path = run.workdir / f"cdcd-{phase}.toml"
    config_name = f"bench-{run.name}-{run.opts.run_id}-{phase}"
    config = cdcd_config(run.opts, config_name, source, run.prefixes[role], delivery, snapshot)
    config.update(sections or {})
    write_toml(path, config)
    log_path = run.workdir / f"cdcd-{phase}.log"
    follow = Follow(
        name, cdcd_argv(path), run.topics[role], log_path, profile_path=profile_path, cwd=REPO
    )
    return follow, path


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


def write_debezium_properties(
    path: Path, props: dict[str, str], kafka: str, client_id: str | None = None
) -> None:
    """The connector's properties and the KafkaProducer's (``producer.*``: cdcd's
    defaults, on the run's broker), as ``DebeziumBench`` reads them."""
    props.update({f"producer.{k}": v for k, v in PRODUCER.items()})
    props["producer.bootstrap.servers"] = kafka
    if client_id is not None:
        props["producer.client.id"] = client_id

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n")

    path.write_text("".join(f"{k}={esc(str(v))}\n" for k, v in props.items()))


def debezium_follow(
    run: SourceRun, role: str, phase: str, props: dict[str, str], dbz_dir: Path
) -> Follow:
    """Debezium in one phase of a source (``catchup``, ``latency``, ``snapshot``): its
    properties written to ``<dbz_dir>/<phase>.properties``, its log and standard output
    (the runner's counts) next to them, its topic the role's."""
    build = debezium_build(run.bench.family)
    props_path = dbz_dir / f"{phase}.properties"
    write_debezium_properties(props_path, props, run.opts.kafka, f"bench-dbz-{run.name}")
    return Follow(
        "debezium",
        debezium_argv(build, props_path),
        run.topics[role],
        dbz_dir / f"{phase}.log",
        stdout_path=dbz_dir / f"{phase}.out",
    )


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
