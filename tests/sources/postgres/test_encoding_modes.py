"""The encoding modes of ``[encoding]`` on PostgreSQL's text values (pgoutput's and a
snapshot's, which share these converters), type by type, and their arrays and domains."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdcd.encoding import Encoding
from cdcd.sources.postgres.times import interval_micros
from cdcd.sources.postgres.types import make_converter

BYTEA, MONEY, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ = (
    17, 790, 1082, 1083, 1114, 1184, 1186, 1266,
)  # fmt: skip
BYTEA_ARRAY, TIME_ARRAY, INTERVAL_ARRAY, MONEY_ARRAY = 1001, 1183, 1187, 791
EXTENSION_OID = 90_000  # hstore, a domain: OIDs past the builtin ones, named by Type messages


def convert(
    encoding: Encoding, type_oid: int, text: str, typmod: int = -1, name: str | None = None
) -> Any:
    return make_converter(type_oid, typmod, name, encoding)(text)


ADAPTIVE = Encoding()
MICROS = Encoding(time_precision_mode="adaptive_time_microseconds")
CONNECT = Encoding(time_precision_mode="connect")


# --- time.precision.mode ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typmod", "adaptive", "micros", "connect"),
    [
        (-1, 47_655_678_901, 47_655_678_901, 47_655_678),  # time: precision 6
        (6, 47_655_678_901, 47_655_678_901, 47_655_678),
        (3, 47_655_678, 47_655_678_000, 47_655_678),  # time(3): Time in adaptive only
        (0, 47_655_678, 47_655_678_000, 47_655_678),
    ],
)
def test_time_in_each_mode(typmod: int, adaptive: int, micros: int, connect: int) -> None:
    # (13:14:15.678 is no time(0) value: only the unit chosen by the typmod is checked)
    text = "13:14:15.678901" if typmod in (-1, 6) else "13:14:15.678"
    assert convert(ADAPTIVE, TIME, text, typmod) == adaptive
    assert convert(MICROS, TIME, text, typmod) == micros
    assert convert(CONNECT, TIME, text, typmod) == connect
    assert convert(CONNECT, TIME, "24:00:00", typmod) == 86_400_000


def test_timestamp_and_date_in_each_mode() -> None:
    text = "2024-02-29 13:14:15.678901"
    micros = 1_709_212_455_678_901
    assert convert(ADAPTIVE, TIMESTAMP, text) == micros
    assert convert(MICROS, TIMESTAMP, text) == micros  # only TIME changes
    assert convert(CONNECT, TIMESTAMP, text) == micros // 1000
    assert convert(CONNECT, TIMESTAMP, "1969-12-31 23:59:59.9999") == -1  # floor, as Java's
    assert convert(CONNECT, TIMESTAMP, "infinity") == convert(ADAPTIVE, TIMESTAMP, "infinity", 3)
    for encoding in (ADAPTIVE, MICROS, CONNECT):
        assert convert(encoding, DATE, "1969-12-31") == -1
        # the zoned types keep their ISO strings in every mode
        assert convert(encoding, TIMESTAMPTZ, "2024-02-29 13:14:15.5+00") == (
            "2024-02-29T13:14:15.500000Z"
        )
        assert convert(encoding, TIMETZ, "13:14:15.5+01") == "12:14:15.5Z"


def test_time_modes_reach_arrays_and_domains() -> None:
    assert convert(CONNECT, TIME_ARRAY, '{"13:14:15.678901",NULL}') == [47_655_678, None]
    assert convert(MICROS, EXTENSION_OID, "00:00:01", 0, "time") == 1_000_000


# --- binary.handling.mode ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("bytes", "+/8A"), ("base64", "+/8A"), ("base64-url-safe", "-_8A"), ("hex", "fbff00")],
)
def test_bytea_in_each_binary_mode(mode: str, expected: str) -> None:
    encoding = Encoding(binary_mode=mode)  # type: ignore[arg-type]
    assert convert(encoding, BYTEA, "\\xfbff00") == expected
    assert convert(encoding, BYTEA, "\\373\\377\\000") == expected  # bytea_output=escape
    assert convert(encoding, BYTEA, "\\x") == ""
    assert convert(encoding, BYTEA_ARRAY, '{"\\\\xfbff00",NULL}') == [expected, None]


@given(st.binary(max_size=200))
def test_bytea_hex_and_url_safe_decode_back(data: bytes) -> None:
    text = "\\x" + data.hex()
    assert bytes.fromhex(convert(Encoding(binary_mode="hex"), BYTEA, text)) == data
    url_safe = convert(Encoding(binary_mode="base64-url-safe"), BYTEA, text)
    assert base64.urlsafe_b64decode(url_safe) == data and not set(url_safe) & set("+/")


# --- interval.handling.mode -------------------------------------------------------------------

STRING_INTERVALS = Encoding(interval_mode="string")


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("1 year 2 mons 3 days 04:05:06.78", "P1Y2M3DT4H5M6.78S"),  # the example
        ("00:00:00", "P0Y0M0DT0H0M0S"),
        ("-1 days -04:05:06", "P0Y0M-1DT-4H-5M-6S"),
        ("-00:00:00.5", "P0Y0M0DT0H0M-0.5S"),
        ("00:00:00.000001", "P0Y0M0DT0H0M0.000001S"),  # not 1E-6: toPlainString
        ("-2 years -3 mons", "P-2Y-3M0DT0H0M0S"),
        ("1 mon 00:01:00", "P0Y1M0DT0H1M0S"),
    ],
)
def test_interval_as_iso_string(text: str, iso: str) -> None:
    assert convert(STRING_INTERVALS, INTERVAL, text) == iso
    assert convert(STRING_INTERVALS, INTERVAL_ARRAY, f'{{"{text}"}}') == [iso]
    assert isinstance(convert(ADAPTIVE, INTERVAL, text), int)


@given(
    st.integers(-1000, 1000), st.integers(-11, 11), st.integers(-40, 40),
    st.integers(0, 23), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999_999),
)  # fmt: skip
def test_interval_string_holds_what_numeric_counts(
    years: int, months: int, days: int, hours: int, minutes: int, seconds: int, micros: int
) -> None:
    text = (
        f"{years} years {months} mons {days} days {hours:02d}:{minutes:02d}:{seconds:02d}"
        f".{micros:06d}"
    )
    iso = convert(STRING_INTERVALS, INTERVAL, text)
    assert iso == (
        f"P{years}Y{months}M{days}DT{hours}H{minutes}M"
        f"{format(Decimal(seconds) + Decimal(micros).scaleb(-6), 'f').rstrip('0').rstrip('.')}S"
    )
    assert interval_micros(text) == convert(ADAPTIVE, INTERVAL, text)


# --- hstore.handling.mode ---------------------------------------------------------------------


def test_hstore_as_json_text_or_as_a_map() -> None:
    text = '"a"=>"1", "b"=>NULL, "q\\"uote"=>"x"'
    as_json = convert(ADAPTIVE, EXTENSION_OID, text, name="hstore")
    assert as_json == '{"a":"1","b":null,"q\\"uote":"x"}'
    as_map = convert(Encoding(hstore_mode="map"), EXTENSION_OID, text, name="hstore")
    assert as_map == {"a": "1", "b": None, 'q"uote': "x"}
    assert convert(Encoding(hstore_mode="map"), EXTENSION_OID, "", name="hstore") == {}
    arrays = convert(
        Encoding(hstore_mode="map"), EXTENSION_OID + 1, '{"\\"k\\"=>\\"v\\""}', name="_hstore"
    )
    assert arrays == [{"k": "v"}]


# --- money.fraction.digits --------------------------------------------------------------------


def unscaled(encoded: str) -> int:
    return int.from_bytes(base64.b64decode(encoded), "big", signed=True)


@pytest.mark.parametrize(
    ("digits", "text", "expected"),
    [
        (2, "$1,234.56", 123_456),
        (3, "$1,234.56", 1_234_560),
        (0, "$1,234.56", 1_235),  # half up
        (0, "-$1,234.50", -1_235),
        (1, "-$0.05", -1),
        (4, "$0.00", 0),
    ],
)
def test_money_at_money_fraction_digits(digits: int, text: str, expected: int) -> None:
    encoding = Encoding(money_fraction_digits=digits)
    assert unscaled(convert(encoding, MONEY, text)) == expected
    assert [unscaled(v) for v in convert(encoding, MONEY_ARRAY, f'{{"{text}"}}')] == [expected]
    # the other decimal modes write the amount: the digits do not apply
    as_string = Encoding(money_fraction_digits=digits, decimal_mode="string")
    assert convert(as_string, MONEY, "$1,234.56") == "1234.56"
