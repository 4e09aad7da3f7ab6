"""Debezium encodings of binlog values.

The inputs are what python-mysql-replication 1.0.17 yielded from a MariaDB 10.11 server
(ROW, binlog_row_metadata=FULL) for the table in notes/mysql-replication.md, with the column
attributes it reported; MySQL-only JSON inputs are the values the library's own test suite
expects (pymysqlreplication/tests/test_data_type.py). The expected outputs follow Debezium's
converters as cited in cdcd/sources/mysql/types.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymysqlreplication.column import Column

from cdcd.encoding import Encoding
from cdcd.sources.mysql.types import RowConverter, make_converter

UTF8MB4 = {"character_set_name": "utf8", "collation_name": "utf8mb4_general_ci"}
LATIN1 = {"character_set_name": "cp1252", "collation_name": "latin1_swedish_ci"}
BINARY = {"character_set_name": "binary", "collation_name": "binary"}


def column(type: int, name: str | None = "c", **attrs: Any) -> Column:
    """A column as python-mysql-replication builds it from a FULL-metadata TABLE_MAP."""
    defaults = {
        "unsigned": False,
        "is_primary": False,
        "charset_id": None,
        "character_set_name": None,
        "collation_name": None,
        "enum_values": None,
        "set_values": None,
        "visibility": False,
    }
    return Column(type=type, name=name, **{**defaults, **attrs})


def convert(col: Column, value: Any, **kwargs: Any) -> Any:
    return make_converter(col, **kwargs)(value)


TINY, SHORT, LONG, FLOAT, DOUBLE, LONGLONG, INT24 = 1, 2, 3, 4, 5, 8, 9
DATE, YEAR, VARCHAR, BIT, TIMESTAMP2, DATETIME2, TIME2 = 10, 13, 15, 16, 17, 18, 19
JSON_TYPE, NEWDECIMAL, ENUM, SET, BLOB, STRING, GEOMETRY = 245, 246, 247, 248, 252, 254, 255

# (column, value yielded by the library, Debezium's JSON value), recorded from MariaDB 10.11
RECORDED = [
    # integers: TABLE_MAP signedness makes the library yield unsigned values already
    (column(TINY), -128, -128),
    (column(TINY, unsigned=True), 255, 255),
    (column(TINY), 1, 1),  # TINYINT(1)/BOOLEAN: INT16 in Debezium, not a boolean
    (column(SHORT), -32768, -32768),
    (column(SHORT, unsigned=True), 65535, 65535),
    (column(INT24), -8388608, -8388608),
    (column(INT24, unsigned=True), 16777215, 16777215),
    (column(LONG), -2147483648, -2147483648),
    (column(LONG, unsigned=True), 4294967295, 4294967295),
    (column(LONGLONG), -9223372036854775808, -9223372036854775808),
    # bigint.unsigned.handling.mode=long: a Java long, so 2^64-1 wraps to -1
    (column(LONGLONG, unsigned=True), 18446744073709551615, -1),
    (column(LONGLONG, unsigned=True), 9223372036854775807, 9223372036854775807),
    # DECIMAL, precise: base64 of the big-endian two's-complement unscaled value
    (column(NEWDECIMAL, precision=10, decimals=2), Decimal("-12345678.91"), "tmn9LQ=="),
    (column(NEWDECIMAL, precision=20, decimals=0), Decimal("12345678901234567890"), "AKtUqYzrHwrS"),
    (
        column(NEWDECIMAL, precision=65, decimals=30),
        Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
        "4f1D4Wh6dCOTRq+nDL2ygsWAE4T8HZlxwPUu",
    ),
    (column(NEWDECIMAL, precision=10, decimals=2), Decimal("0.00"), "AA=="),
    (column(NEWDECIMAL, precision=10, decimals=2), Decimal("0.01"), "AQ=="),
    (column(NEWDECIMAL, precision=20, decimals=0), Decimal("-1"), "/w=="),
    # FLOAT is FLOAT32: the shortest decimal of the same float32
    (column(FLOAT, size=4), 3.140000104904175, 3.14),
    (column(FLOAT, size=4), 1234.5670166015625, 1234.567),  # FLOAT(7,3) too (see notes)
    (column(FLOAT, size=4), 1.000000013351432e-10, 1e-10),
    (column(FLOAT, size=4), 0.0, 0.0),
    (column(DOUBLE, size=8), 2.718281828459045, 2.718281828459045),
    (column(DOUBLE, size=8), -1e308, -1e308),
    # BIT(1) is a boolean; BIT(n) the bits little-endian in ceil(n/8) bytes
    (column(BIT, bits=1, bytes=1), "1", True),
    (column(BIT, bits=1, bytes=1), "0", False),
    (column(BIT, bits=12, bytes=2), "101000000001", "AQo="),
    (column(BIT, bits=12, bytes=2), "000000000000", "AAA="),
    (column(BIT, bits=64, bytes=8), "1" + "0" * 62 + "1", "AQAAAAAAAIA="),
    # YEAR: 1900 + the stored byte, also for YEAR 0000 (as Debezium's deserializeYear)
    (column(YEAR, unsigned=True), 2024, 2024),
    (column(YEAR, unsigned=True), 1900, 1900),
    (column(YEAR, unsigned=True), 1901, 1901),
    # DATE: days since the epoch
    (column(DATE), dt.date(2024, 2, 29), 19782),
    (column(DATE), dt.date(1969, 7, 20), -165),
    (column(DATE), dt.date(9999, 12, 31), 2932896),
    # TIME: MicroTime, signed, beyond 24h
    (column(TIME2, fsp=0), dt.timedelta(days=-35, seconds=3601), -3020399000000),  # -838:59:59
    (
        column(TIME2, fsp=6),
        dt.timedelta(days=34, seconds=82799, microseconds=999999),
        3020399999999,
    ),  # 838:59:59.999999
    (column(TIME2, fsp=0), dt.timedelta(days=1, seconds=1), 86401000000),  # 24:00:01
    (column(TIME2, fsp=0), dt.timedelta(0), 0),
    # negative TIME with a fraction: the library's value is off, see types._time_micros
    (
        column(TIME2, fsp=3),
        dt.timedelta(days=-1, seconds=86398, microseconds=500000),
        -1500000,
    ),  # -00:00:01.500 (the library happens to be right for .5)
    (
        column(TIME2, fsp=6),
        dt.timedelta(days=-1, seconds=86399, microseconds=1),
        -1,
    ),  # -00:00:00.000001, yielded as -0.999999 s
    (
        column(TIME2, fsp=6),
        dt.timedelta(days=-1, seconds=41103, microseconds=789012),
        -45296789012,
    ),  # -12:34:56.789012, yielded as -45296.210988 s
    # ... and for every fsp (recorded from a second table, TIME(1) to TIME(6))
    (column(TIME2, fsp=1), dt.timedelta(days=-1, seconds=86398, microseconds=100000), -1100000),
    (column(TIME2, fsp=1), dt.timedelta(days=-1, seconds=86399, microseconds=900000), -900000),
    (
        column(TIME2, fsp=2),
        dt.timedelta(days=-35, seconds=3601, microseconds=990000),
        -3020398990000,
    ),  # -838:59:58.99
    (column(TIME2, fsp=2), dt.timedelta(days=-1, seconds=86399, microseconds=10000), -10000),
    (column(TIME2, fsp=4), dt.timedelta(days=-1, seconds=82676, microseconds=100), -3723000100),
    (column(TIME2, fsp=4), dt.timedelta(days=-1, seconds=86399, microseconds=999900), -999900),
    (column(TIME2, fsp=5), dt.timedelta(days=-1, seconds=86399, microseconds=10), -10),
    (
        column(TIME2, fsp=5),
        dt.timedelta(days=-1, seconds=50399, microseconds=500000),
        -36000500000,
    ),  # -10:00:00.5
    (column(TIME2, fsp=6), dt.timedelta(days=-1, seconds=86340, microseconds=999999), -59999999),
    (column(TIME2, fsp=6), dt.timedelta(days=-1, seconds=86399, microseconds=500000), -500000),
    # DATETIME(0-3): Timestamp (ms); DATETIME(4-6): MicroTimestamp (µs); the wall clock as UTC
    (column(DATETIME2, fsp=0), dt.datetime(2024, 2, 29, 23, 59, 59), 1709251199000),
    (column(DATETIME2, fsp=3), dt.datetime(1969, 12, 31, 23, 59, 59, 999000), -1),
    (column(DATETIME2, fsp=0), dt.datetime(1000, 1, 1), -30610224000000),
    (column(DATETIME2, fsp=0), dt.datetime(9999, 12, 31, 23, 59, 59), 253402300799000),
    (
        column(DATETIME2, fsp=6),
        dt.datetime(2024, 2, 29, 12, 34, 56, 123456),
        1709210096123456,
    ),
    (column(DATETIME2, fsp=6), dt.datetime(1900, 1, 1, 0, 0, 0, 1), -2208988799999999),
    # TIMESTAMP: ZonedTimestamp in UTC, the fraction as wide as the column's fsp
    (column(TIMESTAMP2, fsp=0), dt.datetime(2038, 1, 19, 3, 14, 7), "2038-01-19T03:14:07Z"),
    (
        column(TIMESTAMP2, fsp=3),
        dt.datetime(2024, 2, 29, 12, 34, 56, 100000),
        "2024-02-29T12:34:56.100Z",
    ),
    (
        column(TIMESTAMP2, fsp=6),
        dt.datetime(1970, 1, 1, 0, 0, 1, 1),
        "1970-01-01T00:00:01.000001Z",
    ),
    (
        column(TIMESTAMP2, fsp=6),
        dt.datetime(2038, 1, 19, 3, 14, 7, 999999),
        "2038-01-19T03:14:07.999999Z",
    ),
    # a zero TIMESTAMP is stored as 0 seconds: the epoch, for Debezium too
    (column(TIMESTAMP2, fsp=0), dt.datetime(1970, 1, 1), "1970-01-01T00:00:00Z"),
    # text in its charset (the library decodes; latin1 is cp1252 as in Java)
    (column(STRING, max_length=40, **UTF8MB4), "abc", "abc"),
    (column(STRING, max_length=40, **UTF8MB4), "ab", "ab"),  # CHAR loses trailing spaces
    (column(VARCHAR, max_length=1200, **UTF8MB4), "  padded  ", "  padded  "),
    (column(BLOB, length_size=2, **UTF8MB4), "text 😀 emoji", "text 😀 emoji"),
    (column(BLOB, length_size=2, **UTF8MB4), "", ""),
    (column(VARCHAR, max_length=20, **LATIN1), "café ÿ", "café ÿ"),
    (
        column(VARCHAR, max_length=80, character_set_name="utf8", collation_name="utf8mb4_bin"),
        "Straße 😀",
        "Straße 😀",
    ),
    # binary: base64; BINARY(n) right-padded with 0x00 to n bytes like Debezium (DBZ-254)
    (column(STRING, max_length=8, **BINARY), b"\x00\x01", "AAEAAAAAAAA="),
    (column(VARCHAR, max_length=20, **BINARY), b"\x00\xff\x00", "AP8A"),
    (column(BLOB, length_size=2, **BINARY), b"\x00\x00\x00\x00\xff", "AAAAAP8="),
    (column(BLOB, length_size=4, **BINARY), b"\xde\xad\xbe\xef\x00", "3q2+7wA="),
    (column(BLOB, length_size=1, **BINARY), "", ""),  # an empty BLOB arrives as ''
    # ENUM and SET: labels; SET members in definition order
    (
        column(ENUM, size=1, enum_values=["", "small", "medium", "large"], **UTF8MB4),
        "medium",
        "medium",
    ),
    (column(ENUM, size=1, enum_values=["", "small", "medium", "large"], **UTF8MB4), "", ""),
    (column(SET, size=1, set_values=["a", "b", "c", "d"], **UTF8MB4), {"d", "a"}, "a,d"),
    (column(SET, size=1, set_values=["a", "b", "c", "d"], **UTF8MB4), {"c", "b", "a"}, "a,b,c"),
    # MariaDB JSON is LONGTEXT: the text as stored
    (
        column(BLOB, length_size=4, character_set_name="utf8", collation_name="utf8mb4_bin"),
        '{"b": [1, 2.5, "x"], "a": null, "c": {"d": true}}',
        '{"b": [1, 2.5, "x"], "a": null, "c": {"d": true}}',
    ),
    (
        column(BLOB, length_size=4, character_set_name="utf8", collation_name="utf8mb4_bin"),
        '"just a string"',
        '"just a string"',
    ),
]


@pytest.mark.parametrize(("col", "value", "expected"), RECORDED)
def test_recorded_values_encode_as_debezium_does(col: Column, value: Any, expected: Any) -> None:
    result = convert(col, value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("col", "value", "expected"), RECORDED)
def test_null_stays_null_in_nullable_columns(col: Column, value: Any, expected: Any) -> None:
    assert convert(col, None) is None


POINT_BYTES = (
    b"\x00\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf8?"
    b"\x00\x00\x00\x00\x00\x00\x02\xc0"
)  # POINT(1.5 -2.25), SRID 0
POLYGON_BYTES = bytes.fromhex(
    "e6100000010300000001000000040000000000000000000000000000000000000000000000000000"
    "0000f03f0000000000000000000000000000f03f000000000000f03f0000000000000000"
    "0000000000000000"
)  # POLYGON((0 0,1 0,1 1,0 0)), SRID 4326


def test_point_is_debeziums_point_struct() -> None:
    col = column(GEOMETRY, length_size=4, **BINARY)
    assert convert(col, POINT_BYTES, geometry_type=1) == {
        "x": 1.5,
        "y": -2.25,
        "wkb": "AQEAAAAAAAAAAAD4PwAAAAAAAALA",
        "srid": None,
    }


def test_other_geometries_are_wkb_and_srid() -> None:
    col = column(GEOMETRY, length_size=4, **BINARY)
    assert convert(col, POLYGON_BYTES, geometry_type=0) == {
        "wkb": base64.b64encode(POLYGON_BYTES[4:]).decode(),
        "srid": 4326,
    }
    # without GEOMETRY_TYPE metadata a point is just a geometry
    assert convert(col, POINT_BYTES) == {"wkb": "AQEAAAAAAAAAAAD4PwAAAAAAAALA", "srid": None}


# --- MySQL JSON: the library's decoded binary JSON, printed like JsonStringFormatter --------

JSON_COLUMN = column(JSON_TYPE, length_size=4)

MYSQL_JSON = [
    ({b"my_key": b"my_val", b"my_key2": b"my_val2"}, '{"my_key":"my_val","my_key2":"my_val2"}'),
    ([b"my_val", b"my_val2"], '["my_val","my_val2"]'),
    ({b"miam": "🍔".encode()}, '{"miam":"🍔"}'),
    ({b"foo": [b"foo", b"bar"]}, '{"foo":["foo","bar"]}'),
    ({b"foo": None, b"t": True, b"f": False}, '{"foo":null,"t":true,"f":false}'),
    ({b"n": 16, b"neg": -30, b"big": 2**64 - 1}, '{"n":16,"neg":-30,"big":18446744073709551615}'),
    (
        {
            b"decimal": Decimal("99.99"),
            b"time_key": dt.time(18, 54, 12),
            b"datetime_key": dt.datetime(2023, 9, 24, 18, 54, 12),
        },
        '{"decimal":99.99,"time_key":"18:54:12","datetime_key":"2023-09-24 18:54:12"}',
    ),
    ({b"dt": dt.datetime(2023, 9, 24, 18, 54, 12, 120000)}, '{"dt":"2023-09-24 18:54:12.12"}'),
    # scalars at the top level
    (True, "true"),
    (1.2, "1.2"),
    (b"just a string", '"just a string"'),
    # Double.toString, or the exact BigDecimal where Java would print E notation
    ([1.0, 12345.678, 1e7, 0.001], "[1.0,12345.678,10000000,0.001]"),
    ([1e-10], "[" + format(Decimal(1e-10), "f") + "]"),
    # escapes as the Java formatter writes them
    ({b"k": b'a\x01"\n\\/\x7f'}, '{"k":"a\\u0001\\"\\n\\\\/\x7f"}'),
]


@pytest.mark.parametrize(("value", "expected"), MYSQL_JSON)
def test_mysql_json_prints_like_debezium(value: Any, expected: str) -> None:
    assert convert(JSON_COLUMN, value) == expected


def test_json_text_passes_through() -> None:
    assert convert(JSON_COLUMN, '{"a": 1}') == '{"a": 1}'


# --- NOT NULL columns, zero dates and the row converter --------------------------------------


@pytest.mark.parametrize(
    ("col", "fallback"),
    [
        (column(DATE), 0),
        (column(DATETIME2, fsp=0), 0),
        (column(DATETIME2, fsp=6), 0),
        (column(TIMESTAMP2, fsp=0), "1970-01-01T00:00:00Z"),
        (column(LONG), 0),
        (column(NEWDECIMAL, precision=10, decimals=2), "AA=="),
        (column(VARCHAR, max_length=20, **UTF8MB4), ""),
        (column(BLOB, length_size=2, **BINARY), ""),
        (column(BIT, bits=1, bytes=1), False),
        (column(SET, size=1, set_values=["a"], **UTF8MB4), ""),
        (JSON_COLUMN, "{}"),
    ],
)
def test_none_in_not_null_column_is_debeziums_fallback(col: Column, fallback: Any) -> None:
    assert convert(col, None, optional=False) == fallback


def alltypes_subset() -> list[Column]:
    return [
        column(LONG, name="id", is_primary=True),
        column(DATE, name="c_date"),
        column(DATE, name="c_date_nn"),
        column(DATETIME2, name="c_datetime6", fsp=6),
        column(DATETIME2, name="c_datetime_nn", fsp=0),
        column(SET, name="c_set", size=1, set_values=["a", "b", "c", "d"], **UTF8MB4),
        column(ENUM, name="c_enum", size=1, enum_values=["", "small"], **UTF8MB4),
        column(TIME2, name="c_time6", fsp=6),
        column(LONG, name="c_int"),
    ]


NULLABLE = [False, True, False, True, False, True, True, True, True]

# Row 3 of the recorded table: zero dates, '2020-00-15', an empty SET, and ''
ROW3_VALUES = {
    "id": 3,
    "c_date": None,
    "c_date_nn": None,
    "c_datetime6": None,
    "c_datetime_nn": None,
    "c_set": None,
    "c_enum": "",
    "c_time6": dt.timedelta(days=-1, seconds=86399, microseconds=1),
    "c_int": None,
}
ROW3_NONE_SOURCES = {
    "c_date": "out of date range",
    "c_date_nn": "out of date range",
    "c_datetime6": "out of datetime2 range",
    "c_datetime_nn": "out of datetime2 range",
    "c_set": "empty set",
    "c_int": "null",
}


def test_row_with_zero_dates_and_empty_set() -> None:
    convert_row = RowConverter(alltypes_subset(), nullable=NULLABLE)
    assert convert_row(ROW3_VALUES, ROW3_NONE_SOURCES) == {
        "id": 3,
        "c_date": None,  # zero date in a nullable column: null
        "c_date_nn": 0,  # ... in a NOT NULL column: the epoch
        "c_datetime6": None,
        "c_datetime_nn": 0,
        "c_set": "",  # the library's None for 'no member'
        "c_enum": "",
        "c_time6": -1,
        "c_int": None,
    }
    assert convert_row.names == tuple(ROW3_VALUES)


def test_columns_missing_from_a_minimal_row_image_stay_null() -> None:
    convert_row = RowConverter(alltypes_subset(), nullable=NULLABLE)
    values = {**ROW3_VALUES, "c_date_nn": None}
    sources = {**ROW3_NONE_SOURCES, "c_date_nn": "cols bitmap"}
    assert convert_row(values, sources)["c_date_nn"] is None


def test_row_converter_from_a_table_map_event() -> None:
    columns = [
        column(LONG, name="id"),
        column(GEOMETRY, name="c_point", length_size=4, **BINARY),
        column(DATE, name="c_date_nn"),
        column(GEOMETRY, name="c_polygon", length_size=4, **BINARY),
    ]
    event = SimpleNamespace(
        columns=columns,
        null_bitmask=b"\x0a",  # id and c_date_nn NOT NULL
        optional_metadata=SimpleNamespace(geometry_type_list=[1, 3]),
    )
    convert_row = RowConverter.from_table_map(event)
    row = convert_row(
        {"id": 1, "c_point": POINT_BYTES, "c_date_nn": None, "c_polygon": None},
        {"c_date_nn": "out of date range", "c_polygon": "null"},
    )
    assert row == {
        "id": 1,
        "c_point": {"x": 1.5, "y": -2.25, "wkb": "AQEAAAAAAAAAAAD4PwAAAAAAAALA", "srid": None},
        "c_date_nn": 0,
        "c_polygon": None,
    }


def test_unnamed_columns_ask_for_full_row_metadata() -> None:
    with pytest.raises(ValueError, match="binlog_row_metadata=FULL"):
        RowConverter([column(LONG, name=None)])


def test_unknown_types_are_refused() -> None:
    with pytest.raises(ValueError, match="binlog type 0"):
        make_converter(column(0, name="old_decimal"))


def test_text_in_a_charset_python_cannot_decode_is_an_error() -> None:
    col = column(VARCHAR, name="c", max_length=10, character_set_name="swe7")
    with pytest.raises(ValueError, match="cannot decode text in charset 'swe7'"):
        convert(col, b"abc")


# --- other Debezium modes ---------------------------------------------------------------------


def test_bigint_unsigned_precise_mode() -> None:
    precise = Encoding(bigint_unsigned_mode="precise")
    col = column(LONGLONG, unsigned=True)
    assert convert(col, 18446744073709551615, options=precise) == "AP//////////"
    # the value in a Debezium user's report of precise mode (blog.csdn.net/.../133176664)
    assert convert(col, 11111111111111111111, options=precise) == "AJoymK+1rHHH"
    # a Decimal schema of its own: decimal.handling.mode does not apply
    both = Encoding(bigint_unsigned_mode="precise", decimal_mode="string")
    assert convert(col, 11111111111111111111, options=both) == "AJoymK+1rHHH"
    assert convert(col, None, optional=False, options=both) == "AA=="


STRING = Encoding(decimal_mode="string")
DOUBLE = Encoding(decimal_mode="double")


@pytest.mark.parametrize(
    ("precision", "scale", "value", "string", "double"),
    [
        # SpecialValueDecimal.fromLogical: toPlainString at the column's scale (the binlog
        # client's BigDecimal has it) / BigDecimal.doubleValue()
        (10, 2, "-12345678.91", "-12345678.91", -12345678.91),
        (10, 2, "0.00", "0.00", 0.0),
        (10, 2, "1.50", "1.50", 1.5),
        (5, 5, "-0.12345", "-0.12345", -0.12345),
        (30, 0, "123456789012345678901234567890", "123456789012345678901234567890", 1.2345678901234568e29),
        (65, 30, "-12345678901234567890123456789012345.123456789012345678901234567890",
         "-12345678901234567890123456789012345.123456789012345678901234567890", -1.2345678901234568e34),
    ],
)  # fmt: skip
def test_decimal_string_and_double_modes(
    precision: int, scale: int, value: str, string: str, double: float
) -> None:
    col = column(NEWDECIMAL, precision=precision, decimals=scale)
    assert convert(col, Decimal(value), options=STRING) == string
    assert convert(col, Decimal(value), options=DOUBLE) == double
    # Debezium's fallback for a NULL in a NOT NULL column (zero at the column's scale)
    zero = f"0.{'0' * scale}" if scale else "0"
    assert convert(col, None, optional=False, options=STRING) == zero
    assert convert(col, None, optional=False, options=DOUBLE) == 0.0


@given(st.integers(-(10**65) + 1, 10**65 - 1), st.integers(0, 30))
def test_decimal_string_is_to_plain_string_and_double_the_nearest_double(
    unscaled: int, scale: int
) -> None:
    value = Decimal(f"{unscaled}e-{scale}")
    col = column(NEWDECIMAL, precision=65, decimals=scale)
    assert convert(col, value, options=STRING) == format(value, "f")
    assert convert(col, value, options=DOUBLE) == float(Fraction(unscaled, 10**scale))


def test_binary_url_safe_mode() -> None:
    col = column(VARCHAR, max_length=20, **BINARY)
    options = Encoding(binary_mode="base64-url-safe")
    assert convert(col, b"\xfb\xff", options=options) == "-_8="
    # BIT and geometry keep their BYTES schema whatever the mode
    assert convert(column(BIT, bits=16, bytes=2), "1111111111111011", options=options) == "+/8="


# --- properties -------------------------------------------------------------------------------


@given(st.integers(-(10**65) + 1, 10**65 - 1), st.integers(0, 30))
def test_decimal_bytes_are_the_minimal_twos_complement_unscaled_value(
    unscaled: int, scale: int
) -> None:
    value = Decimal(f"{unscaled}e-{scale}")  # exact, unlike scaleb in a 28-digit context
    col = column(NEWDECIMAL, precision=65, decimals=scale)
    raw = base64.b64decode(convert(col, value))
    assert int.from_bytes(raw, "big", signed=True) == unscaled
    # minimal, as BigInteger.toByteArray: without the first byte it is another number
    assert len(raw) == 1 or int.from_bytes(raw[1:], "big", signed=True) != unscaled


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_keeps_the_same_float32_in_fewer_digits(value: float) -> None:
    result = convert(column(FLOAT, size=4), value)
    assert struct.pack("<f", result) == struct.pack("<f", value)
    assert len(repr(result)) <= len(repr(value))


@given(st.integers(2, 64).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, 2**n - 1))))
def test_bits_are_little_endian_in_whole_bytes(case: tuple[int, int]) -> None:
    bits, number = case
    col = column(BIT, bits=bits, bytes=(bits + 7) // 8)
    raw = base64.b64decode(convert(col, format(number, f"0{bits}b")))
    assert len(raw) == (bits + 7) // 8
    assert int.from_bytes(raw, "little") == number


@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_datetime_micros_round_trip(value: dt.datetime) -> None:
    micros = convert(column(DATETIME2, fsp=6), value)
    assert dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros) == value
    assert convert(column(DATETIME2, fsp=3), value) == micros // 1000


@given(
    st.integers(0, 838 * 3600 + 59 * 60 + 59),
    st.integers(1, 999_999),
    st.sampled_from([1, 2, 3, 4, 5, 6]),
)
def test_negative_time_with_fraction_is_recovered(seconds: int, micros: int, fsp: int) -> None:
    # The library's reading of -(seconds.micros), as derived from its TIME2 decoder and
    # confirmed by the recorded values: -(seconds + 1) + fraction.
    micros = micros // 10 ** (6 - fsp) * 10 ** (6 - fsp) or 10 ** (6 - fsp)
    yielded = dt.timedelta(seconds=-(seconds + 1), microseconds=micros)
    expected = -(seconds * 1_000_000 + micros)
    assert convert(column(TIME2, fsp=fsp), yielded) == expected


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=20)
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def as_library_yields(value: Any) -> Any:
    """The shape python-mysql-replication gives decoded binary JSON: bytes keys and strings."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return [as_library_yields(item) for item in value]
    if isinstance(value, dict):
        return {key.encode(): as_library_yields(item) for key, item in value.items()}
    return value


@given(json_values.filter(lambda value: value is not None))
def test_mysql_json_text_is_compact_json_of_the_same_document(value: Any) -> None:
    text = convert(JSON_COLUMN, as_library_yields(value))
    assert json.loads(text) == value
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # Java writes \\u00XX in upper case, Python in lower case; all else is the same
    assert text.lower() == expected.lower()
