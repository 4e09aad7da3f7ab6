"""The schemas of whole messages: a table's key, value and envelope, the source block of
each connector, the transaction topic's, and a fallback for anything else.

Names as Debezium's ``TableSchemaBuilder`` gives them (``schema.name.adjustment.mode =
none``, its default): ``<topic_prefix>.<schema or database>.<table>.Key`` and ``.Value``;
the envelope ``<topic>.Envelope``, version 2, fields ``before``, ``after``, ``source``,
``transaction``, ``op``, ``ts_ms``, ``ts_us``, ``ts_ns`` in that order
(``Envelope.defineSchema()``, ``SchemaFactory.datatypeEnvelopeSchema``).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from cdcd.events import TableSchema
from cdcd.schemas import connect as c
from cdcd.topics import kafka_topic_name

__all__ = [
    "TRANSACTION_KEY",
    "TRANSACTION_VALUE",
    "TableSchemas",
    "inferred",
    "source_schema",
]

_OPT_STRING = c.optional(c.STRING)
_OPT_INT64 = c.optional(c.INT64)

# SchemaFactory.snapshotRecordSchema: SnapshotRecord's names, lower case.
_SNAPSHOT = c.primitive(
    "string",
    name="io.debezium.data.Enum",
    version=1,
    parameters={
        "allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,"
        "incremental"
    },
    default="false",
    is_optional=True,
)

# SchemaFactory.sourceInfoSchemaBuilder: the fields every connector's source block has.
_COMMON = [
    c.field("version", c.STRING),
    c.field("connector", c.STRING),
    c.field("name", c.STRING),
    c.field("ts_ms", c.INT64),
    c.field("snapshot", _SNAPSHOT),
    c.field("db", c.STRING),
    c.field("sequence", _OPT_STRING),
    c.field("ts_us", _OPT_INT64),
    c.field("ts_ns", _OPT_INT64),
]

# PostgresSourceInfoStructMaker
_POSTGRES = [
    c.field("schema", c.STRING),
    c.field("table", c.STRING),
    c.field("txId", _OPT_INT64),
    c.field("lsn", _OPT_INT64),
    c.field("xmin", _OPT_INT64),
    c.field("origin", _OPT_STRING),
    c.field("origin_lsn", _OPT_INT64),
]

# BinlogSourceInfoStructMaker (MySQL and MariaDB alike)
_BINLOG = [
    c.field("table", _OPT_STRING),
    c.field("server_id", c.INT64),
    c.field("gtid", _OPT_STRING),
    c.field("file", c.STRING),
    c.field("pos", c.INT64),
    c.field("row", c.INT32),
    c.field("thread", _OPT_INT64),
    c.field("query", _OPT_STRING),
]


def source_schema(connector: str) -> c.Schema:
    """``io.debezium.connector.<connector>.Source`` (postgresql, mysql or mariadb)."""
    own = _POSTGRES if connector == "postgresql" else _BINLOG
    return c.struct(_COMMON + own, name=f"io.debezium.connector.{connector}.Source", version=1)


# SchemaFactory.transactionBlockSchema
_TRANSACTION_BLOCK = c.struct(
    [
        c.field("id", c.STRING),
        c.field("total_order", c.INT64),
        c.field("data_collection_order", c.INT64),
    ],
    name="event.block",
    version=1,
    is_optional=True,
)

# SchemaFactory.transactionKeySchema / transactionValueSchema
TRANSACTION_KEY = c.struct(
    [c.field("id", c.STRING)],
    name="io.debezium.connector.common.TransactionMetadataKey",
    version=1,
)
TRANSACTION_VALUE = c.struct(
    [
        c.field("status", c.STRING),
        c.field("id", c.STRING),
        c.field("event_count", _OPT_INT64),
        c.field(
            "data_collections",
            c.array(
                c.struct(
                    [c.field("data_collection", c.STRING), c.field("event_count", c.INT64)],
                    name="event.collection",
                    version=1,
                    is_optional=True,
                ),
                is_optional=True,
            ),
        ),
        c.field("ts_ms", c.INT64),
    ],
    name="io.debezium.connector.common.TransactionMetadataValue",
    version=1,
)


@dataclass(slots=True)
class TableSchemas:
    """A table's schemas, made once per table version; ``value`` the row's struct;
    ``envelope`` the change event's; variants for rows that transforms reshaped
    (columns left out, other key columns) are made on first use and kept."""

    key: c.Schema | None
    value: c.Schema
    envelope: c.Schema
    columns: dict[str, c.Schema]
    prefix: str  # <topic_prefix>.<namespace>.<table>
    _variants: dict[Any, c.Schema] = dataclass_field(default_factory=dict)

    @classmethod
    def of(cls, table: TableSchema, topic_prefix: str, connector: str) -> TableSchemas:
        prefix = f"{topic_prefix}.{table.namespace}.{table.table}"
        columns = table.columns
        key = _struct_of(columns, table.key_columns, f"{prefix}.Key") if table.key_columns else None
        value = _struct_of(columns, tuple(columns), f"{prefix}.Value", is_optional=True)
        envelope = _envelope(value, source_schema(connector), kafka_topic_name(prefix))
        return cls(key, value, envelope, columns, prefix)

    def key_for(self, names: tuple[str, ...]) -> c.Schema:
        """The key's schema when the key holds ``names`` (message.key.columns)."""
        found = self._variants.get(("key", names))
        if found is None:
            found = self._variants["key", names] = _struct_of(
                self.columns, names, f"{self.prefix}.Key"
            )
        return found

    def envelope_for(self, names: tuple[str, ...]) -> c.Schema:
        """The envelope's schema when rows hold only ``names`` (column.exclude.list)."""
        found = self._variants.get(("envelope", names))
        if found is None:
            value = self.value_for(names)
            source = self.envelope["fields"][2]
            found = _envelope(value, source, self.envelope["name"][: -len(".Envelope")])
            self._variants["envelope", names] = found
        return found

    def value_for(self, names: tuple[str, ...]) -> c.Schema:
        """The row's struct with ``names``; a name that is not a column (a flattened row's
        ``__op``, ``__deleted``) is an optional string, as ExtractNewRecordState adds it."""
        found = self._variants.get(("value", names))
        if found is None:
            found = self._variants["value", names] = _struct_of(
                self.columns, names, f"{self.prefix}.Value", is_optional=True
            )
        return found


def _struct_of(
    columns: dict[str, c.Schema], names: tuple[str, ...], name: str, *, is_optional: bool = False
) -> c.Schema:
    fields = [c.field(column, columns.get(column, _OPT_STRING)) for column in names]
    return c.struct(fields, name=name, is_optional=is_optional)


def _envelope(value: c.Schema, source: c.Schema, topic: str) -> c.Schema:
    source_field = source if "field" in source else c.field("source", source)
    return c.struct(
        [
            c.field("before", value),
            c.field("after", value),
            source_field,
            c.field("transaction", _TRANSACTION_BLOCK),
            c.field("op", c.STRING),
            c.field("ts_ms", _OPT_INT64),
            c.field("ts_us", _OPT_INT64),
            c.field("ts_ns", _OPT_INT64),
        ],
        name=f"{topic}.Envelope",
        version=2,
    )


def inferred(value: Any) -> c.Schema:
    """A schema read off a JSON value, for messages whose schema cdcd does not know
    (notifications, schema changes, an outbox's payload, a hook's messages): structs,
    arrays, ``boolean``, ``int64``, ``float64``, ``string``; a null is an optional string.
    Unnamed: not Debezium's schemas for those (docs/schemas.md)."""
    if value is None:
        return _OPT_STRING
    if isinstance(value, bool):
        return c.BOOLEAN
    if isinstance(value, int):
        return c.INT64
    if isinstance(value, float):
        return c.FLOAT64
    if isinstance(value, dict):
        return c.struct([c.field(str(k), c.optional(inferred(v))) for k, v in value.items()])
    if isinstance(value, list):
        items = inferred(value[0]) if value else _OPT_STRING
        return c.array(c.optional(items))
    return c.STRING
