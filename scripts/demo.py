#!/usr/bin/env python3
"""`make demo`: throwaway test servers, cdcd from PostgreSQL to Kafka, a few changes, the events.

Starts the test servers with scripts/testenv unless they already run (PostgreSQL, MariaDB
and Kafka; not MySQL 8), and then stops them at the end; servers that already ran are
left running. Runs `cdcd run` from PostgreSQL to Kafka, makes changes in a table and
prints each change event as a Kafka consumer receives it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer

ROOT = Path(__file__).resolve().parent.parent
TESTENV = ROOT / "scripts" / "testenv"
WORK = ROOT / ".testenv" / "demo"

CHANGES = [
    "INSERT INTO demo.orders (customer, amount, status) VALUES ('ann', 12.50, 'new')",
    "INSERT INTO demo.orders (customer, amount, status) VALUES ('bob', 99.90, 'new'), ('cy', 5.00, 'new')",
    "UPDATE demo.orders SET status = 'paid', amount = 13.00 WHERE customer = 'ann'",
    "DELETE FROM demo.orders WHERE customer = 'cy'",
]
BEFORE = "INSERT INTO demo.orders (customer, amount, status) VALUES ('dan', 1.00, 'old')"
EXPECTED = 7  # dan's row read by the initial snapshot; three creates, an update, a delete and its tombstone


def say(text: str) -> None:
    print(f"\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"== {text}", flush=True)


def testenv_env() -> dict[str, str] | None:
    result = subprocess.run([str(TESTENV), "env"], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    env = {}
    for line in result.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value.strip("'\"")
    return env


async def show_events(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> int:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        isolation_level="read_committed", metadata_max_age_ms=500,
    )
    await consumer.start()
    seen = 0
    try:
        deadline = time.monotonic() + timeout
        while seen < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                for r in records:
                    seen += 1
                    key = r.key.decode() if r.key else None
                    if r.value is None:
                        print(f"  {r.topic}  key={key}  (tombstone)")
                        continue
                    value = orjson.loads(r.value)
                    print(f"  {r.topic}  op={value['op']}  key={key}")
                    print(f"      before={orjson.dumps(value['before']).decode()}")
                    print(f"      after ={orjson.dumps(value['after']).decode()}")
    finally:
        await consumer.stop()
    return seen


def main() -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # "topic not found" until created
    started_env = False
    env = testenv_env()
    if env is None:
        say(
            "starting the throwaway test servers: PostgreSQL, MariaDB and Kafka "
            "(scripts/testenv up; the demo streams from PostgreSQL to Kafka)"
        )
        subprocess.run(
            [str(TESTENV), "up"], check=True, stdout=subprocess.DEVNULL,
            env={**os.environ, "CDCD_TESTENV_MYSQL8": os.environ.get("CDCD_TESTENV_MYSQL8", "0")},
        )
        started_env = True
        env = testenv_env()
        assert env is not None
    dsn, bootstrap = env["CDCD_TEST_PG_DSN"], env["CDCD_TEST_KAFKA_BOOTSTRAP"]
    daemon = None
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        conn.execute("DROP SCHEMA IF EXISTS demo CASCADE")
        conn.execute(
            "CREATE SCHEMA demo; CREATE TABLE demo.orders (id serial PRIMARY KEY, customer text, "
            "amount numeric(10,2), status text, created_at timestamptz DEFAULT now());"
            # FULL: updates and deletes carry the whole old row in `before`.
            "ALTER TABLE demo.orders REPLICA IDENTITY FULL"
        )
        conn.execute(
            "SELECT pg_drop_replication_slot('cdcd_demo') FROM pg_replication_slots WHERE slot_name = 'cdcd_demo'"
        )
        conn.execute("DROP PUBLICATION IF EXISTS cdcd_demo")
        say("a row that is there before cdcd starts (its initial snapshot reads it):")
        print(f"  {BEFORE}")
        conn.execute(BEFORE)
        WORK.mkdir(parents=True, exist_ok=True)
        topic_prefix = f"demo{int(time.time())}"
        config = WORK / "cdcd.toml"
        config.write_text(
            f'name = "demo"\n\n[source]\nkind = "postgres"\ndsn = "{dsn}"\ntables = ["demo.orders"]\n\n'
            f'[sink]\nkind = "kafka"\nbootstrap_servers = "{bootstrap}"\ntopic_prefix = "{topic_prefix}"\n'
        )
        say(f"configuration {config.relative_to(ROOT)}:")
        print(config.read_text())
        say("starting: cdcd run --config " + str(config.relative_to(ROOT)))
        log_path = WORK / "cdcd.log"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "cdcd.cli", "run", "--config", str(config)],
            stderr=log_path.open("wb"), cwd=ROOT,
        )
        deadline = time.monotonic() + 60
        while b'"streaming"' not in log_path.read_bytes():
            if daemon.poll() is not None or time.monotonic() > deadline:
                print(log_path.read_text(), file=sys.stderr)
                raise SystemExit("cdcd did not start")
            time.sleep(0.1)
        say("making changes in PostgreSQL:")
        for statement in CHANGES:
            print(f"  {statement}")
            conn.execute(statement)
        say(f"change events arriving in Kafka (topic {topic_prefix}.demo.orders):")
        seen = asyncio.run(show_events(bootstrap, f"{topic_prefix}.demo.orders", EXPECTED))
        say(f"{seen} records received; stopping cdcd (SIGTERM)")
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(30)
        last = log_path.read_text().strip().splitlines()[-1]
        print(f"  cdcd exited with {code}; its last log line: {last}")
        return 0 if seen >= EXPECTED and code == 0 else 1
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        conn.execute(
            "SELECT pg_drop_replication_slot('cdcd_demo') FROM pg_replication_slots WHERE slot_name = 'cdcd_demo'"
        )
        conn.execute("DROP PUBLICATION IF EXISTS cdcd_demo; DROP SCHEMA IF EXISTS demo CASCADE")
        conn.close()
        if started_env:
            say("stopping the servers it started (scripts/testenv down)")
            subprocess.run([str(TESTENV), "down"], stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
