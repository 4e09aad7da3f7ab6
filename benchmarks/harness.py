"""What every phase of the benchmark shares: the run's options, where its files go, the
settings the readers are compared under, the issue's targets, the log line."""

from __future__ import annotations

import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
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
# The initial snapshot: cdcd's rows/s against Debezium's, on a table of (at least) this many
# rows; cdcd's peak RSS meanwhile under TARGET_RSS_MB.
TARGET_SNAPSHOT_VS_DEBEZIUM = 2.0
TARGET_SNAPSHOT_ROWS = 1_000_000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Options:
    """The run's settings, as ``run.parse_options`` resolved them (defaults included)."""

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
    snapshot_rows: int = 0  # the snapshot phase's table (0: no phase)
    snapshot_threads: int | None = None  # cdcd's [snapshot] max_threads (None: its default)
    snapshot_reader: str | None = None  # cdcd's source.snapshot_reader (None: its default)
    takeovers: int = 0  # the takeover phase's SIGKILLs of the active instance (per delivery)
    handovers: int = 0  # and its SIGTERMs (exactly-once)
    lease_ms: int = 5000  # the pair's [ha] lease_ms
    heartbeat_ms: int = 1000  # and heartbeat_ms
    takeover_rate: float = 1000.0  # rows/s of its steady load
    run_id: str = field(
        default_factory=lambda: time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
    )

    @property
    def work(self) -> Path:
        return CACHE / "runs" / self.run_id

    @property
    def topic_root(self) -> str:
        return f"bench-{self.run_id}-"


def url_parts(url: str) -> dict[str, Any]:
    """Host, port, user, password and database of a server URL (for the tools that take
    them one by one)."""
    u = urlsplit(url)
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port,
        "user": unquote(u.username or ""),
        "password": unquote(u.password or ""),
        "database": unquote(u.path.strip("/")),
    }


def log_tail(path: Path, lines: int = 6) -> str:
    """The last lines of a reader's log, on one line (for an error message)."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip()[:400] for line in text[-lines:])
