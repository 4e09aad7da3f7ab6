"""Debezium's change-event envelope, as JSON without schema, encoded with orjson.

Key: the primary-key columns as a JSON object (no key for a table without one).
Value: ``before``, ``after``, ``source``, ``transaction``, ``op``, ``ts_ms`` (and the
``ts_us``/``ts_ns`` Debezium 2.x added). A delete is followed by a tombstone (same key,
null value) unless turned off, so that compacted topics forget the row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from cdcd import __version__
from cdcd.events import OP_DELETE, ChangeEvent, SchemaChange


@dataclass(slots=True)
class Record:
    """One Kafka record, ready to send."""

    topic: str
    key: bytes | None
    value: bytes | None


class EnvelopeEncoder:
    """Turns ``ChangeEvent``s into Kafka records for one daemon."""

    def __init__(
        self,
        topic_prefix: str,
        connector: str,
        *,
        tombstones_on_delete: bool = True,
        skipped_operations: frozenset[str] = frozenset(),
    ) -> None:
        self.topic_prefix = topic_prefix
        self.tombstones_on_delete = tombstones_on_delete
        self.skipped_operations = skipped_operations
        self._source_common = {"version": __version__, "connector": connector, "name": topic_prefix}
        self._topics: dict[tuple[str, str], str] = {}

    def topic_for(self, namespace: str, table: str) -> str:
        """``<topic_prefix>.<schema or database>.<table>``, as Debezium names it."""
        key = (namespace, table)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = f"{self.topic_prefix}.{namespace}.{table}"
        return topic

    def envelope(self, event: ChangeEvent, now_ns: int | None = None) -> dict[str, Any]:
        """The envelope's value as a dict (before JSON encoding)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        return {
            "before": event.before,
            "after": event.after,
            "source": {**self._source_common, **event.source},
            "transaction": None,
            "op": event.op,
            "ts_ms": now_ns // 1_000_000,
            "ts_us": now_ns // 1_000,
            "ts_ns": now_ns,
        }

    def encode(
        self, event: ChangeEvent | SchemaChange, out: list[Record], now_ns: int | None = None
    ) -> None:
        """Append the records for ``event`` (the change, and a tombstone after a delete)."""
        if type(event) is SchemaChange:
            self.encode_schema_change(event, out, now_ns)
            return
        assert isinstance(event, ChangeEvent)
        if event.op in self.skipped_operations:
            return
        topic = self.topic_for(event.namespace, event.table)
        key = orjson.dumps(event.key) if event.key is not None else None
        out.append(Record(topic, key, orjson.dumps(self.envelope(event, now_ns))))
        if event.op == OP_DELETE and self.tombstones_on_delete and key is not None:
            out.append(Record(topic, key, None))

    def encode_schema_change(
        self, change: SchemaChange, out: list[Record], now_ns: int | None = None
    ) -> None:
        """A DDL statement on the ``<topic_prefix>`` topic, keyed by database, as Debezium's
        MySQL connector writes its schema-change events."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        value = {
            "source": {**self._source_common, **change.source},
            "ts_ms": now_ns // 1_000_000,
            "databaseName": change.namespace,
            "schemaName": None,
            "ddl": change.ddl,
            "tableChanges": change.table_changes,
        }
        key = orjson.dumps({"databaseName": change.namespace})
        out.append(Record(self.topic_prefix, key, orjson.dumps(value)))
