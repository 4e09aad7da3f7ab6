"""A snapshot's progress: what is stored with the offset so that a restart resumes it.

Stored as ``StoredOffset.snapshot`` (JSON), in the same Kafka transaction as the rows it
counts: ``pending`` the tables not finished, in order; ``keys`` the last key written of
each table begun; ``rows`` the rows written so far. A restart reads every pending table
after its key, so at most the chunk being written when it stopped is read again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["initial", "incremental", "blocking"]


@dataclass(slots=True)
class Progress:
    kind: Kind
    pending: list[str]  # table ids ("schema.table") not finished, in order
    keys: dict[str, list[Any]] = field(default_factory=dict)  # last key written, by table
    rows: int = 0
    where: dict[str, str] = field(default_factory=dict)  # additional-conditions, by table
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    total: int = 0  # tables at the start
    paused: bool = False
    table_rows: dict[str, int] = field(default_factory=dict)  # rows written, by table

    @classmethod
    def start(
        cls,
        kind: Kind,
        tables: list[str],
        where: dict[str, str] | None = None,
        id: str | None = None,
    ) -> Progress:
        progress = cls(kind, list(tables), where=dict(where or {}), total=len(tables))
        if id is not None:
            progress.id = id
        return progress

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "pending": list(self.pending),
            "keys": dict(self.keys),
            "rows": self.rows,
            "where": dict(self.where),
            "started_ms": self.started_ms,
            "total": self.total,
            "paused": self.paused,
            "table_rows": dict(self.table_rows),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        """Rebuild stored progress; ``ValueError`` when it is not cdcd's."""
        try:
            return cls(
                kind=data["kind"],
                pending=[str(t) for t in data["pending"]],
                keys={str(k): list(v) for k, v in (data.get("keys") or {}).items()},
                rows=int(data.get("rows") or 0),
                where={str(k): str(v) for k, v in (data.get("where") or {}).items()},
                id=str(data.get("id") or uuid.uuid4()),
                started_ms=int(data.get("started_ms") or 0),
                total=int(data.get("total") or len(data["pending"])),
                paused=bool(data.get("paused")),
                table_rows={str(k): int(v) for k, v in (data.get("table_rows") or {}).items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a cdcd snapshot progress: {data!r} ({exc})") from None

    def advance(self, table: str, last_key: list[Any] | None, rows: int, done: bool) -> None:
        """A chunk of ``table`` written (in the records before this progress)."""
        self.rows += rows
        self.table_rows[table] = self.table_rows.get(table, 0) + rows
        if last_key is not None:
            self.keys[table] = last_key
        if done:
            if table in self.pending:
                self.pending.remove(table)
            self.keys.pop(table, None)

    @property
    def finished(self) -> bool:
        return not self.pending

    def drop(self, tables: list[str]) -> None:
        """Tables no longer to read (``stop-snapshot`` naming them)."""
        for table in tables:
            if table in self.pending:
                self.pending.remove(table)
            self.keys.pop(table, None)

    def add(self, tables: list[str], where: dict[str, str]) -> list[str]:
        """Tables to read too (another ``execute-snapshot`` while this one runs); the ones
        added."""
        added = [t for t in tables if t not in self.pending]
        self.pending.extend(added)
        self.where.update(where)
        self.total += len(added)
        return added
