"""A column's Kafka Connect schema on both sources, type by type, against Debezium's
(PostgresValueConverter, BinlogValueConverters, JdbcValueConverters): names, versions,
parameters, optional."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from cdcd.encoding import Encoding
from cdcd.schemas import connect as c
from cdcd.schemas import mysql as my
from cdcd.schemas import postgres as pg
from cdcd.sources.mysql import types as mt
from cdcd.sources.postgres import types as pt


def _typmod_numeric(precision: int, scale: int) -> int:
    return ((precision << 16) | scale) + 4


PG_CASES: list[tuple[int, int, str | None, dict[str, Any]]] = [
    (pt.BOOL, -1, None, {"type": "boolean"}),
    (pt.INT2, -1, None, {"type": "int16"}),
    (pt.INT4, -1, None, {"type": "int32"}),
    (pt.INT8, -1, None, {"type": "int64"}),
    (pt.OID, -1, None, {"type": "int64"}),
    (pt.FLOAT4, -1, None, {"type": "float32"}),
    (pt.FLOAT8, -1, None, {"type": "float64"}),
    (pt.TEXT, -1, None, {"type": "string"}),
    (pt.VARCHAR, 68, None, {"type": "string"}),
    (pt.BYTEA, -1, None, {"type": "bytes"}),
    (pt.DATE, -1, None, {"type": "int32", "name": "io.debezium.time.Date", "version": 1}),
    (pt.TIME, 3, None, {"type": "int32", "name": "io.debezium.time.Time", "version": 1}),
    (pt.TIME, -1, None, {"type": "int64", "name": "io.debezium.time.MicroTime", "version": 1}),
    (pt.TIMESTAMP, 0, None, {"type": "int64", "name": "io.debezium.time.Timestamp", "version": 1}),
    (pt.TIMESTAMP, 6, None, {"type": "int64", "name": "io.debezium.time.MicroTimestamp", "version": 1}),
    (pt.TIMESTAMPTZ, -1, None, {"type": "string", "name": "io.debezium.time.ZonedTimestamp", "version": 1}),
    (pt.TIMETZ, -1, None, {"type": "string", "name": "io.debezium.time.ZonedTime", "version": 1}),
    (pt.INTERVAL, -1, None, {"type": "int64", "name": "io.debezium.time.MicroDuration", "version": 1}),
    (pt.JSONB, -1, None, {"type": "string", "name": "io.debezium.data.Json", "version": 1}),
    (pt.UUID, -1, None, {"type": "string", "name": "io.debezium.data.Uuid", "version": 1}),
    (pt.XML, -1, None, {"type": "string", "name": "io.debezium.data.Xml", "version": 1}),
    (pt.BIT, 1, None, {"type": "boolean"}),
    (pt.BIT, 12, None, {"type": "bytes", "name": "io.debezium.data.Bits", "version": 1, "parameters": {"length": "12"}}),
    (pt.NUMERIC, _typmod_numeric(10, 2), None, {
        "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
        "parameters": {"scale": "2", "connect.decimal.precision": "10"}}),
    (pt.MONEY, -1, None, {
        "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
        "parameters": {"scale": "2"}}),
    (pt.INET, -1, None, {"type": "string"}),
    (3904, -1, None, {"type": "string"}),  # int4range
    (40000, -1, "hstore", {"type": "string", "name": "io.debezium.data.Json", "version": 1}),
    (40001, -1, "ltree", {"type": "string", "name": "io.debezium.data.Ltree", "version": 1}),
    (40002, -1, "citext", {"type": "string"}),
]  # fmt: skip


@pytest.mark.parametrize(("oid", "typmod", "name", "expected"), PG_CASES)
def test_postgres_column_schemas(oid: int, typmod: int, name: str | None, expected: dict[str, Any]):
    got = pg.column_schema(oid, typmod, name, nullable=False)
    assert got == {**expected, "optional": False}
    # The JsonConverter's key order: type, optional, name, version, doc, parameters.
    order = ["type", "optional", "name", "version", "doc", "parameters"]
    assert list(got) == [k for k in order if k in got]
    assert pg.column_schema(oid, typmod, name)["optional"] is True


def test_postgres_numeric_without_precision_and_the_modes():
    variable = pg.column_schema(pt.NUMERIC, -1, nullable=False)
    assert variable["name"] == "io.debezium.data.VariableScaleDecimal"
    assert variable["type"] == "struct" and variable["version"] == 1
    assert variable["doc"] == "Variable scaled decimal"
    assert [(f["field"], f["type"], f["optional"]) for f in variable["fields"]] == [
        ("scale", "int32", False),
        ("value", "bytes", False),
    ]
    typmod = _typmod_numeric(10, 2)
    assert pg.column_schema(pt.NUMERIC, typmod, decimal_mode="double")["type"] == "float64"
    assert pg.column_schema(pt.NUMERIC, typmod, decimal_mode="string")["type"] == "string"
    assert pg.column_schema(pt.MONEY, -1, decimal_mode="string")["type"] == "string"


def test_postgres_arrays_enums_domains_and_point():
    ints = pg.column_schema(1007, -1, nullable=False)  # int4[]
    assert ints == {
        "type": "array",
        "items": {"type": "int32", "optional": True},
        "optional": False,
    }
    stamps = pg.column_schema(1115, 3)  # timestamp(3)[]
    assert stamps["items"]["name"] == "io.debezium.time.Timestamp"
    mood = pg.column_schema(50000, -1, "mood", enum_labels=["sad", "ok", "happy"])
    assert mood == {
        "type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
        "parameters": {"allowed": "sad,ok,happy"},
    }  # fmt: skip
    moods = pg.column_schema(50001, -1, "_mood", enum_labels=["sad", "ok"])
    assert moods["type"] == "array" and moods["items"]["optional"] is False
    domain = pg.column_schema(50002, _typmod_numeric(6, 3), "numeric")
    assert domain["parameters"] == {"scale": "3", "connect.decimal.precision": "6"}
    point = pg.column_schema(pt.POINT, -1, nullable=False)
    assert point["name"] == "io.debezium.data.geometry.Point"
    assert [f["field"] for f in point["fields"]] == ["x", "y", "wkb", "srid"]


def test_every_postgres_type_with_a_converter_has_its_schema():
    # The converters' registry and the schemas' name the same types.
    converted = set(pt._SCALARS) | set(getattr(pt, "_DECIMALS", {}))
    assert converted <= set(pg._SCALARS) | set(pg._DECIMALS)
    assert set(pt._EXTENSIONS) <= set(pg._EXTENSIONS)


def _column(kind: int, **attributes: Any) -> Any:
    defaults = {"name": "c", "unsigned": False, "character_set_name": "utf8mb4", "fsp": 0}
    return SimpleNamespace(type=kind, **{**defaults, **attributes})


MYSQL_CASES: list[tuple[Any, dict[str, Any]]] = [
    (_column(mt._TINY), {"type": "int16"}),
    (_column(mt._TINY, unsigned=True), {"type": "int16"}),
    (_column(mt._SHORT, unsigned=True), {"type": "int32"}),
    (_column(mt._INT24, unsigned=True), {"type": "int32"}),
    (_column(mt._LONG), {"type": "int32"}),
    (_column(mt._LONG, unsigned=True), {"type": "int64"}),
    (_column(mt._LONGLONG, unsigned=True), {"type": "int64"}),
    (_column(mt._FLOAT), {"type": "float32"}),
    (_column(mt._DOUBLE), {"type": "float64"}),
    (_column(mt._YEAR), {"type": "int32", "name": "io.debezium.time.Year", "version": 1}),
    (_column(mt._NEWDECIMAL, precision=65, decimals=30), {
        "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
        "parameters": {"scale": "30", "connect.decimal.precision": "65"}}),
    (_column(mt._BIT, bits=1), {"type": "boolean"}),
    (_column(mt._BIT, bits=64), {"type": "bytes", "name": "io.debezium.data.Bits", "version": 1, "parameters": {"length": "64"}}),
    (_column(mt._DATE), {"type": "int32", "name": "io.debezium.time.Date", "version": 1}),
    (_column(mt._TIME2, fsp=0), {"type": "int64", "name": "io.debezium.time.MicroTime", "version": 1}),
    (_column(mt._DATETIME2, fsp=3), {"type": "int64", "name": "io.debezium.time.Timestamp", "version": 1}),
    (_column(mt._DATETIME2, fsp=6), {"type": "int64", "name": "io.debezium.time.MicroTimestamp", "version": 1}),
    (_column(mt._TIMESTAMP2, fsp=2), {"type": "string", "name": "io.debezium.time.ZonedTimestamp", "version": 1}),
    (_column(mt._ENUM, enum_values=["", "S", "Ü"]), {
        "type": "string", "name": "io.debezium.data.Enum", "version": 1, "parameters": {"allowed": "S,Ü"}}),
    (_column(mt._SET, set_values=["a", "b"]), {
        "type": "string", "name": "io.debezium.data.EnumSet", "version": 1, "parameters": {"allowed": "a,b"}}),
    (_column(mt._VARCHAR), {"type": "string"}),
    (_column(mt._BLOB, character_set_name="binary"), {"type": "bytes"}),
    (_column(mt._STRING, character_set_name="binary", max_length=4), {"type": "bytes"}),
    (_column(mt._JSON), {"type": "string", "name": "io.debezium.data.Json", "version": 1}),
]  # fmt: skip


@pytest.mark.parametrize(("column", "expected"), MYSQL_CASES)
def test_mysql_column_schemas(column: Any, expected: dict[str, Any]):
    assert my.column_schema(column, nullable=False) == {**expected, "optional": False}
    assert my.column_schema(column)["optional"] is True


def test_mysql_modes_and_geometry():
    unsigned = _column(mt._LONGLONG, unsigned=True)
    precise = Encoding(bigint_unsigned_mode="precise")
    assert my.column_schema(unsigned, options=precise)["parameters"] == {
        "scale": "0",
        "connect.decimal.precision": "20",
    }
    decimal = _column(mt._NEWDECIMAL, precision=10, decimals=2)
    assert (
        my.column_schema(decimal, options=Encoding(decimal_mode="string"))["type"]
        == "string"
    )
    point = my.column_schema(_column(mt._GEOMETRY), geometry_type=mt.GEOMETRY_TYPE_POINT)
    assert point["name"] == "io.debezium.data.geometry.Point"
    shape = my.column_schema(_column(mt._GEOMETRY), geometry_type=3)
    assert shape["name"] == "io.debezium.data.geometry.Geometry" and shape["version"] == 2
    assert [f["field"] for f in shape["fields"]] == ["wkb", "srid", "extensions"]


def test_field_keeps_the_converters_order():
    schema = c.field("amount", c.optional(c.decimal(2, 10)))
    assert list(schema) == ["type", "optional", "name", "version", "parameters", "field"]
