"""numeric and money in each decimal.handling.mode ([encoding] decimal_handling_mode).

Expected values are Debezium's: PostgresValueConverter (convertDecimal, convertMoney),
SpecialValueDecimal.fromLogical / toString, and the expectations of its own tests
(AbstractRecordsProducerTest: schemasAndValuesFor{String,Double}EncodedNumericTypes;
PostgresMoneyIT), as JsonConverter prints them: a double that is not finite is written by
Jackson as a quoted string.
"""

from __future__ import annotations

import base64
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdcd.encoding import Encoding, plain_string
from cdcd.errors import DecodeError
from cdcd.sources.postgres.types import make_converter

NUMERIC, MONEY, NUMERIC_ARRAY, MONEY_ARRAY = 1700, 790, 1231, 791
DOMAIN_OID = 50_000  # a domain over numeric, named by its base type in the Type message


def typmod(precision: int, scale: int) -> int:
    return ((precision << 16) | (scale & 0x7FF)) + 4


def convert(mode: str, type_oid: int, text: str, mod: int = -1, name: str | None = None) -> Any:
    return make_converter(type_oid, mod, name, Encoding(decimal_mode=mode))(text)  # type: ignore[arg-type]


def numeric_text(unscaled: int, scale: int) -> str:
    """numeric_out: the digits with exactly ``scale`` of them after the point."""
    digits = str(abs(unscaled)).rjust(scale + 1, "0")
    sign = "-" if unscaled < 0 else ""
    return sign + (f"{digits[:-scale]}.{digits[-scale:]}" if scale else digits)


# (text, typmod or -1, precise, double, string)
CASES = [
    # AbstractRecordsProducerTest's columns: d numeric(3,2), dzs numeric(4), dvs numeric,
    # n numeric(6,4), nvs numeric; in string mode the text at the column's scale.
    ("1.10", typmod(3, 2), "bg==", 1.1, "1.10"),
    ("10", typmod(4, 0), "Cg==", 10.0, "10"),
    ("10.1111", -1, {"scale": 4, "value": "AYr3"}, 10.1111, "10.1111"),
    ("22.2200", typmod(6, 4), "A2P4", 22.22, "22.2200"),
    ("22.2222", -1, {"scale": 4, "value": "A2QO"}, 22.2222, "22.2222"),
    # precise strips a variable-scale value's trailing zeros; string keeps PostgreSQL's text
    ("1.50", -1, {"scale": 1, "value": "Dw=="}, 1.5, "1.50"),
    ("-0.05", typmod(10, 2), "+w==", -0.05, "-0.05"),
    ("12300", typmod(5, -2), "ew==", 12300.0, "12300"),  # PostgreSQL 15: a negative scale
    # NaN: "only string and double modes can encode it, as Double.NaN or the string
    # constant NAN" (Debezium's PostgreSQL connector docs, decimal values)
    ("NaN", typmod(3, 2), None, "NaN", "NAN"),
    ("NaN", -1, None, "NaN", "NAN"),
    # PostgreSQL 14+: SpecialValueDecimal.POSITIVE_INF / NEGATIVE_INF
    ("Infinity", -1, None, "Infinity", "POSITIVE_INFINITY"),
    ("-Infinity", typmod(10, 2), None, "-Infinity", "NEGATIVE_INFINITY"),
]


@pytest.mark.parametrize(("text", "mod", "precise", "double", "string"), CASES)
def test_numeric_in_each_mode(text: str, mod: int, precise: Any, double: Any, string: str) -> None:
    if precise is None:
        with pytest.raises(DecodeError, match="has no representation in decimal_handling_mode"):
            convert("precise", NUMERIC, text, mod)
    else:
        assert convert("precise", NUMERIC, text, mod) == precise
    assert convert("double", NUMERIC, text, mod) == double
    assert convert("string", NUMERIC, text, mod) == string


def test_the_precise_error_says_which_setting_encodes_the_value() -> None:
    with pytest.raises(DecodeError) as info:
        convert("precise", NUMERIC, "NaN", typmod(10, 2))
    assert str(info.value) == (
        "numeric value 'NaN' has no representation in decimal_handling_mode = \"precise\"; "
        'set [encoding] decimal_handling_mode = "string" (or "double") to encode it, '
        "then restart"
    )


def test_a_numeric_beyond_a_double_is_infinity_in_double_mode() -> None:
    # BigDecimal.doubleValue() overflows to Infinity, which Jackson writes quoted
    assert convert("double", NUMERIC, "9" * 400) == "Infinity"
    assert convert("double", NUMERIC, "-" + "9" * 400) == "-Infinity"


@pytest.mark.parametrize("mode", ["precise", "double", "string"])
@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "12.5x", "-"])
def test_text_that_is_not_a_number_is_refused_in_every_mode(mode: str, text: str) -> None:
    for mod in (-1, typmod(10, 1), typmod(10, 0)):
        with pytest.raises(ValueError):
            convert(mode, NUMERIC, text, mod)


def test_string_mode_sets_the_column_s_scale_when_the_text_has_another() -> None:
    # withScaleAdjustedIfNeeded: setScale(column scale), exact or refused
    assert convert("string", NUMERIC, "1.5", typmod(10, 3)) == "1.500"
    with pytest.raises(ValueError, match="more than 1 fractional digits"):
        convert("string", NUMERIC, "1.25", typmod(10, 1))


@pytest.mark.parametrize(
    ("text", "precise", "double", "string"),
    [
        # convertMoney: precise at money.fraction.digits (2); double: doubleValue of the
        # amount; string: its toPlainString (PostgresMoneyIT's extremes)
        ("$1,234.56", "AeJA", 1234.56, "1234.56"),
        ("-$1,234.56", "/h3A", -1234.56, "-1234.56"),
        ("$0.00", "AA==", 0.0, "0.00"),
        ("-$92,233,720,368,547,758.08", "gAAAAAAAAAA=", -92233720368547758.0, "-92233720368547758.08"),
        ("$92,233,720,368,547,758.07", "f/////////8=", 92233720368547758.0, "92233720368547758.07"),
    ],
)  # fmt: skip
def test_money_in_each_mode(text: str, precise: str, double: float, string: str) -> None:
    assert convert("precise", MONEY, text) == precise
    assert convert("double", MONEY, text) == double
    assert convert("string", MONEY, text) == string


def test_arrays_and_domains_follow_the_mode() -> None:
    array = "{1.50,NULL,NaN,-2.25}"
    assert convert("string", NUMERIC_ARRAY, array, typmod(10, 2)) == ["1.50", None, "NAN", "-2.25"]
    assert convert("double", NUMERIC_ARRAY, array, typmod(10, 2)) == [1.5, None, "NaN", -2.25]
    with pytest.raises(DecodeError):
        convert("precise", NUMERIC_ARRAY, array, typmod(10, 2))
    assert convert("string", MONEY_ARRAY, '{"$1.00","-$2.50"}') == ["1.00", "-2.50"]
    assert convert("double", DOMAIN_OID, "NaN", name="numeric") == "NaN"
    assert convert("string", DOMAIN_OID, "7.0", typmod(5, 1), "numeric") == "7.0"


def test_other_types_do_not_change_with_the_mode() -> None:
    for mode in ("double", "string"):
        assert make_converter(701, -1, None, Encoding(decimal_mode=mode))("NaN") == "NaN"  # type: ignore[arg-type]
        assert make_converter(20, -1, None, Encoding(decimal_mode=mode))("42") == 42  # type: ignore[arg-type]


big = st.one_of(st.integers(-(10**30), 10**30), st.integers(-(10**400), 10**400))


@given(big, st.integers(0, 40))
def test_string_mode_is_to_plain_string_at_the_column_s_scale(unscaled: int, scale: int) -> None:
    text = numeric_text(unscaled, scale)
    assert convert("string", NUMERIC, text, typmod(1000, scale)) == plain_string(unscaled, scale)
    assert convert("string", NUMERIC, text) == text  # new BigDecimal(text).toPlainString()


@given(big, st.integers(0, 40))
def test_double_mode_is_the_correctly_rounded_double(unscaled: int, scale: int) -> None:
    text = numeric_text(unscaled, scale)
    exact = Fraction(unscaled, 10**scale)
    expected: float | str
    try:
        expected = float(exact)
    except OverflowError:
        expected = "Infinity" if unscaled > 0 else "-Infinity"
    assert convert("double", NUMERIC, text, typmod(1000, scale)) == expected
    assert convert("double", NUMERIC, text) == expected


@given(big, st.integers(0, 40))
def test_precise_mode_round_trips_the_unscaled_value(unscaled: int, scale: int) -> None:
    text = numeric_text(unscaled, scale)
    raw = base64.b64decode(convert("precise", NUMERIC, text, typmod(1000, scale)))
    assert int.from_bytes(raw, "big", signed=True) == unscaled
    variable = convert("precise", NUMERIC, text)
    value = int.from_bytes(base64.b64decode(variable["value"]), "big", signed=True)
    assert Fraction(value, 10 ** variable["scale"]) == Fraction(unscaled, 10**scale)


def money_text(cents: int) -> str:
    """cash_out with lc_monetary=C: "-$1,234.56"."""
    whole, fraction = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}${whole:,}.{fraction:02d}"


@given(st.integers(-(2**63), 2**63 - 1))
def test_money_round_trips_in_each_mode(cents: int) -> None:
    text = money_text(cents)
    raw = base64.b64decode(convert("precise", MONEY, text))
    assert int.from_bytes(raw, "big", signed=True) == cents
    assert convert("string", MONEY, text) == plain_string(cents, 2)
    assert convert("double", MONEY, text) == float(Fraction(cents, 100))


def test_money_off_the_usual_text_is_rounded_half_up_in_precise_mode() -> None:
    assert convert("precise", MONEY, "$1.005") == convert("precise", MONEY, "$1.01")
    assert convert("precise", MONEY, "($1.00)") == convert("precise", MONEY, "-$1.00")
    assert convert("string", MONEY, "$1.5") == "1.5"  # toPlainString of the parsed amount
