"""Running the two readers on the same changes: Debezium's embedded engine
(``benchmarks/debezium``'s ``DebeziumCapture``, JSON with schemas, to a file) and cdcd
(the stdout sink, to a file), one after the other, each from its own slot or binlog
position, after every change is made."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import ROOT, Daemon, write_config

sys.path.insert(0, str(ROOT / "benchmarks"))

from readers import debezium_build  # noqa: E402  (the bench's cached Maven build)


@dataclass
class Captured:
    """What each reader wrote: records as ``{"topic", "key", "value"}`` dicts."""

    debezium: list[dict[str, Any]]
    cdcd: list[dict[str, Any]]
    cdcd_error: str = ""  # the line cdcd stopped with, if it did


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(
    path: Path,
    count: int,
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float,
    may_stop: bool = False,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            time.sleep(0.5)  # anything more than expected is a difference too
            return
        if may_stop and process.poll() == 1:
            return
        if process.poll() is not None:
            raise AssertionError(
                f"{process.args[0]} exited {process.returncode}: {log.read_text()[-3000:]}"
            )
        time.sleep(0.2)
    have = path.read_bytes().count(b"\n") if path.exists() else 0
    raise AssertionError(
        f"{have} of {count} records after {timeout} s; log:\n{log.read_text()[-3000:]}"
    )


def run_cdcd(
    workdir: Path, config: dict[str, Any], count: int, may_stop: bool = False, timeout: float = 120
) -> tuple[list[dict[str, Any]], str]:
    """cdcd with ``config`` (its sink: stdout) until it wrote ``count`` records, or (if
    ``may_stop``) stopped with an error: the records and that error's line."""
    config = {**config, "sink": {"kind": "stdout"}, "log": {"level": "info", "format": "json"}}
    proc = Daemon(
        write_config(workdir / "cdcd.toml", config), workdir / "cdcd.log", workdir / "cdcd.out"
    )
    try:
        proc.start()
        assert proc.process is not None
        _wait_for(proc.out_path, count, proc.process, proc.log_path, timeout, may_stop)
        if proc.process.poll() is None:
            proc.terminate()
    finally:
        proc.ensure_stopped()
    errors = [line for line in proc.log_text().splitlines() if line.startswith("cdcd: error:")]
    return read_records(proc.out_path), "\n".join(errors)


def run_debezium(
    workdir: Path, family: str, props: dict[str, str], count: int, timeout: float = 300
) -> list[dict[str, Any]]:
    """Debezium's embedded engine with ``props`` until it wrote ``count`` records."""
    build = debezium_build(family)
    out = workdir / "debezium.out"
    log = workdir / "debezium.log"
    props = {
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": str(workdir / "debezium-offsets.dat"),
        "offset.flush.interval.ms": "1000",
        **props,
        "capture.output": str(out),
    }
    path = workdir / "debezium.properties"
    path.write_text("".join(f"{k}={_escape(v)}\n" for k, v in props.items()))
    argv = [
        "java",
        "-Xmx512m",
        "-XX:TieredStopAtLevel=1",  # a short run: the quick compiler is enough
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        f"{build / 'dbz-bench.jar'}:{build / 'lib'}/*",
        "io.cdcd.bench.DebeziumCapture",
        str(path),
    ]
    with log.open("wb") as err:
        process = subprocess.Popen(argv, stdout=err, stderr=err)
        try:
            _wait_for(out, count, process, log, timeout)
            process.send_signal(signal.SIGTERM)
            process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    return read_records(out)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")
