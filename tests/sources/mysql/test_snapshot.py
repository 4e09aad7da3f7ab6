"""Snapshots of MySQL/MariaDB tables, end to end (the scenarios: tests/snapshot_cases.py)."""

from __future__ import annotations

from typing import Any

import pytest
from snapshot_cases import (  # noqa: F401 - the scenarios, run here for MySQL and MariaDB
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

from .conftest import connect as my_connect


@pytest.fixture
def target(my_case) -> Target:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with my_case.conn.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())

    def connect():
        conn = my_connect(my_case.url)

        def run_here(*statements: str) -> None:
            with conn.cursor() as cursor:
                cursor.execute("BEGIN")
                for statement in statements:
                    cursor.execute(statement)
                cursor.execute("COMMIT")

        return run_here

    return Target(
        "mysql",
        my_case.name,
        my_case.bootstrap,
        my_case.database,
        my_case.execute,
        query,
        lambda tables: my_case.config(tables),
        connect,
    )
