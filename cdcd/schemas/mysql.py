"""A MySQL/MariaDB column's Kafka Connect schema, as Debezium's ``BinlogValueConverters``
(and ``JdbcValueConverters`` under it) builds it, for what ``cdcd.sources.mysql.types``
writes.

From the TABLE_MAP event with ``binlog_row_metadata=FULL``: the column's binlog type,
signedness, charset, ENUM/SET labels, BIT width, DECIMAL precision and scale, fractional
seconds, GEOMETRY_TYPE, and nullability (the null bitmap). ``time.precision.mode`` is
Debezium's MySQL default, adaptive_time_microseconds.
"""

from __future__ import annotations

from typing import Any

from cdcd.encoding import Encoding
from cdcd.events import TableSchema
from cdcd.schemas import connect as c
from cdcd.sources.mysql import types as t

__all__ = ["column_schema", "table_schema"]

# TINYINT, SMALLINT, MEDIUMINT, INT: (signed, unsigned) schema.
_INTEGERS = {
    t._TINY: (c.INT16, c.INT16),
    t._SHORT: (c.INT16, c.INT32),
    t._INT24: (c.INT32, c.INT32),
    t._LONG: (c.INT32, c.INT64),
}


def column_schema(
    column: Any,
    *,
    nullable: bool = True,
    geometry_type: int | None = None,
    options: Encoding = t.DEFAULT_OPTIONS,
) -> c.Schema:
    """The schema of one column (``column`` as ``types.make_converter`` takes it)."""
    schema = _unqualified(column, geometry_type, options)
    return c.optional(schema) if nullable else schema


def _unqualified(column: Any, geometry_type: int | None, options: Encoding) -> c.Schema:
    kind = column.type
    integer = _INTEGERS.get(kind)
    if integer is not None:
        return integer[1] if column.unsigned else integer[0]
    if kind == t._LONGLONG:
        if column.unsigned and options.bigint_unsigned_mode == "precise":
            return c.decimal(0, 20)
        return c.INT64
    if kind == t._YEAR:
        return c.YEAR
    if kind == t._FLOAT:
        return c.FLOAT32
    if kind == t._DOUBLE:
        return c.FLOAT64
    if kind == t._NEWDECIMAL:
        if options.decimal_mode == "double":
            return c.FLOAT64
        if options.decimal_mode == "string":
            return c.STRING
        return c.decimal(column.decimals, column.precision)
    if kind == t._BIT:
        return c.BOOLEAN if column.bits == 1 else c.bits(column.bits)
    if kind == t._DATE:
        return c.DATE
    if kind in (t._TIME, t._TIME2):
        return c.MICRO_TIME
    if kind in (t._DATETIME, t._DATETIME2):
        return c.TIMESTAMP_MS if (getattr(column, "fsp", 0) or 0) <= 3 else c.MICRO_TIMESTAMP
    if kind in (t._TIMESTAMP, t._TIMESTAMP2):
        return c.ZONED_TIMESTAMP
    if kind == t._ENUM:
        # python-mysql-replication puts '' (index 0, an invalid value) before the labels.
        labels = list(getattr(column, "enum_values", None) or ())
        return c.enum(labels[1:] if labels[:1] == [""] else labels)
    if kind == t._SET:
        return c.enum_set(list(getattr(column, "set_values", None) or ()))
    if kind in t._STRINGS:
        if t._is_binary(column):
            return c.BYTES if options.binary_mode == "bytes" else c.STRING
        return c.STRING
    if kind == t._JSON:
        return c.JSON
    if kind == t._GEOMETRY:
        return c.POINT if geometry_type == t.GEOMETRY_TYPE_POINT else c.GEOMETRY
    return c.STRING


def table_schema(
    schema: str,
    name: str,
    event: Any,
    key_columns: tuple[str, ...],
    options: Encoding = t.DEFAULT_OPTIONS,
) -> TableSchema:
    """The schema of the table a ``pymysqlreplication`` TableMapEvent describes."""
    nullable, geometry_types = t.table_map_facts(event)
    geometry = iter(geometry_types or ())
    columns = {}
    for index, column in enumerate(event.columns):
        geometry_type = next(geometry, None) if column.type == t._GEOMETRY else None
        columns[column.name] = column_schema(
            column,
            nullable=True if nullable is None else nullable[index],
            geometry_type=geometry_type,
            options=options,
        )
    return TableSchema(schema, name, columns, key_columns)
