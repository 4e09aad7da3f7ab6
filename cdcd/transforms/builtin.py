"""The built-in transforms: Debezium's connector rules that shape what is published.

- ``DropOperations``: ``skipped.operations`` (c, u, d, t), before anything counts them.
- ``TableTopics``: the default topic naming, ``<topic_prefix>.<schema>.<table>``.
- ``TransactionMetadata``: ``provide.transaction.metadata``: each change's ``transaction``
  block, and BEGIN/END messages on the transaction topic.
- ``DeleteTombstones``: ``tombstones.on.delete``: a delete is followed by a tombstone
  (same key, null value), so that compacted topics forget the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdcd.envelope import Message
from cdcd.events import OP_DELETE, ChangeEvent
from cdcd.topics import TopicNaming
from cdcd.transforms import CommitMark, Item


class DropOperations:
    def __init__(self, operations: frozenset[str]) -> None:
        self.operations = operations
        self.dropped = 0  # change events dropped by the last apply() (the metrics count them)

    def apply(self, items: list[Item]) -> list[Item]:
        skipped = self.operations
        kept = [
            item
            for item in items
            if type(item) is not Message
            or type(item.event) is not ChangeEvent
            or item.event.op not in skipped
        ]
        self.dropped = len(items) - len(kept)
        return kept


class TableTopics:
    def __init__(self, naming: TopicNaming) -> None:
        self.naming = naming

    def apply(self, items: list[Item]) -> list[Item]:
        for_table = self.naming.for_table
        last_namespace: str | None = None
        last_table: str | None = None
        topic = ""
        for item in items:
            if type(item) is Message and not item.topic:
                event = item.event
                assert type(event) is ChangeEvent
                namespace, table = event.namespace, event.table
                # Consecutive changes mostly share a table (compared without a tuple an
                # event: 45-70 ns an event less).
                if table != last_table or namespace != last_namespace:
                    topic = for_table(namespace, table)
                    last_namespace, last_table = namespace, table
                item.topic = topic
        return items


class DeleteTombstones:
    def apply(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        append = out.append
        for item in items:
            append(item)
            if type(item) is Message and item.key is not None:
                event = item.event
                if type(event) is ChangeEvent and event.op == OP_DELETE and item.value is not None:
                    append(Message(item.topic, item.key, None, None, event))
        return out


@dataclass(slots=True)
class _OpenTransaction:
    """The metadata counters of the source transaction being published."""

    id: str
    ts_ms: int
    total_order: int = 0
    data_collections: dict[str, int] = field(default_factory=dict)


class TransactionMetadata:
    """``restore``: the counters of a transaction cut by the stored offset, continued (no
    second BEGIN for it). A transaction without any change event (all filtered out) has
    neither BEGIN nor END."""

    def __init__(self, topic: str, *, restore: dict[str, Any] | None = None) -> None:
        self.topic = topic
        self._open: _OpenTransaction | None = None
        if restore is not None:
            self._open = _OpenTransaction(
                str(restore["id"]),
                int(restore.get("ts_ms") or 0),
                int(restore.get("total_order") or 0),
                {str(k): int(v) for k, v in (restore.get("data_collections") or {}).items()},
            )

    def apply(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for item in items:
            if type(item) is CommitMark:
                self._commit(item, out)
                out.append(item)
                continue
            if type(item) is Message:
                event = item.event
                if type(event) is ChangeEvent and event.txid is not None:
                    item.value["transaction"] = self._block(event, out)
            out.append(item)
        return out

    def _block(self, event: ChangeEvent, out: list[Item]) -> dict[str, Any]:
        assert event.txid is not None
        transaction = self._open
        if transaction is None or transaction.id != event.txid:
            transaction = self._open = _OpenTransaction(
                event.txid, int(event.source.get("ts_ms") or 0)
            )
            out.append(self._boundary("BEGIN", transaction))
        collection = f"{event.namespace}.{event.table}"
        transaction.total_order += 1
        order = transaction.data_collections.get(collection, 0) + 1
        transaction.data_collections[collection] = order
        return {
            "id": transaction.id,
            "total_order": transaction.total_order,
            "data_collection_order": order,
        }

    def _commit(self, mark: CommitMark, out: list[Item]) -> None:
        if mark.partial:
            # The position cuts the transaction: its counters go with the offset.
            mark.transaction = self._state()
            return
        transaction, self._open = self._open, None
        if transaction is not None:
            if mark.commit.ts_ms:
                transaction.ts_ms = mark.commit.ts_ms
            out.append(self._boundary("END", transaction))

    def _state(self) -> dict[str, Any] | None:
        transaction = self._open
        if transaction is None:
            return None
        return {
            "id": transaction.id,
            "ts_ms": transaction.ts_ms,
            "total_order": transaction.total_order,
            "data_collections": dict(transaction.data_collections),
        }

    def _boundary(self, status: str, transaction: _OpenTransaction) -> Message:
        end = status == "END"
        value = {
            "status": status,
            "id": transaction.id,
            "ts_ms": transaction.ts_ms,
            "event_count": transaction.total_order if end else None,
            "data_collections": [
                {"data_collection": name, "event_count": count}
                for name, count in transaction.data_collections.items()
            ]
            if end
            else None,
        }
        return Message(self.topic, {"id": transaction.id}, value)
