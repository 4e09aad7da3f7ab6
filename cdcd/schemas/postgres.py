"""A PostgreSQL column's Kafka Connect schema, as Debezium's ``PostgresValueConverter``
builds it, for what cdcd's converters (``cdcd.sources.postgres.types``) write.

From what pgoutput's Relation message says of a column (type OID, typmod), the Type
message's name for a non-builtin type, the column's nullability and an enum's labels
(both read from the catalog with the table's key). Where Debezium has no schema for a type
cdcd passes through as text (geometric types but point, tsquery, pg_lsn, ...), the schema
is ``string``, which is what cdcd writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from cdcd.encoding import DecimalMode
from cdcd.schemas import connect as c
from cdcd.sources.postgres import types as t

__all__ = ["column_schema", "numeric_precision_scale"]


def numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    """numeric(p, s) of a typmod; None without one (Debezium's VariableScaleDecimal)."""
    if typmod < 4:
        return None
    return ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF


def _numeric(typmod: int, mode: DecimalMode) -> c.Schema:
    if mode == "double":
        return c.FLOAT64
    if mode == "string":
        return c.STRING
    ps = numeric_precision_scale(typmod)
    if ps is None:
        return c.VARIABLE_SCALE_DECIMAL
    precision, scale = ps
    return c.decimal(scale, precision)


def _money(_typmod: int, mode: DecimalMode) -> c.Schema:
    if mode == "double":
        return c.FLOAT64
    if mode == "string":
        return c.STRING
    return c.decimal(2)  # money.fraction.digits = 2, Decimal.builder(2): no precision


def _precision(typmod: int) -> int:
    return 6 if typmod < 0 else typmod


def _bit(typmod: int) -> c.Schema:
    # bit(1) is boolean; varbit without a length is 2^31 - 1 long, as pgjdbc reports it.
    length = typmod if typmod >= 0 else 2**31 - 1
    return c.BOOLEAN if length == 1 else c.bits(length)


_SCALARS: Final[dict[int, Callable[[int], c.Schema]]] = {
    t.BOOL: lambda _: c.BOOLEAN,
    t.BYTEA: lambda _: c.BYTES,
    t.INT2: lambda _: c.INT16,
    t.INT4: lambda _: c.INT32,
    t.INT8: lambda _: c.INT64,
    t.OID: lambda _: c.INT64,
    t.FLOAT4: lambda _: c.FLOAT32,
    t.FLOAT8: lambda _: c.FLOAT64,
    t.DATE: lambda _: c.DATE,
    t.TIME: lambda m: c.TIME_MS if _precision(m) <= 3 else c.MICRO_TIME,
    t.TIMETZ: lambda _: c.ZONED_TIME,
    t.TIMESTAMP: lambda m: c.TIMESTAMP_MS if _precision(m) <= 3 else c.MICRO_TIMESTAMP,
    t.TIMESTAMPTZ: lambda _: c.ZONED_TIMESTAMP,
    t.INTERVAL: lambda _: c.MICRO_DURATION,
    t.BIT: _bit,
    t.VARBIT: _bit,
    t.POINT: lambda _: c.POINT,
    t.JSON: lambda _: c.JSON,
    t.JSONB: lambda _: c.JSON,
    t.UUID: lambda _: c.UUID,
    t.XML: lambda _: c.XML,
    t.TSVECTOR: lambda _: c.TSVECTOR,
}

_DECIMALS: Final[dict[int, Callable[[int, DecimalMode], c.Schema]]] = {
    t.NUMERIC: _numeric,
    t.MONEY: _money,
}

# Extension types by name (no fixed OID): what cdcd writes for them.
_EXTENSIONS: Final[dict[str, c.Schema]] = {
    "hstore": c.JSON,  # hstore.handling.mode = json
    "ltree": c.LTREE,
    "citext": c.STRING,
}


def _scalar(type_oid: int, typmod: int, mode: DecimalMode) -> c.Schema:
    decimal = _DECIMALS.get(type_oid)
    if decimal is not None:
        return decimal(typmod, mode)
    factory = _SCALARS.get(type_oid)
    return c.STRING if factory is None else factory(typmod)


def column_schema(
    type_oid: int,
    typmod: int,
    type_name: str | None = None,
    *,
    nullable: bool = True,
    decimal_mode: DecimalMode = "precise",
    enum_labels: Sequence[str] | None = None,
) -> c.Schema:
    """The schema of one column (the same cases as ``types.make_converter``)."""
    schema = _unqualified(type_oid, typmod, type_name, decimal_mode, enum_labels)
    return c.optional(schema) if nullable else schema


def _unqualified(
    type_oid: int,
    typmod: int,
    type_name: str | None,
    mode: DecimalMode,
    enum_labels: Sequence[str] | None,
) -> c.Schema:
    if type_oid in _SCALARS or type_oid in _DECIMALS:
        return _scalar(type_oid, typmod, mode)
    element = t._ARRAYS.get(type_oid)
    if element is not None:
        return c.array(c.optional(_scalar(element, typmod, mode)))
    if type_name is None or type_oid < 10000:
        return c.STRING
    return _by_name(type_name, typmod, mode, enum_labels)


def _by_name(
    type_name: str, typmod: int, mode: DecimalMode, enum_labels: Sequence[str] | None
) -> c.Schema:
    if type_name.startswith("_"):  # an array of enums, of an extension type, of a domain
        if enum_labels is not None:  # Debezium: SchemaBuilder.array(Enum.builder(...))
            return c.array(c.enum(list(enum_labels)))
        return c.array(c.optional(_by_name(type_name[1:], typmod, mode, enum_labels)))
    if enum_labels is not None:
        return c.enum(list(enum_labels))
    extension = _EXTENSIONS.get(type_name)
    if extension is not None:
        return extension
    builtin = t._NAMES.get(type_name)  # a domain over a builtin type
    return c.STRING if builtin is None else _scalar(builtin, typmod, mode)
