"""PostgreSQL text-format values -> the JSON values Debezium's PostgreSQL connector emits.

pgoutput (non-binary) sends every column as the text its output function writes. This
module turns that text into what Debezium 2.x/3.x writes with the JsonConverter
(``schemas.enable=false``) in the modes of ``[encoding]`` (``cdcd.encoding.Encoding``),
which pick each column's converter once, when its table is compiled. Below, Debezium's
defaults (``decimal.handling.mode=precise``, ``time.precision.mode=adaptive``,
``binary.handling.mode=bytes``, ``interval.handling.mode=numeric``,
``hstore.handling.mode=json``, ``money.fraction.digits=2``), then the other modes:

- ``time.precision.mode``: adaptive_time_microseconds: time(p) always MicroTime (us);
  connect: Kafka Connect's Date (days), Time (ms) and Timestamp (ms) whatever p.
  timetz and timestamptz keep their ISO strings in every mode.
- ``binary.handling.mode``: base64 writes what bytes does through the JsonConverter;
  base64-url-safe (Java's URL encoder, padded) and hex (lower case) differ.
- ``interval.handling.mode=string``: io.debezium.time.Interval, ``P1Y2M3DT4H5M6.78S``.
- ``hstore.handling.mode=map``: the map as a JSON object.
- ``money.fraction.digits``: money's scale in precise mode (rounded half up).

The rules, and where they come from (Debezium ``PostgresValueConverter``,
``JdbcValueConverters``, ``io.debezium.time.*``, ``io.debezium.data.*``; pgjdbc
``TypeInfoCache``, ``PGInterval``; Kafka ``JsonConverter`` with Jackson defaults):

- bool -> bool; int2/int4/int8/oid -> int.
- float4/float8 -> float; NaN and +/-Infinity -> the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"`` (Jackson's default QUOTE_NON_NUMERIC_NUMBERS writes them quoted).
- numeric and money -> in each ``decimal.handling.mode``: see ``numeric`` (precise: a
  Kafka Connect Decimal, VariableScaleDecimal without typmod, money at scale 2; NaN and
  Infinity stop with a DecodeError naming the setting that encodes them).
- bytea -> base64 of the bytes (BYTES in the JsonConverter).
- date -> days since 1970-01-01 (io.debezium.time.Date).
- time(p) -> ms past midnight (Time) for p <= 3, else us (MicroTime); no typmod means 6.
- timestamp(p) -> ms since the epoch (Timestamp) for p <= 3, else us (MicroTimestamp).
- timetz -> ZonedTime: ISO-8601 time in UTC, fraction without trailing zeros, ``Z``.
- timestamptz(p) -> ZonedTimestamp: ISO-8601 in UTC with exactly p fractional digits
  (no typmod means 6, p = 0 means none; DBZ-5996/DBZ-6163), ``Z``; infinity -> the
  strings ``"infinity"``/``"-infinity"``.
- interval -> MicroDuration: microseconds with months counted as 365.25/12 days, computed
  in IEEE doubles exactly as ``MicroDuration.durationMicros`` does, then truncated.
- bit(1)/varbit(1) -> bool; other bit/varbit -> io.debezium.data.Bits: the bit string read
  as a binary number, little-endian, as few bytes as the highest set bit needs (so all
  zero bits give an empty byte string), base64.
- point -> ``{"x", "y", "wkb": base64 of 2D WKB (little-endian), "srid": null}``.
- hstore -> Json: the map as compact JSON text (keys in PostgreSQL's order).
- uuid, json, jsonb, xml, inet, cidr, macaddr(8), ranges, tsvector, ltree, citext, enums and
  every other type -> the text as sent.
- arrays -> JSON arrays of the element encodings; multi-dimensional arrays -> nested lists.

Infinite dates and timestamps reproduce the constants of released Debezium versions,
including their known oddities (``PostgresValueConverter.POSITIVE_INFINITY_*``): date
infinity -> -2147472692 and -infinity -> -2147472691 days; timestamp infinity ->
9223372036825200000 us / 9223372036825200 ms, -infinity -> -9223372036832400000 us /
-9223372036832400 ms.

The text formats assumed are those of the replication session: ``DateStyle=ISO``,
``IntervalStyle=postgres``, ``bytea_output=hex``, ``lc_monetary=C``. Offsets in
timestamptz/timetz are honoured whatever ``TimeZone`` is.

Converters raise ValueError on text they cannot parse, and DecodeError for values that
the configured modes cannot represent.
"""

from __future__ import annotations

import binascii
import re
import struct
from collections.abc import Callable
from typing import Any, Final

from cdcd.encoding import Encoding, binary_encoder
from cdcd.sources.postgres.containers import array_converter, hstore, hstore_map, parse_array
from cdcd.sources.postgres.numeric import (
    SPECIALS_AS_DOUBLE,
    encode_decimal,
    encode_variable_scale_decimal,
    money_converter,
    numeric_converter,
)
from cdcd.sources.postgres.times import (
    date_days,
    interval_iso,
    interval_micros,
    time_ms,
    time_us,
    timestamp_ms,
    timestamp_us,
    timestamptz,
    timetz,
)

__all__ = [
    "Converter",
    "encode_decimal",
    "encode_variable_scale_decimal",
    "make_converter",
    "parse_array",
]

#: A column converter: PostgreSQL text value in, Debezium JSON value out.
Converter = Callable[[str], Any]

# Builtin type OIDs (pg_type.dat).
BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 18, 19, 20, 21, 23, 25, 26
JSON, XML, POINT, CIDR, FLOAT4, FLOAT8 = 114, 142, 600, 650, 700, 701
MACADDR8, MONEY, MACADDR, INET, BPCHAR, VARCHAR = 774, 790, 829, 869, 1042, 1043
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ = 1082, 1083, 1114, 1184, 1186, 1266
BIT, VARBIT, NUMERIC, UUID, TSVECTOR, JSONB = 1560, 1562, 1700, 2950, 3614, 3802


# --- scalar types (dates and times: ``times``; numeric and money: ``numeric``) -----------


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _float(text: str) -> float | str:
    special = SPECIALS_AS_DOUBLE.get(text)
    return special if special is not None else float(text)


def _bool(text: str) -> bool:
    return text == "t"


_BYTEA_ESCAPE = re.compile(rb"\\(\\|[0-7]{3})")


def _bytea(encode: Callable[[bytes], str]) -> Converter:
    """bytea's text (hex, or bytea_output=escape) as binary.handling.mode writes it."""
    a2b_hex = binascii.a2b_hex

    def convert(text: str) -> str:
        if text.startswith("\\x"):
            return encode(a2b_hex(text[2:]))
        # bytea_output=escape: printable ASCII as is, '\\' and '\ooo' octal escapes.
        raw = _BYTEA_ESCAPE.sub(
            lambda m: b"\\" if m.group(1) == b"\\" else bytes([int(m.group(1), 8)]),
            text.encode("latin-1"),
        )
        return encode(raw)

    return convert


def _bits_as_bool(text: str) -> bool:
    return "1" in text


def _bits(text: str) -> str:
    value = int(text, 2) if text else 0
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "little"))


_WKB_POINT = struct.Struct("<BIdd")


def _point(text: str) -> dict[str, Any]:
    x_text, _, y_text = text.strip().strip("()").partition(",")
    x, y = float(x_text), float(y_text)
    return {"x": x, "y": y, "wkb": _b64(_WKB_POINT.pack(1, 1, x, y)), "srid": None}


# --- the registry ------------------------------------------------------------------------


def _precision(typmod: int) -> int:
    # pgjdbc TypeInfoCache.getScale for time/timestamp types: no typmod means 6.
    return 6 if typmod < 0 else typmod


def _bit(typmod: int) -> Converter:
    # Column length is the typmod (bit(n), varbit(n)); varbit without one is 2^31 - 1.
    return _bits_as_bool if typmod == 1 else _bits


def _time(typmod: int, encoding: Encoding) -> Converter:
    mode = encoding.time_precision_mode
    if mode == "connect" or (mode == "adaptive" and _precision(typmod) <= 3):
        return time_ms
    return time_us  # adaptive_time_microseconds: always MicroTime


def _timestamp(typmod: int, encoding: Encoding) -> Converter:
    if encoding.time_precision_mode == "connect" or _precision(typmod) <= 3:
        return timestamp_ms
    return timestamp_us


# Each builtin type's converter for a typmod in the modes of an Encoding.
_SCALARS: Final[dict[int, Callable[[int, Encoding], Converter]]] = {
    BOOL: lambda _, __: _bool,
    BYTEA: lambda _, encoding: _bytea(binary_encoder(encoding.binary_mode)),
    INT2: lambda _, __: int,
    INT4: lambda _, __: int,
    INT8: lambda _, __: int,
    OID: lambda _, __: int,
    FLOAT4: lambda _, __: _float,
    FLOAT8: lambda _, __: _float,
    DATE: lambda _, __: date_days,
    TIME: _time,
    TIMETZ: lambda _, __: timetz,
    TIMESTAMP: _timestamp,
    TIMESTAMPTZ: lambda typmod, _: timestamptz(_precision(typmod)),
    INTERVAL: lambda _, e: interval_iso if e.interval_mode == "string" else interval_micros,
    BIT: lambda typmod, _: _bit(typmod),
    VARBIT: lambda typmod, _: _bit(typmod),
    POINT: lambda _, __: _point,
    NUMERIC: lambda typmod, encoding: numeric_converter(typmod, encoding.decimal_mode),
    MONEY: lambda _, e: money_converter(e.decimal_mode, e.money_fraction_digits),
}

# Array type OID -> element type OID (pg_type.typelem), for the builtin types above and the
# builtin text-encoded ones.
_ARRAYS: Final = {
    1000: BOOL,
    1001: BYTEA,
    1002: CHAR,
    1003: NAME,
    1005: INT2,
    1007: INT4,
    1009: TEXT,
    1014: BPCHAR,
    1015: VARCHAR,
    1016: INT8,
    1017: POINT,
    1021: FLOAT4,
    1022: FLOAT8,
    1028: OID,
    791: MONEY,
    651: CIDR,
    1041: INET,
    1040: MACADDR,
    775: MACADDR8,
    1182: DATE,
    1183: TIME,
    1115: TIMESTAMP,
    1185: TIMESTAMPTZ,
    1187: INTERVAL,
    1231: NUMERIC,
    1270: TIMETZ,
    1561: BIT,
    1563: VARBIT,
    2951: UUID,
    199: JSON,
    3807: JSONB,
    143: XML,
    3643: TSVECTOR,
    3645: 3615,  # tsquery
    3905: 3904,  # int4range
    3907: 3906,  # numrange
    3909: 3908,  # tsrange
    3911: 3910,  # tstzrange
    3913: 3912,  # daterange
    3927: 3926,  # int8range
    3221: 3220,  # pg_lsn
}

# Builtin type names as a Type message or a domain's base type reports them.
_NAMES: Final = {
    "bool": BOOL,
    "bytea": BYTEA,
    "char": CHAR,
    "name": NAME,
    "int8": INT8,
    "int2": INT2,
    "int4": INT4,
    "text": TEXT,
    "oid": OID,
    "json": JSON,
    "xml": XML,
    "point": POINT,
    "cidr": CIDR,
    "float4": FLOAT4,
    "float8": FLOAT8,
    "macaddr8": MACADDR8,
    "money": MONEY,
    "macaddr": MACADDR,
    "inet": INET,
    "bpchar": BPCHAR,
    "varchar": VARCHAR,
    "date": DATE,
    "time": TIME,
    "timestamp": TIMESTAMP,
    "timestamptz": TIMESTAMPTZ,
    "interval": INTERVAL,
    "timetz": TIMETZ,
    "bit": BIT,
    "varbit": VARBIT,
    "numeric": NUMERIC,
    "uuid": UUID,
    "tsvector": TSVECTOR,
    "jsonb": JSONB,
}

# Extension types (no fixed OID) recognised by name.
_EXTENSIONS: Final[dict[str, Callable[[Encoding], Converter]]] = {
    "hstore": lambda encoding: hstore_map if encoding.hstore_mode == "map" else hstore,
}

#: Debezium's defaults for PostgreSQL.
DEFAULT_ENCODING: Final = Encoding()


def _scalar(type_oid: int, typmod: int, encoding: Encoding) -> Converter:
    factory = _SCALARS.get(type_oid)
    return str if factory is None else factory(typmod, encoding)


def make_converter(
    type_oid: int,
    typmod: int,
    type_name: str | None = None,
    encoding: Encoding = DEFAULT_ENCODING,
) -> Converter:
    """Build the converter of one column from its Relation message type and typmod.

    ``type_name`` comes from the Type message pgoutput sends for non-builtin types (enums,
    domains, extension types); it is ignored for builtin OIDs. Anything unrecognised is
    passed through as its text, as are enums. ``encoding`` holds the modes (their arrays
    and domains follow them too).
    """
    if type_oid in _SCALARS:
        return _scalar(type_oid, typmod, encoding)
    element = _ARRAYS.get(type_oid)
    if element is not None:
        return array_converter(_scalar(element, typmod, encoding))
    if type_name is None or type_oid < 10000:  # builtin text-encoded type, or unknown
        return str
    return _converter_by_name(type_name, typmod, encoding)


def _converter_by_name(type_name: str, typmod: int, encoding: Encoding) -> Converter:
    if type_name.startswith("_"):  # array types are named after their element, with '_'
        return array_converter(_converter_by_name(type_name[1:], typmod, encoding))
    extension = _EXTENSIONS.get(type_name)
    if extension is not None:
        return extension(encoding)
    builtin = _NAMES.get(type_name)  # a domain over a builtin type
    return str if builtin is None else _scalar(builtin, typmod, encoding)
