"""A terminated replication connection: the daemon starts over from its last committed
offset in the same process, losing and repeating nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest
from support import RangeWriter, assert_each_once, consume, daemon

pytestmark = pytest.mark.integration


def terminate_walsender(pg_case, timeout: float = 30) -> int:
    slot = f"cdcd_{pg_case.name}"
    deadline = time.monotonic() + timeout
    while True:
        row = pg_case.conn.execute(
            "SELECT active_pid, pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE slot_name = %s AND active_pid IS NOT NULL",
            (slot,),
        ).fetchone()
        if row is not None and row[1]:
            return int(row[0])
        assert time.monotonic() < deadline, f"slot {slot} has no active walsender"
        time.sleep(0.1)


def test_terminated_walsender_reconnects_in_process(pg_case, tmp_path):
    s, total = pg_case.schema, 20_000
    pg_case.execute(f"CREATE TABLE {s}.ticks (id int PRIMARY KEY, v int)")

    def write(ranges: Iterator[tuple[int, int]]) -> None:
        with psycopg.connect(pg_case.dsn, autocommit=True) as conn:
            for first, last in ranges:
                with conn.transaction():
                    conn.execute(
                        f"INSERT INTO {s}.ticks SELECT g, g FROM generate_series(%s::int, %s::int) g",
                        (first, last),
                    )

    writer = RangeWriter(write, total, per_tx=50, pause=0.01)
    topic = pg_case.topic("ticks")
    terminated = []
    with daemon(tmp_path, pg_case.config(["ticks"])) as d:
        writer.start()
        consume(pg_case.bootstrap, [topic], expect=1000, settle=0)  # streaming
        for written in (4000, 10_000):  # twice: the second start over waits longer
            writer.wait_for(written)
            terminated.append((terminate_walsender(pg_case), writer.written))
            d.wait_for_log('"source unavailable: starting over', count=len(terminated))
            d.wait_for_log('"streaming"', count=len(terminated) + 1, timeout=60)
        writer.finish()
        messages = consume(pg_case.bootstrap, [topic], expect=total, timeout=120, settle=2)
        assert d.process.poll() is None, "the daemon exited"
        assert d.terminate() == 0
    print(f"\nterminated walsenders (pid, ids written by then): {terminated}")
    assert all(written < total for _, written in terminated), "the writer had finished"
    assert_each_once(messages, total, "walsender terminated twice (PostgreSQL)")

    log = [json.loads(line) for line in d.log_text().splitlines() if line.startswith("{")]
    warnings = [x for x in log if x["event"].startswith("source unavailable")]
    print("\n".join(f"{w['event']}: {w['error']} (pause {w['pause_s']} s)" for w in warnings))
    assert [w["pause_s"] for w in warnings] == [1.0, 2.0]
    assert all(w["level"] == "warning" for w in warnings)
    started = [x for x in log if x["event"] == "started"]
    assert len(started) == 3 and len({x["pid"] for x in started}) == 1  # one process
