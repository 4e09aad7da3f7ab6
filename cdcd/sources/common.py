"""What every source does the same way: transactions assembled for the pipeline, and a
row change made into Debezium's events.

``TransactionAssembler`` counts the changes of the open source transaction, skips those
already in Kafka when a transaction cut by the stored offset is sent again, and cuts a
transaction every ``split_after_events`` changes with a ``Commit`` whose position resumes
inside it (Kafka transactions stay short, memory bounded, and a restart resumes in the
middle of the transaction). Any point between two changes is a safe cut: the source's
``cut_position(count)`` says where to resume with ``count`` changes written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cdcd.errors import ConfigError, SourceError
from cdcd.events import OP_CREATE, OP_DELETE, OP_UPDATE, ChangeEvent, Commit, SourceItem
from cdcd.positions import Position

CutPosition = Callable[[int], Position | None]  # None: no safe cut here


class TransactionAssembler:
    """``skip``: changes of the first transaction already written (a cut position's
    ``index``); that transaction is sent again whole and those are left out."""

    def __init__(self, split_after_events: int, *, skip: int = 0) -> None:
        self.split_after_events = split_after_events
        self.skip = skip
        self.count = 0  # changes of the open transaction so far, skipped ones included
        self.txid: str | None = None
        self.ts_ms = 0
        self._cut_position: CutPosition = _no_cut

    @property
    def skipping(self) -> bool:
        """Changes already in Kafka are still being left out."""
        return self.skip > 0

    def begin(self, txid: str | None, ts_ms: int, cut_position: CutPosition) -> None:
        """A transaction starts (its id, its commit time when known)."""
        self.count = 0
        self.txid = txid
        self.ts_ms = ts_ms
        self._cut_position = cut_position

    def add(self, event: ChangeEvent, items: list[SourceItem]) -> None:
        """Hand ``event`` on unless Kafka has it; cut the transaction when it is long."""
        self.count += 1
        if self.skip:
            self.skip -= 1
            return
        items.append(event)
        if self.count % self.split_after_events == 0:
            position = self._cut_position(self.count)
            if position is not None:
                items.append(Commit(position, self.txid, self.ts_ms, self.count))

    def commit(self, position: Position, items: list[SourceItem], ts_ms: int | None = None) -> None:
        """The transaction ends; ``position`` resumes after it."""
        if self.skip:
            raise SourceError(
                f"the stored offset says {self.skip + self.count} changes of transaction "
                f"{self.txid} are in Kafka, but the source sent it again with {self.count}; "
                "was source.tables changed? Set the offset past it: cdcd offsets set"
            )
        if ts_ms is not None:
            self.ts_ms = ts_ms
        items.append(Commit(position, self.txid, self.ts_ms, self.count))
        self.count = 0
        self._cut_position = _no_cut


def _no_cut(_count: int) -> Position | None:
    return None


def update_events(
    namespace: str,
    table: str,
    key: Callable[[dict[str, Any]], dict[str, Any] | None],
    before: dict[str, Any] | None,
    after: dict[str, Any],
    source: dict[str, Any],
    txid: str | None,
) -> list[ChangeEvent]:
    """The events of a row's update: an update or, like Debezium, a primary-key change
    as a delete of the old key (and its tombstone) followed by a create of the new one.
    ``key`` picks a row's primary-key columns; ``before`` is None when the server did
    not send the old row (PostgreSQL's default replica identity, key unchanged)."""
    new_key = key(after)
    old_key = key(before) if before is not None else None
    if old_key is not None and old_key != new_key:
        return [
            ChangeEvent(OP_DELETE, namespace, table, old_key, before, None, source, txid),
            ChangeEvent(OP_CREATE, namespace, table, new_key, None, after, source, txid),
        ]
    return [ChangeEvent(OP_UPDATE, namespace, table, new_key, before, after, source, txid)]


def keyless_chunks_error(table_id: str) -> SourceError:
    """The error of a chunk asked for of a table without a primary key: chunks follow the
    key (a restart resumes after the last one); such a table is read whole, in one scan
    of an initial snapshot's consistent view."""
    return SourceError(
        f"table {table_id} has no primary key: a table without a primary key can only be "
        "read in an initial snapshot's consistent view (add a primary key to read it in "
        "chunks)"
    )


def check_readable(key: str, path: str | None) -> None:
    """``ConfigError`` naming ``key`` if the file ``path`` (when set) cannot be read (a TLS
    certificate or key, checked before a connection is made)."""
    if path is not None and not os.access(path, os.R_OK):
        why = "no such file" if not os.path.exists(path) else "not readable"
        raise ConfigError(f"{key}: cannot read {path}: {why}")
