"""Snapshots of PostgreSQL tables, end to end (the scenarios: tests/snapshot_cases.py)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from snapshot_cases import (  # noqa: F401 - the scenarios, run here for PostgreSQL
    test_additional_conditions_pause_resume_stop_and_refusals,
    test_an_incremental_snapshot_on_a_signal_under_updates_and_deletes,
    test_an_initial_snapshot_reads_a_table_without_a_key_whole,
    test_composite_keys_and_a_column_added_during_an_incremental_snapshot,
    test_initial_snapshot_then_the_stream_under_a_concurrent_writer,
    test_killed_during_an_incremental_snapshot_it_resumes_after_the_last_chunk,
    test_killed_during_the_initial_snapshot_it_resumes_after_the_last_chunk,
    test_memory_stays_bounded_over_a_large_table,
    test_the_snapshot_is_refused_by_a_stopped_daemon,
    test_two_tables_read_at_once_with_debeziums_marks,
)
from snapshot_support import Target


@pytest.fixture
def target(pg_case) -> Target:
    def run(*statements: str) -> None:
        pg_case.execute(*statements)

    def query(sql: str) -> list[tuple[Any, ...]]:
        return list(pg_case.conn.execute(sql).fetchall())

    def connect():
        conn = psycopg.connect(pg_case.dsn, autocommit=True)

        def run_here(*statements: str) -> None:
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)

        return run_here

    return Target(
        "postgres",
        pg_case.name,
        pg_case.bootstrap,
        pg_case.schema,
        run,
        query,
        lambda tables: pg_case.config(tables),
        connect,
    )


def test_a_role_that_cannot_write_snapshots_in_watermarked_chunks_under_a_writer(
    target: Target, pg_case, pg_dsn, tmp_path
):
    """A role with SELECT and REPLICATION only (the slot and publication made by an
    administrator, source.create_slot = false): no exported snapshot, so the initial
    snapshot is read in watermarked chunks while streaming from the slot, read-only."""
    from snapshot_support import ChurnWriter, assert_replay_equals, reads, replay
    from support import daemon

    s, role = pg_case.schema, f"{pg_case.name}_ro"
    target.create("stock", 3000)
    slot = f"cdcd_{pg_case.name}"
    pg_case.execute(
        f"CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'ro-secret'",
        f"GRANT USAGE ON SCHEMA {s} TO {role}",
        f"GRANT SELECT ON {s}.stock TO {role}",
        f"CREATE PUBLICATION {slot} FOR TABLE {s}.stock",
    )
    pg_case.conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    config = target.config(["stock"], chunk_size=250)
    config["source"]["dsn"] = pg_dsn.replace("postgres:postgres@", f"{role}:ro-secret@")
    config["source"]["create_slot"] = False
    config["source"]["create_publication"] = False
    writer = ChurnWriter(target, "stock", 3000, seed=5)
    try:
        with daemon(tmp_path, config, start=False) as d:
            writer.start()
            d.start(wait_for="snapshot completed", timeout=120)
            writer.finish()
            state, messages = replay(target, "stock", expect=3000)
            log = d.log_text()
        assert '"how":"watermarked chunks"' in log
        assert_replay_equals(state, target.table("stock"), messages)
        assert max(reads(messages).values()) == 1
    finally:
        writer.stopping.set()
        pg_case.conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s AND NOT active",
            (slot,),
        )
        pg_case.execute(
            f"DROP PUBLICATION IF EXISTS {slot}", f"DROP OWNED BY {role}", f"DROP ROLE {role}"
        )
