"""Debezium's change-event envelope, as JSON without schema, encoded with orjson.

Key: the primary-key columns as a JSON object (no key for a table without one).
Value: ``before``, ``after``, ``source``, ``transaction``, ``op``, ``ts_ms`` (and the
``ts_us``/``ts_ns`` Debezium 2.x added). A delete is followed by a tombstone (same key,
null value) unless turned off, so that compacted topics forget the row.

With transaction metadata on (Debezium's ``provide.transaction.metadata``), each change
carries ``transaction: {id, total_order, data_collection_order}`` and every source
transaction is framed by BEGIN and END records on the transaction topic.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdcd import __version__
from cdcd.events import OP_DELETE, ChangeEvent, Commit, SchemaChange

# What Kafka allows in a topic name (org.apache.kafka.common.internals.Topic), and its
# longest; "." and ".." are reserved.
KAFKA_TOPIC_CHARS = "a-zA-Z0-9._-"
MAX_TOPIC_LENGTH = 249
_ILLEGAL_TOPIC_CHAR = re.compile(f"[^{KAFKA_TOPIC_CHARS}]")


def _underscores(match: re.Match[str]) -> str:
    # Debezium replaces each Java char, so a character beyond the BMP (two UTF-16 units)
    # becomes two underscores: the same topic as a Debezium connector writes.
    return "__" if ord(match.group()) > 0xFFFF else "_"


def kafka_topic_name(name: str) -> str:
    """``name`` as a valid Kafka topic name, as Debezium's topic naming strategy makes it
    (``sanitizedTopicName``): each character outside ``[a-zA-Z0-9._-]`` replaced by
    ``_``, cut to 249 characters; ``.`` and ``..`` become ``_`` and ``__``."""
    topic = _ILLEGAL_TOPIC_CHAR.sub(_underscores, name)[:MAX_TOPIC_LENGTH]
    if topic in (".", ".."):
        return "_" * len(topic)
    return topic


def _dumps(value: Any) -> bytes:
    # orjson (3.12 and later) keeps its whole growth buffer, 4 KiB at least, behind every
    # result; records wait in batches, so a compact copy keeps memory to what they hold.
    return bytes(memoryview(orjson.dumps(value)))


@dataclass(slots=True)
class Record:
    """One Kafka record, ready to send."""

    topic: str
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class _OpenTransaction:
    """The metadata counters of the source transaction being encoded."""

    id: str
    ts_ms: int
    total_order: int = 0
    data_collections: dict[str, int] = field(default_factory=dict)


class EnvelopeEncoder:
    """Turns ``ChangeEvent``s into Kafka records for one daemon.

    ``transaction_topic`` turns transaction metadata on (None: off, ``transaction: null``).
    """

    def __init__(
        self,
        topic_prefix: str,
        connector: str,
        *,
        tombstones_on_delete: bool = True,
        skipped_operations: frozenset[str] = frozenset(),
        transaction_topic: str | None = None,
    ) -> None:
        self.topic_prefix = topic_prefix
        self.tombstones_on_delete = tombstones_on_delete
        self.skipped_operations = skipped_operations
        self.transaction_topic = transaction_topic
        self._source_common = {"version": __version__, "connector": connector, "name": topic_prefix}
        self._topics: dict[tuple[str, str], str] = {}
        self._transaction: _OpenTransaction | None = None

    def topic_for(self, namespace: str, table: str) -> str:
        """``<topic_prefix>.<schema or database>.<table>``, as Debezium names it: made a
        valid Kafka name by ``kafka_topic_name`` (once per table, then cached)."""
        key = (namespace, table)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = kafka_topic_name(f"{self.topic_prefix}.{namespace}.{table}")
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
        key = _dumps(event.key) if event.key is not None else None
        value = self.envelope(event, now_ns)
        if self.transaction_topic is not None and event.txid is not None:
            value["transaction"] = self._transaction_block(event, out)
        out.append(Record(topic, key, _dumps(value)))
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
        key = _dumps({"databaseName": change.namespace})
        out.append(Record(self.topic_prefix, key, _dumps(value)))

    # -- transaction metadata ----------------------------------------------------------

    def _transaction_block(self, event: ChangeEvent, out: list[Record]) -> dict[str, Any]:
        assert self.transaction_topic is not None and event.txid is not None
        transaction = self._transaction
        if transaction is None or transaction.id != event.txid:
            transaction = self._transaction = _OpenTransaction(
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

    def _boundary(self, status: str, transaction: _OpenTransaction) -> Record:
        assert self.transaction_topic is not None
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
        key = _dumps({"id": transaction.id})
        return Record(self.transaction_topic, key, _dumps(value))

    def commit(self, commit: Commit, out: list[Record], *, partial: bool = False) -> None:
        """At the end of a source transaction, its END record (with metadata on).

        ``partial``: the commit only cuts a huge transaction; the transaction goes on.
        A transaction without any change event (all filtered out) has neither BEGIN nor END.
        """
        if self.transaction_topic is None or partial:
            return
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            if commit.ts_ms:
                transaction.ts_ms = commit.ts_ms
            out.append(self._boundary("END", transaction))

    def transaction_state(self) -> dict[str, Any] | None:
        """The open transaction's counters, to store with a position that cuts it."""
        transaction = self._transaction
        if transaction is None:
            return None
        return {
            "id": transaction.id,
            "ts_ms": transaction.ts_ms,
            "total_order": transaction.total_order,
            "data_collections": dict(transaction.data_collections),
        }

    def restore_transaction(self, state: dict[str, Any] | None) -> None:
        """Continue a transaction cut by a stored position (no second BEGIN for it)."""
        if state is None or self.transaction_topic is None:
            self._transaction = None
            return
        self._transaction = _OpenTransaction(
            str(state["id"]),
            int(state.get("ts_ms") or 0),
            int(state.get("total_order") or 0),
            {str(k): int(v) for k, v in (state.get("data_collections") or {}).items()},
        )
