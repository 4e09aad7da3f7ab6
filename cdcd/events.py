"""The core vocabulary: row changes and transaction boundaries, free of any driver.

A source yields, in commit order, ``ChangeEvent``s and, after the last event of each
transaction, a ``Commit`` carrying the position to resume after it. Events of one
transaction are never interleaved with another's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdcd.positions import Position

# Debezium's operation codes.
OP_CREATE = "c"
OP_UPDATE = "u"
OP_DELETE = "d"
OP_TRUNCATE = "t"
OP_READ = "r"  # snapshot


@dataclass(slots=True)
class ChangeEvent:
    """One row change, values already encoded as Debezium encodes them.

    ``namespace`` is the PostgreSQL schema or the MySQL database; ``key`` holds the
    primary-key columns (None for a table without one, and for TRUNCATE); ``source``
    holds the connector-specific fields of the envelope's ``source`` block
    (``ts_ms``, ``lsn``, ``gtid``, ...), which the envelope completes with the common ones.
    """

    op: str
    namespace: str
    table: str
    key: dict[str, Any] | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: dict[str, Any]
    txid: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by value, cheaply (a source may decode in a worker process).
        return ChangeEvent, (
            self.op,
            self.namespace,
            self.table,
            self.key,
            self.before,
            self.after,
            self.source,
            self.txid,
        )


@dataclass(slots=True)
class SchemaChange:
    """A DDL statement, published to the ``<topic_prefix>`` schema-change topic.

    ``namespace`` is the database it ran in (the record's key, as Debezium keys it);
    ``source`` the connector-specific source fields, like ``ChangeEvent.source``.
    """

    namespace: str
    ddl: str
    source: dict[str, Any]
    table_changes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class TableSchema:
    """The Kafka Connect schema of a table's columns (``cdcd.schemas``), yielded by a source
    before the first change of each version of a table (a new Relation message, a new
    TABLE_MAP): serializers that write schemas keep the last one of each table.

    ``columns``: each column's schema by name, in the table's order; ``key_columns``: the
    primary key's columns (empty: the table has none). Plain dicts: they cross a reader
    process's pipe as JSON.
    """

    namespace: str
    table: str
    columns: dict[str, Any]
    key_columns: tuple[str, ...] = ()


@dataclass(slots=True)
class Commit:
    """End of a transaction (or of a safe chunk of a huge one).

    Everything yielded before it, and it, may be acknowledged to the source once Kafka
    holds it: ``position`` is where to resume so as to read what comes after.
    """

    position: Position
    txid: str | None = None
    ts_ms: int = 0
    event_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Notification:
    """A Debezium notification (``aggregate_type`` "Initial Snapshot" or "Incremental
    Snapshot", ``type`` STARTED, IN_PROGRESS, ...), published to the notification topic
    in the same Kafka transaction as the rows it speaks of."""

    id: str
    aggregate_type: str
    type: str
    additional_data: dict[str, str]
    timestamp: int


# ``Commit.extra`` of a heartbeat: a position without events (PostgreSQL: WAL that held
# nothing for this daemon), stored so that the source may release what lies before it.
HEARTBEAT: dict[str, Any] = {"heartbeat": True}


SourceItem = ChangeEvent | SchemaChange | Commit | Notification | TableSchema
