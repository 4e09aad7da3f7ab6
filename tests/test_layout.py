"""The core knows no database driver and no Kafka client (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

CORE = ["cdcd.events", "cdcd.positions", "cdcd.envelope", "cdcd.runtime.pipeline", "cdcd.offsets", "cdcd.config"]
FORBIDDEN = ["psycopg", "pymysql", "pymysqlreplication", "aiokafka"]


def test_core_imports_no_driver_and_no_kafka_client():
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in CORE)
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_sources_know_no_kafka_and_sinks_no_database():
    for package, forbidden in (
        ("cdcd.sources.postgres", ["aiokafka", "pymysql"]),
        ("cdcd.sources.mysql", ["aiokafka", "psycopg"]),
        ("cdcd.sinks.kafka", ["psycopg", "pymysql", "pymysqlreplication"]),
    ):
        code = f"import sys, {package}; print(sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r}))"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "[]", (package, result.stdout)
