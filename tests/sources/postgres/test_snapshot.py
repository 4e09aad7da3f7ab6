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
