"""The decimal encodings both sources share (cdcd.encoding), per decimal.handling.mode.

Expected values follow Java's ``BigInteger.toByteArray``, ``BigDecimal.toPlainString``
and ``BigDecimal.doubleValue`` (correctly rounded), and Jackson's ``writeNumber(double)``.
"""

from __future__ import annotations

import base64
import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdcd.encoding import (
    decimal_base64,
    jackson_double,
    plain_string,
    unscaled_at_scale,
    unscaled_base64,
    unscaled_encoder,
)

unscaled_values = st.one_of(
    st.integers(-(2**70), 2**70), st.integers(-(10**65) + 1, 10**65 - 1)
)  # fmt: skip
scales = st.integers(-10, 40)


def exact(unscaled: int, scale: int) -> Decimal:
    """unscaled * 10**-scale, built without a context (which would round)."""
    return Decimal((int(unscaled < 0), tuple(int(c) for c in str(abs(unscaled))), -scale))


@pytest.mark.parametrize(
    ("unscaled", "expected"),
    [
        (0, "AA=="),  # BigInteger.ZERO.toByteArray() == {0}
        (1, "AQ=="),
        (-1, "/w=="),
        (127, "fw=="),
        (128, "AIA="),  # a sign byte is needed
        (-128, "gA=="),  # none is needed
        (-129, "/38="),
        (255, "AP8="),
        (123456, "AeJA"),
        (2**63 - 1, "f/////////8="),
        (-(2**63), "gAAAAAAAAAA="),
    ],
)
def test_precise_is_the_unscaled_big_integer_s_bytes(unscaled: int, expected: str) -> None:
    assert unscaled_base64(unscaled) == expected
    assert unscaled_encoder("precise", 7)(unscaled) == expected  # the scale is the schema's


@given(unscaled_values)
def test_precise_round_trips_the_unscaled_value_in_the_fewest_bytes(unscaled: int) -> None:
    raw = base64.b64decode(unscaled_base64(unscaled))
    assert int.from_bytes(raw, "big", signed=True) == unscaled
    # BigInteger.toByteArray is minimal: without its first byte it is another number
    assert len(raw) == 1 or int.from_bytes(raw[1:], "big", signed=True) != unscaled


@given(unscaled_values, scales)
def test_decimal_base64_is_the_value_s_unscaled_integer(unscaled: int, scale: int) -> None:
    value = exact(unscaled, scale)
    assert unscaled_at_scale(value, scale) == unscaled
    assert decimal_base64(value, scale) == unscaled_base64(unscaled)
    # at a larger scale (setScale pads with zeros) the unscaled value grows
    assert unscaled_at_scale(value, scale + 3) == unscaled * 1000


def test_unscaled_at_scale_refuses_what_would_need_rounding() -> None:
    with pytest.raises(ValueError, match="more than 2 fractional digits"):
        unscaled_at_scale(Decimal("1.234"), 2)
    for special in ("NaN", "Infinity", "-Infinity", "sNaN"):
        with pytest.raises(ValueError, match="no unscaled value"):
            unscaled_at_scale(Decimal(special), 2)
    assert unscaled_at_scale(Decimal("12300"), -2) == 123


@pytest.mark.parametrize(
    ("unscaled", "scale", "expected"),
    [
        # Debezium's own expectations (AbstractRecordsProducerTest, string mode)
        (110, 2, "1.10"),
        (222200, 4, "22.2200"),
        (22, 0, "22"),
        (0, 2, "0.00"),
        (-5, 2, "-0.05"),
        (-123456, 2, "-1234.56"),
        (5, 3, "0.005"),
        (123, -2, "12300"),  # a negative scale: digits, never an exponent
        (-9223372036854775808, 2, "-92233720368547758.08"),  # PostgresMoneyIT
    ],
)
def test_string_is_to_plain_string(unscaled: int, scale: int, expected: str) -> None:
    assert plain_string(unscaled, scale) == expected
    assert unscaled_encoder("string", scale)(unscaled) == expected


@given(unscaled_values, scales)
def test_string_equals_to_plain_string(unscaled: int, scale: int) -> None:
    # Python's format 'f' of a Decimal is BigDecimal.toPlainString (no negative zero here:
    # an unscaled integer has none)
    assert plain_string(unscaled, scale) == format(exact(unscaled, scale), "f")
    assert Decimal(plain_string(unscaled, scale)) == exact(unscaled, scale)


@given(unscaled_values, scales)
def test_double_is_the_correctly_rounded_double(unscaled: int, scale: int) -> None:
    double = unscaled_encoder("double", scale)(unscaled)
    assert type(double) is float
    assert double == float(Fraction(unscaled) / Fraction(10) ** scale)


def test_double_examples() -> None:
    assert unscaled_encoder("double", 2)(-1234567891) == -12345678.91
    assert unscaled_encoder("double", 0)(22) == 22.0
    assert unscaled_encoder("double", -2)(123) == 12300.0
    # 0.1 + 0.2 written as digits is 0.3, the nearest double, not 0.30000000000000004
    assert unscaled_encoder("double", 1)(3) == 0.3


def test_a_double_that_is_not_finite_is_written_as_jackson_writes_it() -> None:
    assert jackson_double(math.nan) == "NaN"
    assert jackson_double(math.inf) == "Infinity"
    assert jackson_double(-math.inf) == "-Infinity"
    assert jackson_double(-0.0) == 0.0 and math.copysign(1, jackson_double(-0.0)) == -1
    assert jackson_double(1.5e300) == 1.5e300


def test_an_unknown_mode_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'exact': one of precise, double, string"):
        unscaled_encoder("exact", 2)  # type: ignore[arg-type]
