"""Row values of the binlog, encoded the way Debezium's MySQL and MariaDB connectors write them.

Input: what python-mysql-replication 1.0.17 yields in ``event.rows[i]["values"]`` (recorded
for every type in notes/mysql-replication.md), with the column objects of the TABLE_MAP event
(``binlog_row_metadata=FULL`` gives names, signedness, charsets, ENUM/SET strings).
Output: what Kafka's JsonConverter (``schemas.enable=false``) prints for Debezium's value with
the modes of ``[encoding]`` (``cdcd.encoding.Encoding``; Debezium's defaults:
``decimal.handling.mode=precise``, ``time.precision.mode=adaptive_time_microseconds``,
``bigint.unsigned.handling.mode=long``, ``binary.handling.mode=bytes``). Bytes become
base64 text, as JsonConverter writes them. ``time.precision.mode=connect`` gives Kafka
Connect's Date (days), Time (ms past midnight) and Timestamp (epoch ms) for DATE, TIME and
DATETIME; a TIME outside 00:00:00-24:00:00 has no Connect Time, and Debezium writes null
for it (an error in a NOT NULL column). The converter of each mode is chosen once per
column, never per value.

The Debezium sources cited below are in github.com/debezium/debezium:
``BinlogValueConverters`` (debezium-connector-binlog/.../jdbc/), ``RowDeserializers``
(.../binlog/event/), ``JdbcValueConverters`` and ``time/ZonedTimestamp`` (debezium-core), and
``JsonStringFormatter`` in mysql-binlog-connector-java.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cdcd.encoding import (
    DecimalMode,
    Encoding,
    binary_encoder,
    unscaled_at_scale,
    unscaled_base64,
    unscaled_encoder,
)
from cdcd.sources.mysql.json_text import json_text as _json_text

__all__ = [
    "Converter",
    "DEFAULT_OPTIONS",
    "RowConverter",
    "make_converter",
]

Converter = Callable[[Any], Any]

# python-mysql-replication's FIELD_TYPE codes (pymysqlreplication/constants/FIELD_TYPE.py);
# repeated so that this module needs no import of the driver.
_TINY, _SHORT, _LONG, _FLOAT, _DOUBLE = 1, 2, 3, 4, 5
_TIMESTAMP, _LONGLONG, _INT24, _DATE, _TIME, _DATETIME, _YEAR = 7, 8, 9, 10, 11, 12, 13
_VARCHAR, _BIT, _TIMESTAMP2, _DATETIME2, _TIME2 = 15, 16, 17, 18, 19
_JSON, _NEWDECIMAL, _ENUM, _SET = 245, 246, 247, 248
_BLOB, _VAR_STRING, _STRING, _GEOMETRY = 252, 253, 254, 255
_INTEGERS = frozenset({_TINY, _SHORT, _INT24, _LONG})
_STRINGS = frozenset({_VARCHAR, _BLOB, _VAR_STRING, _STRING})

# TABLE_MAP optional metadata GEOMETRY_TYPE: the real type of a geometry column (MySQL's
# Field::geometry_type). Only POINT gets Debezium's Point struct.
GEOMETRY_TYPE_POINT = 1

_EPOCH_DATE_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EPOCH = dt.datetime(1970, 1, 1)
_ONE_MICROSECOND = dt.timedelta(microseconds=1)
_MICROS_PER_SECOND = 1_000_000

# none_sources of python-mysql-replication 1.0.17 (constants/NONE_SOURCE.py): why a value
# is None. Zero dates ('0000-00-00', '2020-00-15') arrive as None with an 'out of ... range'
# source; nullability alone decides their encoding, as in Debezium.
_EMPTY_SET_SOURCE = "empty set"
_ABSENT_SOURCE = "cols bitmap"  # binlog_row_image=MINIMAL left the column out


# Debezium's defaults for the binlog connectors (Encoding's are PostgreSQL's where they differ)
DEFAULT_OPTIONS = Encoding(time_precision_mode="adaptive_time_microseconds")


def make_converter(
    column: Any,
    *,
    optional: bool = True,
    geometry_type: int | None = None,
    options: Encoding = DEFAULT_OPTIONS,
) -> Converter:
    """Build the value encoder of one column; called once per TABLE_MAP, then per value.

    ``column`` is a ``pymysqlreplication.column.Column`` (or anything with its attributes:
    ``type``, ``name``, ``unsigned``, ``character_set_name``, and per type ``fsp``, ``bits``,
    ``decimals``, ``max_length``, ``set_values``). ``optional`` is the column's nullability
    (TABLE_MAP null bitmap): a None in a NOT NULL column, which is how a zero date arrives,
    becomes Debezium's fallback (0, epoch, "") since the column default is not in the
    binlog. ``geometry_type`` comes from the GEOMETRY_TYPE optional metadata.
    """
    encode = _encoder(column, geometry_type, options, optional)
    fallback = None if optional else _fallback(column, geometry_type, options)
    if encode is _identity and fallback is None:
        return _identity

    def convert(value: Any) -> Any:
        if value is None:
            return fallback
        return encode(value)

    return convert


def _encoder(
    column: Any, geometry_type: int | None, options: Encoding, optional: bool
) -> Converter:
    column_type = column.type
    connect = options.time_precision_mode == "connect"
    if column_type in _INTEGERS or column_type == _YEAR:
        # Unsigned TINYINT..INT arrive unsigned already (TABLE_MAP signedness); Debezium
        # widens their schema type, the number is the same. YEAR: both this library and
        # RowDeserializers.deserializeYear give 1900 + the stored byte (YEAR 0000 -> 1900).
        return _identity
    if column_type == _LONGLONG:
        if not column.unsigned:
            return _identity
        if options.bigint_unsigned_mode == "precise":
            # SpecialValueDecimal.builder(DecimalMode.PRECISE, 20, 0): Decimal bytes whatever
            # decimal.handling.mode says
            return unscaled_base64
        # 'long': the binlog client hands Debezium a Java long, so 2^63.. wraps negative
        # (BinlogValueConverters.converter: BIGINT UNSIGNED + LONG -> convertBigInt).
        return _unsigned_bigint_as_long
    if column_type == _FLOAT:
        # FLOAT(p<=24) is FLOAT32 (BinlogValueConverters.schemaBuilder); the library widens
        # it to a Python double, so keep the shortest decimal that is the same float32
        # (what Java's Float.toString prints: 3.14, not 3.140000104904175).
        return _float32
    if column_type == _DOUBLE:
        return _identity
    if column_type == _NEWDECIMAL:
        return _decimal_encoder(column.decimals, options.decimal_mode)
    if column_type == _BIT:
        if column.bits == 1:
            return _bit_as_bool  # JdbcValueConverters.convertBit: BIT(1) -> boolean
        return _bits_encoder(column.bits)
    if column_type == _DATE:
        return _epoch_days  # io.debezium.time.Date
    if column_type in (_TIME, _TIME2):
        fsp = getattr(column, "fsp", 0) or 0
        if connect:
            to_millis = connect_time(column.name, optional)
            return lambda value: to_millis(_time_micros(value, fsp))
        return lambda value: _time_micros(value, fsp)  # io.debezium.time.MicroTime
    if column_type in (_DATETIME, _DATETIME2):
        # JdbcValueConverters: TIMESTAMP precision <= 3 -> Timestamp (ms), <= 6 ->
        # MicroTimestamp; connect: Connect's Timestamp (ms) whatever the precision
        if connect or (getattr(column, "fsp", 0) or 0) <= 3:
            return _epoch_millis
        return _epoch_micros
    if column_type in (_TIMESTAMP, _TIMESTAMP2):
        fsp = getattr(column, "fsp", 0) or 0
        return lambda value: _zoned_timestamp(value, fsp)  # io.debezium.time.ZonedTimestamp
    if column_type == _ENUM:
        return _identity  # the library maps the index to the label; index 0 is ''
    if column_type == _SET:
        return _set_encoder(column)
    if column_type in _STRINGS:
        if _is_binary(column):
            pad_to = column.max_length if column_type == _STRING else 0
            return _binary_encoder(binary_encoder(options.binary_mode), pad_to)
        return _text_encoder(column)
    if column_type == _JSON:
        return _json_text
    if column_type == _GEOMETRY:
        return _geometry_encoder(geometry_type == GEOMETRY_TYPE_POINT)
    raise ValueError(
        f"column {column.name!r}: binlog type {column_type} has no Debezium encoding in cdcd"
    )


def _identity(value: Any) -> Any:
    return value


def _unsigned_bigint_as_long(value: int) -> int:
    return value - 2**64 if value >= 2**63 else value


def _float32(value: float) -> float:
    if not math.isfinite(value) or value == 0:
        return value
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        try:
            if struct.unpack("<f", struct.pack("<f", candidate))[0] == value:
                return candidate
        except OverflowError:  # rounded past FLT_MAX
            continue
    return value


def _decimal_encoder(scale: int, mode: DecimalMode) -> Converter:
    # The library yields a Decimal at the column's scale, as the binlog client gives
    # Debezium a BigDecimal; cdcd.encoding writes it in the mode, as rows.py does.
    encode = unscaled_encoder(mode, scale)
    return lambda value: encode(unscaled_at_scale(value, scale))


def _bit_as_bool(value: str) -> bool:
    # The library yields BIT(n) as a string of '0'/'1', most significant bit first.
    return value == "1"


def _bits_encoder(bits: int) -> Converter:
    size = (bits + 7) // 8
    # io.debezium.data.Bits: the bits little-endian (BitSet.toByteArray), padded to size;
    # a BYTES schema whatever binary.handling.mode says
    return lambda value: _base64(int(value, 2).to_bytes(size, "little"))


_MICROS_PER_DAY = 86_400 * _MICROS_PER_SECOND


def connect_time(name: str, optional: bool) -> Callable[[int], int | None]:
    """Kafka Connect's Time (ms past midnight, Duration.toMillis) of a TIME in µs; outside
    00:00:00-24:00:00 Debezium's Time.toMilliOfDay refuses it: null, or in a NOT NULL
    column an error naming the setting."""

    def to_millis(micros: int) -> int | None:
        if 0 <= micros <= _MICROS_PER_DAY:
            return micros // 1000
        if optional:
            return None
        raise ValueError(
            f"column {name!r}: TIME of {micros} µs is outside 00:00:00-24:00:00, which "
            'time_precision_mode = "connect" cannot encode; set [encoding] '
            'time_precision_mode = "adaptive_time_microseconds" to encode it, then restart'
        )

    return to_millis


def _epoch_days(value: dt.date) -> int:
    return value.toordinal() - _EPOCH_DATE_ORDINAL


def _time_micros(value: dt.timedelta, fsp: int) -> int:
    micros: int = value // _ONE_MICROSECOND
    if fsp and micros < 0 and micros % _MICROS_PER_SECOND:
        # python-mysql-replication 1.0.17 decodes a negative TIME(fsp>0) with a fraction as
        # -(seconds + 1) + fraction: '-12:34:56.789012' arrives as -45296.210988 s. The
        # binlog stores one two's-complement number; RowDeserializers.deserializeTimeV2
        # negates it whole. Undo the library's split: see notes/mysql-replication.md.
        magnitude = -micros
        seconds = magnitude // _MICROS_PER_SECOND + 1
        micros = -(seconds * _MICROS_PER_SECOND - magnitude % _MICROS_PER_SECOND)
    return micros


def _epoch_micros(value: dt.datetime) -> int:
    # DATETIME has no zone: Debezium reads the wall clock as UTC.
    micros: int = (value - _EPOCH) // _ONE_MICROSECOND
    return micros


def _epoch_millis(value: dt.datetime) -> int:
    return _epoch_micros(value) // 1000


def _zoned_timestamp(value: dt.datetime, fsp: int) -> str:
    # The library yields TIMESTAMP as a naive UTC datetime (utcfromtimestamp). Debezium
    # prints ISO_OFFSET_DATE_TIME in UTC ('Z'); since 2.x ZonedTimestamp.toIsoString pads the
    # fraction to exactly the column's fsp, and without fsp prints only non-zero digits.
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if fsp > 0:
        text += f".{value.microsecond:06d}"[: fsp + 1]
    elif value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _set_encoder(column: Any) -> Converter:
    order = {label: index for index, label in enumerate(column.set_values or ())}

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return value
        # The library yields a Python set; Debezium lists the labels in definition order
        # (BinlogValueConverters.convertSetValue walks the bits low to high).
        return ",".join(sorted(value, key=lambda label: order.get(label, len(order))))

    return encode


def _is_binary(column: Any) -> bool:
    # charset 63 'binary': BINARY, VARBINARY, BLOB; the library names it 'binary'
    charset = getattr(column, "character_set_name", None)
    return charset == "binary" or getattr(column, "collation_name", None) == "binary"


def _binary_encoder(encode_bytes: Callable[[bytes], str], pad_to: int) -> Converter:
    def encode(value: bytes | str) -> str:
        if isinstance(value, str):
            # b"".decode("binary") does not fail like other bytes do, so an empty binary
            # value arrives as '' (recorded with 1.0.17).
            value = value.encode()
        if pad_to and len(value) < pad_to:
            # BINARY(n) loses its trailing 0x00 in the binlog; Debezium pads them back (DBZ-254)
            value = value.ljust(pad_to, b"\x00")
        return encode_bytes(value)

    return encode


def _text_encoder(column: Any) -> Converter:
    encoding = getattr(column, "character_set_name", None) or "utf-8"

    def encode(value: str | bytes) -> str:
        if isinstance(value, str):
            return value
        # The library leaves bytes when Python has no codec for the charset (e.g. swe7).
        try:
            return value.decode(encoding)
        except (LookupError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"column {column.name!r}: cannot decode text in charset {encoding!r}: {exc}"
            ) from None

    return encode


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _geometry_encoder(is_point: bool) -> Converter:
    def encode(value: bytes) -> dict[str, Any]:
        # BinlogGeometry.fromBytes: 4-byte little-endian SRID, then WKB; SRID 0 -> null
        srid = int.from_bytes(value[:4], "little", signed=True) or None
        wkb = value[4:]
        if is_point:
            # io.debezium.data.geometry.Point: x, y, wkb, srid (Point.parseWKBPoint)
            if len(wkb) != 21:
                raise ValueError(f"not a 2D POINT in WKB ({len(wkb)} bytes instead of 21)")
            order = "<" if wkb[0] else ">"
            x, y = struct.unpack_from(f"{order}dd", wkb, 5)
            return {"x": x, "y": y, "wkb": _base64(wkb), "srid": srid}
        return {"wkb": _base64(wkb), "srid": srid}

    return encode


def _fallback(column: Any, geometry_type: int | None, options: Encoding) -> Any:
    """Debezium's value for a NULL in a NOT NULL column without default (convertValue)."""
    column_type = column.type
    if column_type in (_TIMESTAMP, _TIMESTAMP2):
        return "1970-01-01T00:00:00Z"  # fallbackTimestampWithTimeZone
    if column_type == _BIT:
        return False if column.bits == 1 else ""
    if column_type in (_FLOAT, _DOUBLE):
        return 0.0
    if column_type == _NEWDECIMAL:
        return unscaled_encoder(options.decimal_mode, column.decimals)(0)
    if column_type == _LONGLONG and column.unsigned and options.bigint_unsigned_mode == "precise":
        return _base64(b"\x00")
    if column_type in (_ENUM, _SET, _JSON):
        return "{}" if column_type == _JSON else ""
    if column_type in _STRINGS:
        return ""
    if column_type == _GEOMETRY:
        # BinlogGeometry.createEmpty: GEOMETRYCOLLECTION EMPTY, no SRID
        empty = {"wkb": _base64(bytes.fromhex("010700000000000000")), "srid": None}
        if geometry_type == GEOMETRY_TYPE_POINT:
            return None  # Debezium cannot build a Point from the empty collection either
        return empty
    return 0  # integers, YEAR, DATE, TIME, DATETIME: 0 / the epoch


# --- whole rows ---------------------------------------------------------------------------


def table_map_facts(event: Any) -> tuple[list[bool] | None, list[int] | None]:
    """A TABLE_MAP's columns' nullability (its null bitmap) and the GEOMETRY_TYPE of its
    geometry columns in order; None where the event has none."""
    bitmask = getattr(event, "null_bitmask", None)
    nullable = None
    if bitmask:
        nullable = [bool(bitmask[i // 8] & (1 << (i % 8))) for i in range(len(event.columns))]
    metadata = getattr(event, "optional_metadata", None)
    geometry_types = getattr(metadata, "geometry_type_list", None) or None
    return nullable, geometry_types


class RowConverter:
    """Encodes the rows of one table, built once per TABLE_MAP event.

    ``columns`` are the TABLE_MAP's column objects; ``nullable`` their nullability (from the
    event's ``null_bitmask``) and ``geometry_types`` the GEOMETRY_TYPE metadata of the
    geometry columns in order; both optional.
    """

    def __init__(
        self,
        columns: Sequence[Any],
        *,
        nullable: Sequence[bool] | None = None,
        geometry_types: Sequence[int] | None = None,
        options: Encoding = DEFAULT_OPTIONS,
    ) -> None:
        missing = [index for index, column in enumerate(columns) if not column.name]
        if missing:
            raise ValueError(
                f"the binlog does not name columns {missing} of this table; set "
                f"binlog_row_metadata=FULL on the server (MySQL 8.0.14+, MariaDB 10.5+)"
            )
        geometry_iter = iter(geometry_types or ())
        self.names: tuple[str, ...] = tuple(column.name for column in columns)
        self._set_columns = frozenset(c.name for c in columns if c.type == _SET)
        converters: list[tuple[str, Converter | None]] = []
        for index, column in enumerate(columns):
            geometry_type = next(geometry_iter, None) if column.type == _GEOMETRY else None
            optional = True if nullable is None else nullable[index]
            convert = make_converter(
                column, optional=optional, geometry_type=geometry_type, options=options
            )
            converters.append((column.name, None if convert is _identity else convert))
        self._converters = tuple(converters)

    @classmethod
    def from_table_map(cls, event: Any, options: Encoding = DEFAULT_OPTIONS) -> RowConverter:
        """Build from a ``pymysqlreplication.row_event.TableMapEvent``."""
        nullable, geometry_types = table_map_facts(event)
        return cls(event.columns, nullable=nullable, geometry_types=geometry_types, options=options)

    def __call__(
        self, values: Mapping[str, Any], none_sources: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Encode one row image (``row["values"]`` with ``row["none_sources"]``)."""
        row: dict[str, Any] = {}
        for name, convert in self._converters:
            value = values.get(name)
            if value is None and none_sources:
                source = none_sources.get(name)
                if source == _EMPTY_SET_SOURCE and name in self._set_columns:
                    row[name] = ""  # a SET with no member: Debezium writes ''
                    continue
                if source == _ABSENT_SOURCE:
                    row[name] = None  # not in a MINIMAL row image: invent nothing
                    continue
            row[name] = value if convert is None else convert(value)
        return row
