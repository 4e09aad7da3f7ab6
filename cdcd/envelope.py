"""Debezium's change-event envelope: what a change event becomes before it is serialised.

Key: the primary-key columns (no key for a table without one). Value: ``before``,
``after``, ``source``, ``transaction``, ``op``, ``ts_ms`` (and the ``ts_us``/``ts_ns``
Debezium 2.x added). The source block is the event's own fields completed with the
common ones (``version``, ``connector``, ``name``, ``snapshot``); events that share one
source dict (a snapshot chunk's rows) share one block, which transforms never change.

The builder makes ``Message``s; transforms (``cdcd.transforms``) route and reshape them
(topics, transaction metadata, tombstones); a serializer (``cdcd.serialization``) turns
them into Kafka records. ``cdcd.encoder`` runs the three in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdcd import __version__
from cdcd.events import ChangeEvent, Commit, Notification, SchemaChange, SourceItem, TableSchema
from cdcd.offsets import inside_transaction


@dataclass(slots=True)
class Message:
    """One message on its way to Kafka, not serialised yet.

    ``key`` and ``value`` are JSON values (``value`` None: a tombstone); ``event`` is the
    change it was made from (None for transaction boundaries), for transforms that look
    at the row or the operation.
    """

    topic: str
    key: Any
    value: Any
    headers: list[tuple[str, bytes]] | None = None
    event: ChangeEvent | SchemaChange | None = None


@dataclass(slots=True)
class CommitMark:
    """Where a source commit falls among the messages; ``partial``: it only cuts a huge
    transaction, and then ``transaction`` holds the open transaction's metadata counters."""

    commit: Commit
    partial: bool
    transaction: dict[str, Any] | None = None


class EnvelopeBuilder:
    """Turns the events of one daemon into envelope messages (their topic and transaction
    block are the transforms' to set: ``TableTopics``, ``TransactionMetadata``)."""

    def __init__(
        self,
        topic_prefix: str,
        connector: str,
        notification_topic: str | None = None,
        *,
        table_schemas: bool = False,
    ) -> None:
        self.topic_prefix = topic_prefix
        self.notification_topic = notification_topic  # None: notifications are dropped
        self.notices = 0  # notifications among the items of the last messages() call
        # TableSchema items are passed on, in place, to a serializer that writes schemas
        # (True), or dropped; ``tables``: how many the last messages() call saw.
        self.table_schemas = table_schemas
        self.tables = 0
        # The last call's change events by (namespace, table, operation), for the metrics.
        self.counts: dict[tuple[str, str, str], int] = {}
        # The source block's common fields; a snapshot event's own "snapshot" overrides.
        self._source_common = {
            "version": __version__,
            "connector": connector,
            "name": topic_prefix,
            "snapshot": "false",
        }

    def messages(
        self, items: list[SourceItem], now_ns: int
    ) -> list[Message | CommitMark | TableSchema]:
        """The messages of a chunk, in order, with a ``CommitMark`` where each commit falls
        (one loop a chunk: this is the hot path, so the envelope is built inline)."""
        out: list[Message | CommitMark | TableSchema] = []
        append = out.append
        self.notices = self.tables = 0
        counts: dict[tuple[str, str, str], int] = {}
        self.counts = counts
        # Consecutive changes mostly share a table and an operation: counted a run at a time.
        run_ns = run_table = run_op = ""
        run = 0
        common = self._source_common
        ts_ms, ts_us = now_ns // 1_000_000, now_ns // 1_000
        # Events that share a source dict (a snapshot chunk's rows) share its block too.
        last_source: Any = None
        block: dict[str, Any] = {}
        for item in items:
            kind = type(item)
            if kind is ChangeEvent:
                if item.source is not last_source:  # type: ignore[union-attr]
                    last_source = item.source  # type: ignore[union-attr]
                    block = {**common, **last_source}
                op = item.op  # type: ignore[union-attr]
                # Identity, not equality: a run split at equal strings still adds up right.
                if op is not run_op or item.table is not run_table or item.namespace is not run_ns:  # type: ignore[union-attr]
                    if run:
                        seen = (run_ns, run_table, run_op)
                        counts[seen] = counts.get(seen, 0) + run
                    run_ns, run_table, run_op, run = item.namespace, item.table, op, 0  # type: ignore[union-attr]
                run += 1
                value = {
                    "before": item.before,  # type: ignore[union-attr]
                    "after": item.after,  # type: ignore[union-attr]
                    "source": block,
                    "transaction": None,
                    "op": op,
                    "ts_ms": ts_ms,
                    "ts_us": ts_us,
                    "ts_ns": now_ns,
                }
                append(Message("", item.key, value, None, item))  # type: ignore[union-attr, arg-type]
            elif kind is Commit:
                append(CommitMark(item, inside_transaction(item.position)))  # type: ignore[arg-type, union-attr]
            elif kind is Notification:
                self.notices += 1
                if self.notification_topic:
                    append(self.notification(item))  # type: ignore[arg-type]
            elif kind is TableSchema:
                self.tables += 1
                if self.table_schemas:
                    append(item)  # type: ignore[arg-type]
            else:
                assert isinstance(item, SchemaChange)
                append(self.schema_change(item, now_ns))
        if run:
            seen = (run_ns, run_table, run_op)
            counts[seen] = counts.get(seen, 0) + run
        return out

    def notification(self, notice: Notification) -> Message:
        """A notification as Debezium's sink channel writes it, keyed by the topic prefix
        (the notification topic may be shared by many daemons)."""
        value = {
            "id": notice.id,
            "aggregate_type": notice.aggregate_type,
            "type": notice.type,
            "additional_data": notice.additional_data,
            "timestamp": notice.timestamp,
        }
        assert self.notification_topic is not None
        return Message(self.notification_topic, self.topic_prefix, value, None, None)

    def schema_change(self, change: SchemaChange, now_ns: int) -> Message:
        """A DDL statement on the ``<topic_prefix>`` topic, keyed by database, as Debezium's
        MySQL connector writes its schema-change events."""
        value = {
            "source": {**self._source_common, **change.source},
            "ts_ms": now_ns // 1_000_000,
            "databaseName": change.namespace,
            "schemaName": None,
            "ddl": change.ddl,
            "tableChanges": change.table_changes,
        }
        return Message(self.topic_prefix, {"databaseName": change.namespace}, value, None, change)
