"""Kafka Connect schemas as the JsonConverter writes them (``schemas.enable=true``).

A schema is a plain dict whose keys come in the JsonConverter's order (``asJsonSchema``):
``type``, then ``items``/``keys``/``values``/``fields``, ``optional``, ``name``,
``version``, ``doc``, ``parameters``, ``default``; a struct's field is its schema with
``field`` (the name) last. Plain dicts cross a reader process's pipe as JSON and are
written by orjson as they are.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

__all__ = [
    "Schema",
    "array",
    "field",
    "optional",
    "primitive",
    "struct",
]


def primitive(
    kind: str,
    *,
    name: str | None = None,
    version: int | None = None,
    doc: str | None = None,
    parameters: dict[str, str] | None = None,
    default: Any = None,
    is_optional: bool = False,
) -> Schema:
    """A schema of ``kind`` (``int32``, ``string``, ``bytes``, ...), not optional unless said."""
    schema: Schema = {"type": kind}
    return _tail(schema, is_optional, name, version, doc, parameters, default)


def array(items: Schema, *, is_optional: bool = False, name: str | None = None) -> Schema:
    return _tail({"type": "array", "items": items}, is_optional, name, None, None, None, None)


def struct(
    fields: list[Schema],
    *,
    name: str | None = None,
    version: int | None = None,
    doc: str | None = None,
    is_optional: bool = False,
) -> Schema:
    """A struct of ``fields`` (each made by ``field``)."""
    return _tail({"type": "struct", "fields": fields}, is_optional, name, version, doc, None, None)


def field(name: str, schema: Schema) -> Schema:
    """``schema`` as the struct field ``name``."""
    return {**schema, "field": name}


def optional(schema: Schema) -> Schema:
    """``schema`` made optional (its keys keep their order)."""
    if schema.get("optional"):
        return schema
    return {**schema, "optional": True}


def _tail(
    schema: Schema,
    is_optional: bool,
    name: str | None,
    version: int | None,
    doc: str | None,
    parameters: dict[str, str] | None,
    default: Any,
) -> Schema:
    schema["optional"] = is_optional
    if name is not None:
        schema["name"] = name
    if version is not None:
        schema["version"] = version
    if doc is not None:
        schema["doc"] = doc
    if parameters is not None:
        schema["parameters"] = parameters
    if default is not None:
        schema["default"] = default
    return schema


# --- Debezium's and Kafka's logical types (io.debezium.time.*, io.debezium.data.*) ------

BOOLEAN = primitive("boolean")
INT16 = primitive("int16")
INT32 = primitive("int32")
INT64 = primitive("int64")
FLOAT32 = primitive("float32")
FLOAT64 = primitive("float64")
STRING = primitive("string")
BYTES = primitive("bytes")


def named(kind: str, name: str, **parameters: str) -> Schema:
    """A Debezium logical type: ``kind`` named ``name``, version 1, with ``parameters``."""
    return primitive(kind, name=name, version=1, parameters=parameters or None)


DATE = named("int32", "io.debezium.time.Date")
TIME_MS = named("int32", "io.debezium.time.Time")
MICRO_TIME = named("int64", "io.debezium.time.MicroTime")
TIMESTAMP_MS = named("int64", "io.debezium.time.Timestamp")
MICRO_TIMESTAMP = named("int64", "io.debezium.time.MicroTimestamp")
ZONED_TIME = named("string", "io.debezium.time.ZonedTime")
ZONED_TIMESTAMP = named("string", "io.debezium.time.ZonedTimestamp")
MICRO_DURATION = named("int64", "io.debezium.time.MicroDuration")
YEAR = named("int32", "io.debezium.time.Year")
JSON = named("string", "io.debezium.data.Json")
UUID = named("string", "io.debezium.data.Uuid")
XML = named("string", "io.debezium.data.Xml")
LTREE = named("string", "io.debezium.data.Ltree")
TSVECTOR = named("string", "io.debezium.data.Tsvector")


def decimal(scale: int, precision: int | None = None) -> Schema:
    """Kafka Connect's Decimal (``Decimal.builder(scale)``), with Debezium's
    ``connect.decimal.precision`` when the column has a precision."""
    parameters = {"scale": str(scale)}
    if precision is not None:
        parameters["connect.decimal.precision"] = str(precision)
    return primitive(
        "bytes", name="org.apache.kafka.connect.data.Decimal", version=1, parameters=parameters
    )


VARIABLE_SCALE_DECIMAL = struct(
    [field("scale", INT32), field("value", BYTES)],
    name="io.debezium.data.VariableScaleDecimal",
    version=1,
    doc="Variable scaled decimal",
)


def bits(length: int) -> Schema:
    return named("bytes", "io.debezium.data.Bits", length=str(length))


def enum(allowed: list[str]) -> Schema:
    """io.debezium.data.Enum: the labels joined by commas, as Debezium joins them."""
    return named("string", "io.debezium.data.Enum", allowed=",".join(allowed))


def enum_set(allowed: list[str]) -> Schema:
    return named("string", "io.debezium.data.EnumSet", allowed=",".join(allowed))


POINT = struct(
    [
        field("x", FLOAT64),
        field("y", FLOAT64),
        field("wkb", optional(BYTES)),
        field("srid", optional(INT32)),
    ],
    name="io.debezium.data.geometry.Point",
    version=1,
    doc="Geometry (POINT)",
)

GEOMETRY = struct(
    [
        field("wkb", BYTES),
        field("srid", optional(INT32)),
        field(
            "extensions",
            _tail({"type": "map", "keys": STRING, "values": STRING}, True, *([None] * 5)),
        ),
    ],
    name="io.debezium.data.geometry.Geometry",
    version=2,
    doc="Geometry",
    is_optional=True,
)
