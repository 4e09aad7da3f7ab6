"""Rows read with SELECT, encoded exactly as the binlog stream encodes them.

The stream's converters (``types.RowConverter``) take the column objects of a TABLE_MAP
and the values python-mysql-replication yields. A snapshot builds the same column
objects from ``information_schema.COLUMNS`` (type code, signedness, fractional digits,
bits, scale, length, SET members, nullability) and hands the converters the values in
the library's forms, which is all this module does for each type where pymysql's value
differs from the library's:

- FLOAT is selected as ``col + 0e0``: its exact value as a DOUBLE (MariaDB prints a FLOAT
  with 6 digits), which the FLOAT32 converter turns into the same shortest decimal.
- BIT: pymysql's big-endian bytes become the library's string of '0'/'1'.
- YEAR 0000: the binlog's byte 0 is 1900 for the library (and Debezium's deserializer).
- TIME: the library's value of a negative TIME with a fraction is off by its own rule
  (``types._time_micros`` undoes it); the true value is put in that form.
- DATE, DATETIME: a zero or invalid date (pymysql leaves it a string) is None, as the
  library yields it; the zero TIMESTAMP is the epoch (0 in the binlog). TIMESTAMPs are
  read in UTC (the session's time zone is ``+00:00``), as the library yields them.
- MySQL's JSON: its text (keys in stored order) is written compactly by the stream's own
  JSON writer; MariaDB's JSON is text and passes untouched, in both.

A snapshot reads its rows off the socket as raw text (``snapshot_wire``): ``TableRows.
decoder`` turns them into pymysql's forms and then as above, or, for the common types,
straight into the stream's encodings (``snapshot_text``).

Primary-key values travel to the core and back as JSON values (``Chunk.last_key``):
binary (and BIT) as hex, DECIMAL as its text, temporal types as MySQL's literals, the
rest as themselves, so that they round-trip exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cdcd.encoding import Encoding
from cdcd.errors import SourceError
from cdcd.sources.mysql import types as mtypes
from cdcd.sources.mysql.json_text import write_json
from cdcd.sources.mysql.snapshot_text import Form, column_decoder, pymysql_form
from cdcd.sources.mysql.snapshot_wire import row_reader
from cdcd.sources.mysql.snapshot_wire import values as wire_values
from cdcd.sources.mysql.types import RowConverter

# python-mysql-replication's FIELD_TYPE codes, as types.py names them
_TYPE_CODES = {
    "tinyint": 1,
    "smallint": 2,
    "int": 3,
    "integer": 3,
    "float": 4,
    "double": 5,
    "real": 5,
    "bigint": 8,
    "mediumint": 9,
    "date": 10,
    "year": 13,
    "varchar": 15,
    "varbinary": 15,
    "bit": 16,
    "timestamp": 17,
    "datetime": 18,
    "time": 19,
    "json": 245,
    "decimal": 246,
    "numeric": 246,
    "enum": 247,
    "set": 248,
    "char": 254,
    "binary": 254,
}
_BLOBS = {"tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob"}
_BLOBS.add("longblob")
_GEOMETRIES = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring"}
_GEOMETRIES |= {"multipolygon", "geometrycollection", "geomcollection"}
_BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_TEMPORAL = {"date", "datetime", "timestamp"}
_MICROS = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1)

COLUMNS_QUERY = (
    "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, "
    "NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME, COLLATION_NAME, "
    "CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION"
)


@dataclass(slots=True)
class SnapshotColumn:
    """A column as python-mysql-replication's ``Column`` describes it (the attributes
    ``types.make_converter`` reads), built from ``information_schema.COLUMNS``."""

    name: str
    data_type: str  # information_schema's DATA_TYPE, lower case
    type: int
    nullable: bool
    unsigned: bool = False
    character_set_name: str | None = None
    collation_name: str | None = None
    fsp: int = 0
    bits: int = 0
    decimals: int = 0
    max_length: int = 0
    set_values: tuple[str, ...] = ()
    geometry_type: int | None = None

    @property
    def binary(self) -> bool:
        return self.data_type in _BINARY_TYPES


def column_of(row: Sequence[Any], table: str) -> SnapshotColumn:
    """One row of ``COLUMNS_QUERY`` as a column."""
    name, data_type, column_type, nullable, precision, scale, fsp, charset, collation, octets = row
    data_type = str(data_type).lower()
    column_type = str(column_type).lower()
    if data_type in _BLOBS:
        code = 252
    elif data_type in _GEOMETRIES:
        code = 255
    elif data_type in _TYPE_CODES:
        code = _TYPE_CODES[data_type]
    else:
        raise SourceError(f"table {table}: column {name!r} of type {column_type} cannot be read")
    binary = data_type in _BINARY_TYPES
    return SnapshotColumn(
        name=name,
        data_type=data_type,
        type=code,
        nullable=nullable == "YES",
        unsigned="unsigned" in column_type,
        character_set_name="binary" if binary else charset,
        collation_name="binary" if binary else collation,
        fsp=int(fsp or 0),
        bits=int(precision or 0) if data_type == "bit" else 0,
        decimals=int(scale or 0),
        max_length=int(octets or 0),
        set_values=_members(column_type) if data_type in ("set", "enum") else (),
        geometry_type=mtypes.GEOMETRY_TYPE_POINT if data_type == "point" else None,
    )


def _members(column_type: str) -> tuple[str, ...]:
    # set('x','y''s') -> ('x', "y's"): MySQL doubles a quote inside a member
    inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return tuple(m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", inner))


def _identity(value: Any) -> Any:
    return value


def _bits(width: int) -> Callable[[Any], Any]:
    def to_library(value: bytes) -> str:
        return format(int.from_bytes(value, "big"), f"0{width}b")

    return to_library


def _year(value: int) -> int:
    return 1900 if value == 0 else value


def _time(value: dt.timedelta) -> dt.timedelta:
    micros = value // dt.timedelta(microseconds=1)
    fraction = -micros % _MICROS
    if micros >= 0 or not fraction:
        return value
    # -(S + F/10^6) s arrives from the library as -(S + 1) + F/10^6 s (types._time_micros)
    seconds = -micros // _MICROS
    return dt.timedelta(microseconds=-((seconds + 1) * _MICROS - fraction))


def _temporal(value: Any) -> Any:
    return None if isinstance(value, str | bytes) else value  # a zero or invalid date


def _timestamp(value: Any) -> Any:
    # the zero TIMESTAMP is 0 s after the epoch in the binlog
    return _EPOCH if isinstance(value, str | bytes) else value


def _mysql_json(value: str | bytes) -> str:
    out: list[str] = []
    write_json(json.loads(value), out)
    return "".join(out)


def _to_library(column: SnapshotColumn, flavor: str) -> Callable[[Any], Any]:
    """pymysql's value of ``column`` in python-mysql-replication's form."""
    if column.data_type == "bit":
        return _bits(column.bits)
    if column.data_type == "year":
        return _year
    if column.data_type == "time" and column.fsp:
        return _time
    if column.data_type == "timestamp":
        return _timestamp
    if column.data_type in _TEMPORAL:
        return _temporal
    if column.data_type == "json" and flavor == "mysql":
        return _mysql_json
    return _identity


def _select(column: SnapshotColumn) -> str:
    quoted = quote(column.name)
    return f"{quoted} + 0e0" if column.data_type == "float" else quoted


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class TableRows:
    """How to select one table's rows and encode them as the stream does: ``select``
    lists the columns (in table order), ``encode`` turns a selected row into the after
    image, ``key_json``/``key_values`` carry a row's primary key to the core and back."""

    def __init__(
        self,
        columns: Sequence[SnapshotColumn],
        key_columns: Sequence[str],
        *,
        flavor: str,
        options: Encoding,
    ) -> None:
        self.columns = tuple(columns)
        self.names = tuple(c.name for c in columns)
        self._options = options
        self._decoders: dict[tuple[Form, ...], Callable[[bytes], dict[str, Any]]] = {}
        self.select = ", ".join(_select(c) for c in columns)
        by_name = {c.name: c for c in columns}
        self.key_columns = tuple(key_columns)
        self.key_at = tuple(self.names.index(k) for k in self.key_columns)
        self._key_codecs = tuple(_key_codec(by_name[k]) for k in self.key_columns)
        # ENUM and SET sort by their numbers, which a comparison with a label does not
        # do: the keyset compares the numbers
        self.key_compared = tuple(
            f"{quote(k)} + 0" if by_name[k].data_type in ("enum", "set") else quote(k)
            for k in self.key_columns
        )
        self._to_library = tuple(_to_library(c, flavor) for c in columns)
        self._normalize = tuple(
            (index, to_library)
            for index, to_library in enumerate(self._to_library)
            if to_library is not _identity
        )
        self._convert = RowConverter(
            columns,
            nullable=[c.nullable for c in columns],
            geometry_types=[c.geometry_type or 0 for c in columns if c.type == 255],
            options=options,
        )

    def encode(self, row: Sequence[Any]) -> dict[str, Any]:
        values = list(row)
        for index, to_library in self._normalize:
            if values[index] is not None:
                values[index] = to_library(values[index])
        return self._convert(dict(zip(self.names, values, strict=True)))

    def decoder(self, forms: Sequence[Form]) -> Callable[[bytes], dict[str, Any]]:
        """The after image of a row packet (``snapshot_wire``) whose columns
        pymysql would read with ``forms`` (``snapshot_text``): the same as ``encode``'s."""
        decode = self._decoders.get(tuple(forms))
        if decode is None:
            if len(forms) != len(self.columns):
                raise SourceError(f"{len(forms)} columns selected, not {len(self.columns)}")
            decoders = tuple(
                column_decoder(
                    c, form, None if to_library is _identity else to_library, self._options
                )
                for c, form, to_library in zip(self.columns, forms, self._to_library, strict=True)
            )
            decode = self._decoders[tuple(forms)] = row_reader(self.names, decoders)
        return decode

    def raw_key_json(self, packet: bytes, forms: Sequence[Form]) -> list[Any]:
        """``key_json`` of a row packet."""
        values = wire_values(packet, len(self.columns))
        for at in self.key_at:
            values[at] = pymysql_form(forms[at])(values[at])  # type: ignore[arg-type]
        return self.key_json(values)

    def key_json(self, row: Sequence[Any]) -> list[Any]:
        """The primary key of a selected row as JSON values (``Chunk.last_key``)."""
        return [codec[0](row[at]) for at, codec in zip(self.key_at, self._key_codecs, strict=True)]

    def key_values(self, key: Sequence[Any]) -> tuple[Any, ...]:
        """``key_json``'s values back as query parameters."""
        if len(key) != len(self.key_columns):
            raise SourceError(
                f"a key of {len(key)} values for a primary key of {len(self.key_columns)} "
                f"columns ({', '.join(self.key_columns)})"
            )
        return tuple(codec[1](value) for value, codec in zip(key, self._key_codecs, strict=True))


KeyCodec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _key_codec(column: SnapshotColumn) -> KeyCodec:
    if column.binary or column.data_type == "bit":
        return (lambda value: bytes(value).hex()), bytes.fromhex
    if column.data_type in ("decimal", "numeric"):
        return str, Decimal
    if column.data_type == "time":
        return _time_literal, _identity
    if column.data_type in ("enum", "set"):
        return _identity, _member_number(column)
    if column.data_type in _TEMPORAL:
        return _temporal_literal, _identity
    return _identity, _identity


def _member_number(column: SnapshotColumn) -> Callable[[str], int]:
    """An ENUM label's number (1, 2, ...; '' is 0), a SET's bits, as ``col + 0`` gives."""
    at = {label.lower(): index for index, label in enumerate(column.set_values)}
    if column.data_type == "enum":
        return lambda label: at[label.lower()] + 1 if label else 0
    return lambda labels: sum(1 << at[m.lower()] for m in labels.split(",") if m)


def _time_literal(value: dt.timedelta) -> str:
    micros = value // dt.timedelta(microseconds=1)
    sign, micros = ("-" if micros < 0 else ""), abs(micros)
    seconds, fraction = divmod(micros, _MICROS)
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}.{fraction:06d}"


def _temporal_literal(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)  # a zero date, as MySQL prints it
