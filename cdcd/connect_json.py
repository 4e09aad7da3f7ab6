"""``[sink] schemas_enable``: JSON with the Kafka Connect schema, as Connect's
JsonConverter writes it with ``schemas.enable=true``: ``{"schema": ..., "payload": ...}``
for keys and values (a tombstone stays null, as the converter leaves it).

Schemas come per table from the source (``TableSchema`` items, ``cdcd.schemas``), are
written to JSON once per table version and per shape, and put in front of each payload
as bytes already written: the per-message cost is choosing the schema and one join.
"""

from __future__ import annotations

from typing import Any

import orjson

from cdcd.envelope import Message
from cdcd.events import ChangeEvent, TableSchema
from cdcd.schemas import connect as c
from cdcd.schemas.envelope import TRANSACTION_KEY, TRANSACTION_VALUE, TableSchemas, inferred
from cdcd.serialization import Record, dumps

__all__ = ["MessageSchemas", "SchemaJsonSerializer"]


class MessageSchemas:
    """Which schema each message's key and value has: the one place that decides it, for
    JSON with schema and for Avro alike."""

    def __init__(self, topic_prefix: str, connector: str) -> None:
        self.topic_prefix = topic_prefix
        self.connector = connector
        self.tables: dict[tuple[str, str], TableSchemas] = {}

    def add(self, table: TableSchema) -> None:
        self.tables[table.namespace, table.table] = TableSchemas.of(
            table, self.topic_prefix, self.connector
        )

    def key(self, message: Message) -> c.Schema:
        event, key = message.event, message.key
        if type(event) is ChangeEvent:
            table = self.tables.get((event.namespace, event.table))
            if table is not None and table.key is not None:
                if len(key) == len(table.key["fields"]) and all(
                    f["field"] in key for f in table.key["fields"]
                ):
                    return table.key
                return table.key_for(tuple(key))
        elif event is None and type(key) is dict and _is_transaction(message.value):
            return TRANSACTION_KEY
        return inferred(key)

    def value(self, message: Message) -> c.Schema:
        event, value = message.event, message.value
        if type(event) is ChangeEvent and type(value) is dict:
            table = self.tables.get((event.namespace, event.table))
            if table is not None:
                if "source" in value and "op" in value:  # the envelope
                    row = value["after"] if value["after"] is not None else value["before"]
                    if row is None or len(row) == len(table.columns):
                        return table.envelope
                    return table.envelope_for(tuple(row))
                return table.value_for(tuple(value))  # a flattened row
        elif event is None and _is_transaction(value):
            return TRANSACTION_VALUE
        return inferred(value)


def _is_transaction(value: Any) -> bool:
    # A BEGIN/END record of the transaction topic (TransactionMetadata makes them).
    return type(value) is dict and "status" in value and "data_collections" in value


class SchemaJsonSerializer:
    """JSON with schema for the keys (``keys``) and values (``values``) asked for, the
    others as ``JsonSerializer`` writes them."""

    def __init__(self, schemas: MessageSchemas, *, keys: bool = True, values: bool = True) -> None:
        self.schemas = schemas
        self.keys = keys
        self.values = values
        self._written: dict[int, tuple[c.Schema, bytes]] = {}  # id(schema) -> its JSON

    def _schema_json(self, schema: c.Schema) -> bytes:
        found = self._written.get(id(schema))
        if found is None or found[0] is not schema:
            if len(self._written) > 4096:  # schemas inferred per message come and go
                self._written.clear()
            found = self._written[id(schema)] = (schema, orjson.dumps(schema))
        return found[1]

    def _wrapped(self, schema: c.Schema, value: Any) -> bytes:
        return b'{"schema":' + self._schema_json(schema) + b',"payload":' + dumps(value) + b"}"

    def serialize_all(self, messages: list[Any], out: list[Record], other: Any) -> None:
        """As ``JsonSerializer.serialize_all``; ``TableSchema`` items among the messages
        give the schemas of the rows after them."""
        append, schemas = out.append, self.schemas
        keys, values = self.keys, self.values
        for message in messages:
            kind = type(message)
            if kind is not Message:
                if kind is TableSchema:
                    schemas.add(message)
                else:
                    other(message, len(out))
                continue
            key, value = message.key, message.value
            if key is not None:
                key = self._wrapped(schemas.key(message), key) if keys else dumps(key)
            if value is not None:
                value = self._wrapped(schemas.value(message), value) if values else dumps(value)
            append(Record(message.topic, key, value, message.headers))
