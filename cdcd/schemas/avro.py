"""Kafka Connect schemas -> Avro schemas, as Confluent's AvroConverter translates them
(``AvroData.fromConnectSchema``, its defaults: ``connect.meta.data=true``,
``enhanced.avro.schema.support=false``), and payloads -> Avro datums.

- int8/int16 -> ``int`` with ``connect.type``; int32 ``int``; int64 ``long``; float32
  ``float``; float64 ``double``; boolean, string, bytes as themselves.
- A name, version, doc and parameters become ``connect.name``, ``connect.version``,
  ``connect.doc``, ``connect.parameters``; Decimal adds Avro's ``decimal`` logical type
  (``precision`` from ``connect.decimal.precision``, else 64).
- A struct is a ``record`` named by its name's last part in its name's namespace
  (unnamed: ``io.confluent.connect.avro.ConnectDefault``); a record seen before in the same
  schema is referred to by its full name.
- An optional schema is the union ``["null", schema]``, its field with ``default: null``
  (``[schema, "null"]`` and the default when it has one).

The JSON payload holds bytes as base64 and non-finite floats as strings (JsonConverter's
forms): ``datum_converter`` turns them back into what Avro carries, once per schema.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from cdcd.schemas.connect import Schema

__all__ = ["avro_schema", "datum_converter"]

_PRIMITIVES = {
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "long",
    "float32": "float",
    "float64": "double",
    "boolean": "boolean",
    "string": "string",
    "bytes": "bytes",
}
_DECIMAL = "org.apache.kafka.connect.data.Decimal"
_DEFAULT_NAMESPACE = "io.confluent.connect.avro"


def avro_schema(schema: Schema) -> Any:
    """The Avro schema (JSON value) of a Connect schema."""
    return _Translation().of(schema)


class _Translation:
    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.defaults = 0

    def of(self, schema: Schema) -> Any:
        avro = self._required(schema)
        if not schema.get("optional"):
            return avro
        # With a default, its branch comes first (Avro's default is the first branch's).
        return [avro, "null"] if "default" in schema else ["null", avro]

    def _required(self, schema: Schema) -> Any:
        kind = schema["type"]
        if kind == "struct":
            return self._record(schema)
        if kind == "array":
            avro: dict[str, Any] = {"type": "array", "items": self.of(schema["items"])}
        elif kind == "map":
            avro = {"type": "map", "values": self.of(schema["values"])}
        else:
            avro = {"type": _PRIMITIVES[kind]}
            if kind in ("int8", "int16"):
                avro["connect.type"] = kind
        name = schema.get("name")
        if name == _DECIMAL:
            parameters = schema.get("parameters") or {}
            avro["scale"] = int(parameters.get("scale", 0))
            avro["precision"] = int(parameters.get("connect.decimal.precision", 64))
        self._meta(avro, schema)
        if name == _DECIMAL:
            avro["logicalType"] = "decimal"
        return avro if len(avro) > 1 else avro["type"]

    def _record(self, schema: Schema) -> Any:
        name = schema.get("name")
        if name is None:
            self.defaults += 1
            suffix = "" if self.defaults == 1 else str(self.defaults)
            name = f"{_DEFAULT_NAMESPACE}.ConnectDefault{suffix}"
        if name in self.seen:
            return name
        self.seen.add(name)
        namespace, _, short = name.rpartition(".")
        fields = []
        for entry in schema["fields"]:
            avro_field: dict[str, Any] = {"name": entry["field"], "type": self.of(entry)}
            if "default" in entry:
                avro_field["default"] = entry["default"]
            elif entry.get("optional"):
                avro_field["default"] = None
            fields.append(avro_field)
        record: dict[str, Any] = {"type": "record", "name": short}
        if namespace:
            record["namespace"] = namespace
        record["fields"] = fields
        self._meta(record, schema)
        return record

    @staticmethod
    def _meta(avro: dict[str, Any], schema: Schema) -> None:
        if "doc" in schema:
            avro["connect.doc"] = schema["doc"]
        if "version" in schema:
            avro["connect.version"] = schema["version"]
        if "default" in schema and schema["type"] != "struct":
            avro["connect.default"] = schema["default"]
        if schema.get("parameters"):
            avro["connect.parameters"] = schema["parameters"]
        if "name" in schema:
            avro["connect.name"] = schema["name"]


Convert = Callable[[Any], Any]


def datum_converter(schema: Schema) -> Convert | None:
    """What turns a JSON payload of ``schema`` into its Avro datum; None: it is one already."""
    kind = schema["type"]
    if kind == "bytes":
        return _bytes
    if kind in ("float32", "float64"):
        return _float
    if kind == "array":
        item = datum_converter(schema["items"])
        return None if item is None else (lambda v: None if v is None else [item(x) for x in v])
    if kind == "map":
        inner = datum_converter(schema["values"])
        if inner is None:
            return None
        return lambda v: None if v is None else {k: inner(x) for k, x in v.items()}
    if kind != "struct":
        return None
    converters = [
        (entry["field"], convert)
        for entry in schema["fields"]
        if (convert := datum_converter(entry)) is not None
    ]
    if not converters:
        return None

    def record(value: Any) -> Any:
        if value is None:
            return None
        out = dict(value)
        for name, convert in converters:
            if name in out:
                out[name] = convert(out[name])
        return out

    return record


def _bytes(value: Any) -> Any:
    return base64.b64decode(value) if type(value) is str else value


def _float(value: Any) -> Any:
    return float(value) if type(value) is str else value  # "NaN", "Infinity", "-Infinity"
