"""Snapshot scenarios on real servers, written once for every source.

Each source's test module (tests/sources/<db>/test_snapshot.py) wraps its case fixture in
a ``Target`` and runs these: the daemon, the database and Kafka are real; the checks
replay the topic as a table and compare it with the table, row for row.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support import Message, consume

SENTINEL = -1  # the last row written by a test: once it is in Kafka, everything before is


@dataclass
class Target:
    """A source under test: ``run(sql, ...)`` runs statements in one transaction on a
    connection of its own (thread-safe: one per thread); ``rows(table)`` the table now,
    by id; ``config(tables, **source)`` the daemon's configuration."""

    kind: str  # "postgres" | "mysql"
    name: str
    bootstrap: str
    namespace: str
    run: Callable[..., None]
    query: Callable[[str], list[tuple[Any, ...]]]
    config_for: Callable[..., dict[str, Any]]
    connect: Callable[[], Callable[..., None]]

    def config(self, tables: list[str], **snapshot: Any) -> dict[str, Any]:
        config = self.config_for(tables)
        config["snapshot"] = dict(snapshot)  # no mode given: the default, "initial"
        return config

    def topic(self, table: str) -> str:
        return f"{self.name}.{self.namespace}.{table}"

    def table_id(self, table: str) -> str:
        return f"{self.namespace}.{table}"

    def create(self, table: str, rows: int, *, key: str = "id INT PRIMARY KEY") -> None:
        self.run(f"CREATE TABLE {self.namespace}.{table} ({key}, v INT, note VARCHAR(40))")
        insert_rows(self.run, f"{self.namespace}.{table}", range(1, rows + 1))

    def table(self, table: str) -> dict[int, dict[str, Any]]:
        return {
            row[0]: {"id": row[0], "v": row[1], "note": row[2]}
            for row in self.query(f"SELECT id, v, note FROM {self.namespace}.{table}")
            if row[0] != SENTINEL
        }


def insert_rows(run: Callable[..., None], table: str, ids: Any, v: int = 0) -> None:
    ids = list(ids)
    for start in range(0, len(ids), 2000):
        values = ", ".join(f"({i}, {v}, 'row {i}')" for i in ids[start : start + 2000])
        run(f"INSERT INTO {table} (id, v, note) VALUES {values}")


class ChurnWriter(threading.Thread):
    """Updates, deletes and inserts rows of a table at random, until stopped; then
    writes the sentinel row."""

    def __init__(self, target: Target, table: str, ids: int, seed: int = 7) -> None:
        super().__init__(daemon=True, name="churn-writer")
        self.target, self.table, self.ids = target, f"{target.namespace}.{table}", ids
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.transactions = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            run = self.target.connect()
            next_id = self.ids + 1
            while not self.stopping.is_set():
                statements = []
                for _ in range(self.rng.randint(1, 4)):
                    key = self.rng.randint(1, self.ids)
                    roll = self.rng.random()
                    if roll < 0.5:
                        statements.append(f"UPDATE {self.table} SET v = v + 1 WHERE id = {key}")
                    elif roll < 0.7:
                        statements.append(f"DELETE FROM {self.table} WHERE id = {key}")
                    else:
                        statements.append(
                            f"INSERT INTO {self.table} (id, v, note) VALUES ({next_id}, 1, 'new')"
                        )
                        next_id += 1
                run(*statements)
                self.transactions += 1
                time.sleep(0.002)
        except BaseException as exc:  # seen by the test
            self.error = exc

    def finish(self) -> None:
        self.stopping.set()
        self.join(30)
        assert self.error is None, f"the writer failed: {self.error!r}"
        self.target.run(f"INSERT INTO {self.table} (id, v, note) VALUES ({SENTINEL}, 0, 'end')")


def replay(target: Target, table: str, *, expect: int, timeout: float = 120) -> tuple[
    dict[int, dict[str, Any]], list[Message]
]:
    """The table as its topic says it is, read until the sentinel row arrived."""
    topic = target.topic(table)
    deadline = time.monotonic() + timeout
    while True:
        messages = consume(target.bootstrap, [topic], expect=expect, timeout=10, settle=0.2)
        state: dict[int, dict[str, Any]] = {}
        seen_sentinel = False
        for message in messages:
            if message.value is None:
                continue  # a tombstone after a delete
            op = message.value["op"]
            key = message.key["id"]
            if op == "d":
                state.pop(key, None)
            else:
                after = message.value["after"]
                state[key] = {"id": after["id"], "v": after["v"], "note": after["note"]}
            seen_sentinel = seen_sentinel or key == SENTINEL
        if seen_sentinel:
            state.pop(SENTINEL, None)
            return state, messages
        if time.monotonic() > deadline:
            raise AssertionError(f"the sentinel row never reached {topic}: {len(messages)} records")
        expect = len(messages) + 1


def reads(messages: list[Message]) -> Counter[int]:
    """How often each row was read (``op = "r"``)."""
    return Counter(
        m.key["id"] for m in messages if m.value is not None and m.value["op"] == "r"
    )


def snapshot_marks(messages: list[Message]) -> list[str]:
    return [m.value["source"]["snapshot"] for m in messages if m.value and m.value["op"] == "r"]


def assert_replay_equals(state: dict[int, Any], table: dict[int, Any], messages: list[Message]) -> None:
    """The replayed topic equals the table; otherwise the first rows that differ, with
    every record of each."""
    if state == table:
        return
    wrong = sorted(k for k in set(state) | set(table) if state.get(k) != table.get(k))
    lines = [f"{len(wrong)} rows differ between the topic and the table:"]
    for key in wrong[:5]:
        lines.append(f"  id {key}: topic {state.get(key)} table {table.get(key)}")
        for m in messages:
            if m.key and m.key.get("id") == key and m.value is not None:
                v = m.value
                lines.append(
                    f"    {m.offset}: {v['op']} after={v['after']} snapshot={v['source'].get('snapshot')}"
                    f" lsn/pos={v['source'].get('lsn') or v['source'].get('pos')}"
                )
    raise AssertionError("\n".join(lines))
