"""JSON with schema and Avro over the encoder's real stages: a table's schema item, its
changes, a delete's tombstone, transaction metadata; the configuration keys."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from decimal import Decimal
from typing import Any

import fastavro
import orjson
import pytest

from cdcd.config import parse_config
from cdcd.connect_avro import AvroSerializer
from cdcd.encoder import EnvelopeEncoder
from cdcd.encoding import decimal_base64
from cdcd.errors import ConfigError
from cdcd.events import ChangeEvent, Commit, TableSchema
from cdcd.positions import PgPosition
from cdcd.schemas import connect as c
from cdcd.schemas.avro import avro_schema

COLUMNS = {
    "id": c.INT32,
    "price": c.optional(c.decimal(2, 10)),
    "photo": c.optional(c.BYTES),
    "ratio": c.optional(c.FLOAT64),
}
TABLE = TableSchema("public", "orders", COLUMNS, ("id",))


def _config(**sink: Any) -> Any:
    return parse_config(
        {
            "name": "shop",
            "source": {"kind": "postgres", "dsn": "postgresql://u@h/db"},
            "sink": {
                "kind": "kafka",
                "bootstrap_servers": "k:9092",
                "topic_prefix": "shop",
                **sink,
            },
            "transactions": {"metadata": True},
        }
    )


def _items() -> list[Any]:
    source = {"ts_ms": 1, "db": "db", "schema": "public", "table": "orders", "txId": 7, "lsn": 9}
    row = {
        "id": 1,
        "price": decimal_base64(Decimal("4.06"), 2),
        "photo": base64.b64encode(b"\x00\xff").decode(),
        "ratio": "NaN",
    }
    return [
        TABLE,
        ChangeEvent("c", "public", "orders", {"id": 1}, None, row, source, "7:9"),
        ChangeEvent("d", "public", "orders", {"id": 1}, row, None, source, "7:9"),
        Commit(PgPosition(10), "7:9", 1),
    ]


def _fields(schema: dict[str, Any]) -> list[str]:
    return [f["field"] for f in schema["fields"]]


def test_json_with_schema_for_keys_and_values():
    encoder = EnvelopeEncoder.from_config(_config(schemas_enable=True), "postgresql")
    encoded = encoder.encode(_items(), 1_000_000_000)
    assert encoded.events == 2  # the schema item is no event
    by_topic: dict[str, list[Any]] = {}
    for record in encoded.records:
        by_topic.setdefault(record.topic, []).append(record)
    create, delete, tombstone = by_topic["shop.public.orders"]
    key = orjson.loads(create.key)
    assert key == {
        "schema": {
            "type": "struct",
            "fields": [{"type": "int32", "optional": False, "field": "id"}],
            "optional": False,
            "name": "shop.public.orders.Key",
        },
        "payload": {"id": 1},
    }
    value = orjson.loads(create.value)
    schema = value["schema"]
    assert schema["name"] == "shop.public.orders.Envelope" and schema["version"] == 2
    assert _fields(schema) == [
        "before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns",
    ]  # fmt: skip
    after = schema["fields"][1]
    assert after["name"] == "shop.public.orders.Value" and after["optional"] is True
    assert _fields(after) == ["id", "price", "photo", "ratio"]
    source = schema["fields"][2]
    assert source["name"] == "io.debezium.connector.postgresql.Source"
    assert _fields(source)[:9] == [
        "version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us", "ts_ns",
    ]  # fmt: skip
    assert source["fields"][4]["default"] == "false"
    assert schema["fields"][3]["name"] == "event.block"
    assert value["payload"]["after"]["id"] == 1 and value["payload"]["op"] == "c"
    assert tombstone.value is None  # JsonConverter writes no schema for a null
    assert orjson.loads(delete.value)["payload"]["op"] == "d"
    begin = orjson.loads(by_topic["shop.transaction"][0].value)
    assert begin["schema"]["name"] == "io.debezium.connector.common.TransactionMetadataValue"
    assert begin["payload"]["status"] == "BEGIN"
    assert orjson.loads(by_topic["shop.transaction"][0].key)["schema"]["name"] == (
        "io.debezium.connector.common.TransactionMetadataKey"
    )


def test_value_schemas_only_and_a_row_without_some_columns():
    encoder = EnvelopeEncoder.from_config(
        _config(**{"value.converter.schemas.enable": True}), "postgresql"
    )
    items = _items()
    items[1].after = {"id": 1, "ratio": 0.5}  # as column.exclude.list leaves it
    record = encoder.encode(items, 0).records[1]
    assert orjson.loads(record.key) == {"id": 1}  # keys without schema
    schema = orjson.loads(record.value)["schema"]
    assert _fields(schema["fields"][1]) == ["id", "ratio"]


@pytest.mark.parametrize(
    ("sink", "needle"),
    [
        ({"format": "avro"}, "needs sink.schema_registry_url"),
        ({"schema_registry_url": "http://r"}, 'used only with sink.format = "avro"'),
        ({"format": "maxwell", "schemas_enable": True}, "schemas_enable is for"),
        ({"schemas_enable": True, "schemas.enable": False}, "keep one"),
        ({"value": {"converter": {"schemas": {"enable": True}}}}, "quoted"),
    ],
)
def test_configuration_errors(sink: dict[str, Any], needle: str):
    with pytest.raises(ConfigError, match=needle):
        _config(**sink)


class _Registry:
    """Records what is registered (the registry's REST calls are tested with a real one)."""

    def __init__(self) -> None:
        self.subjects: dict[str, list[Any]] = {}
        self.by_id: list[Any] = []
        self.threads: set[str] = set()

    def register(self, subject: str, schema: Any) -> int:
        self.threads.add(threading.current_thread().name)
        if schema not in self.by_id:
            self.by_id.append(schema)
        self.subjects.setdefault(subject, []).append(schema)
        return self.by_id.index(schema) + 1


def _read(data: bytes, registry: _Registry) -> Any:
    assert data[0] == 0
    schema = registry.by_id[int.from_bytes(data[1:5], "big") - 1]
    return fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(schema))


def test_avro_records_read_back_through_their_registered_schema():
    registry = _Registry()
    encoder = EnvelopeEncoder.from_config(
        _config(format="avro", schema_registry_url="http://r"), "postgresql"
    )
    assert isinstance(encoder.serializer, AvroSerializer)
    encoder.serializer.registry = registry  # type: ignore[assignment]
    encoded = encoder.encode(_items(), 5_000_000)
    assert encoded.unregistered and not registry.subjects  # nothing registered yet
    asyncio.run(encoder.register_schemas())
    assert threading.main_thread().name not in registry.threads  # never on the event loop
    records = encoded.records
    create = next(r for r in records if r.topic == "shop.public.orders")
    assert _read(create.key, registry) == {"id": 1}
    value = _read(create.value, registry)
    assert value["after"]["photo"] == b"\x00\xff"
    assert value["after"]["price"] == Decimal("4.06")
    assert value["after"]["ratio"] != value["after"]["ratio"]  # NaN
    assert value["source"]["snapshot"] == "false" and value["op"] == "c"
    assert sorted(registry.subjects) == [
        "shop.public.orders-key", "shop.public.orders-value",
        "shop.transaction-key", "shop.transaction-value",
    ]  # fmt: skip
    assert len(registry.subjects["shop.public.orders-value"]) == 1  # registered once
    changes = [item for item in _items() if not isinstance(item, TableSchema)]
    again = encoder.encode(changes, 6_000_000)  # the same table version
    assert not again.unregistered  # the ids are kept: the records are whole at once
    assert _read(next(r for r in again.records if r.topic == create.topic).key, registry) == {
        "id": 1
    }


def test_avro_schema_as_confluents_converter_writes_it():
    envelope = avro_schema(
        {
            **c.struct([c.field("id", c.INT16), c.field("after", c.optional(c.struct([c.field("d", c.DATE)], name="a.b.Value")))], name="a.b.Envelope", version=2),
        }
    )  # fmt: skip
    assert envelope["type"] == "record" and envelope["name"] == "Envelope"
    assert envelope["namespace"] == "a.b" and envelope["connect.name"] == "a.b.Envelope"
    assert envelope["connect.version"] == 2
    id_field, after = envelope["fields"]
    assert id_field == {"name": "id", "type": {"type": "int", "connect.type": "int16"}}
    assert after["default"] is None and after["type"][0] == "null"
    assert after["type"][1]["fields"][0]["type"] == {
        "type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date",
    }  # fmt: skip
    decimal = avro_schema(c.decimal(2, 10))
    assert decimal == {
        "type": "bytes", "scale": 2, "precision": 10, "connect.version": 1,
        "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
        "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal",
    }  # fmt: skip
