"""PostgreSQL numeric and money -> Debezium's values in each ``decimal.handling.mode``
(``[encoding] decimal_handling_mode``; the encodings themselves are ``cdcd.encoding``'s).

Debezium ``PostgresValueConverter`` (``numericSchema``, ``convertDecimal``,
``moneySchema``, ``convertMoney``), ``SpecialValueDecimal.fromLogical``/``toString``,
``VariableScaleDecimal``, ``PostgresMoney.parse``; its docs (PostgreSQL connector,
"Decimal types"); Kafka ``JsonConverter`` with Jackson's defaults:

- precise: numeric(p,s) -> Kafka Connect Decimal, base64 of the big-endian two's-complement
  unscaled integer at scale s; numeric without typmod -> VariableScaleDecimal
  ``{"scale": s, "value": base64}`` with trailing zeros stripped (scale never negative);
  money -> Decimal at scale ``money.fraction.digits`` (2 by default), rounded half-up. NaN and
  Infinity have no representation: Debezium stops with an error, and so does this module
  (DecodeError, naming the setting that encodes them).
- double, numeric with or without typmod: ``BigDecimal.doubleValue()``, a JSON number;
  NaN, Infinity, -Infinity (and a numeric beyond a double's range) as Jackson writes a
  double that is not finite: ``"NaN"``, ``"Infinity"``, ``"-Infinity"``. money: the
  amount's ``doubleValue()``.
- string, numeric with or without typmod: ``toPlainString()``, i.e. the text at the
  column's scale as PostgreSQL sends it; NaN, Infinity, -Infinity as
  ``SpecialValueDecimal.toString()`` writes them, the names of its enum: ``"NAN"``,
  ``"POSITIVE_INFINITY"``, ``"NEGATIVE_INFINITY"``. money: the amount's
  ``toPlainString()``.

The text is numeric_out's, and cash_out's with ``lc_monetary=C`` (``-$1,234.56``).
Converters raise ValueError on text they cannot parse.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from cdcd.encoding import (
    EXACT_CONTEXT,
    DecimalMode,
    decimal_base64,
    jackson_double,
    plain_string,
    unscaled_at_scale,
    unscaled_base64,
)
from cdcd.errors import DecodeError

__all__ = [
    "SPECIALS_AS_DOUBLE",
    "encode_decimal",
    "encode_variable_scale_decimal",
    "money_converter",
    "numeric_converter",
]

Converter = Callable[[str], Any]


def _int(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:
        # int() refuses strings of more than 4300 digits (sys.set_int_max_str_digits);
        # Decimal has no such limit and converts exactly. Anything but digits (NaN, a
        # second '.') is refused, not truncated.
        unsigned = digits[1:] if digits[:1] == "-" else digits
        if not (unsigned.isascii() and unsigned.isdigit()):
            raise ValueError(f"not a number: {digits!r}") from None
        return int(Decimal(digits))


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:  # decimal.InvalidOperation
        raise ValueError(f"not a number: {text!r}") from None


#: Kafka Connect Decimal of a value at a scale (ValueError if not exact there).
encode_decimal = decimal_base64


def encode_variable_scale_decimal(value: Decimal) -> dict[str, Any]:
    """io.debezium.data.VariableScaleDecimal of ``value``: trailing zeros stripped."""
    if not value.is_finite():
        raise ValueError(f"{value} has no VariableScaleDecimal encoding")
    _, _, exponent = value.normalize(context=EXACT_CONTEXT).as_tuple()
    assert isinstance(exponent, int)
    scale = max(-exponent, 0)  # BigDecimal.stripTrailingZeros, then setScale(0) if < 0
    return {"scale": scale, "value": unscaled_base64(unscaled_at_scale(value, scale))}


# float and numeric (PostgreSQL 14+ has its infinities) special values as doubles: Jackson's
# writeNumber(double) quotes them (QUOTE_NON_NUMERIC_NUMBERS, on by default in Kafka's
# JsonConverter).
SPECIALS_AS_DOUBLE: Final = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}
# numeric's special values in string mode: SpecialValueDecimal.toString(), the name of its
# SpecialValue enum.
_SPECIALS_AS_STRING: Final = {
    "NaN": "NAN",
    "Infinity": "POSITIVE_INFINITY",
    "-Infinity": "NEGATIVE_INFINITY",
}


def _special_numeric(text: str) -> DecodeError:
    return DecodeError(
        f"numeric value {text!r} has no representation in decimal_handling_mode = "
        '"precise"; set [encoding] decimal_handling_mode = "string" (or "double") to '
        "encode it, then restart"
    )


def _numeric_at_scale(text: str, scale: int) -> str:
    """The fixed-scale encoding off the fast path: special values, a negative scale, and
    text at another scale than the column's."""
    if text in _SPECIALS_AS_STRING:
        raise _special_numeric(text)
    return encode_decimal(_decimal(text), scale)


def _fixed_numeric(scale: int) -> Converter:
    if scale < 0:  # numeric(p, -s), PostgreSQL 15+

        def negative_scale(text: str) -> str:
            return _numeric_at_scale(text, scale)

        return negative_scale

    def convert(text: str) -> str:
        # NaN and the infinities fail int(), so the usual value is not checked for them.
        whole, _, fraction = text.partition(".")
        if len(fraction) != scale:  # PostgreSQL stores the column's scale; be lenient anyway
            return _numeric_at_scale(text, scale)
        try:
            return unscaled_base64(_int(whole + fraction))
        except ValueError:
            return _numeric_at_scale(text, scale)  # raises: special, or not a number

    return convert


def _variable_numeric(text: str) -> dict[str, Any]:
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    try:
        unscaled = _int(whole + fraction)
    except ValueError:
        if text in _SPECIALS_AS_STRING:  # NaN and the infinities fail int()
            raise _special_numeric(text) from None
        raise
    return {"scale": len(fraction), "value": unscaled_base64(unscaled)}


def _numeric_double(text: str) -> float | str:
    special = SPECIALS_AS_DOUBLE.get(text)
    if special is not None:
        return special
    return jackson_double(float(text))  # correctly rounded, as BigDecimal.doubleValue


def _numeric_string(scale: int | None) -> Converter:
    """toPlainString at the column's scale (None: numeric without typmod, any scale)."""
    digits_after_point = None if scale is None else max(scale, 0)

    def convert(text: str) -> str:
        special = _SPECIALS_AS_STRING.get(text)
        if special is not None:
            return special
        value = _decimal(text)  # refuses what is not a number
        if digits_after_point is None or len(text.partition(".")[2]) == digits_after_point:
            return text  # numeric_out writes the plain digits at the value's scale
        # setScale(scale), exact or refused, as Debezium's withScaleAdjustedIfNeeded
        assert scale is not None
        return plain_string(unscaled_at_scale(value, scale), scale)

    return convert


def _numeric_scale(typmod: int) -> int:
    # typmod = ((precision << 16) | (scale & 0x7ff)) + 4; the scale is 11-bit signed (PG 15).
    scale = (typmod - 4) & 0x7FF
    return scale - 0x800 if scale & 0x400 else scale


def numeric_converter(typmod: int, mode: DecimalMode = "precise") -> Converter:
    """The converter of a numeric column of ``typmod`` (-1: none) in ``mode``."""
    if mode == "double":
        return _numeric_double
    scale = None if typmod < 0 else _numeric_scale(typmod)
    if mode == "string":
        return _numeric_string(scale)
    return _variable_numeric if scale is None else _fixed_numeric(scale)


def _money_amount(text: str) -> Decimal:
    # PostgresMoney.parse: no currency symbol, thousands separators or parentheses.
    negative = text.startswith("-") or text.startswith("(")
    amount = _decimal("".join(c for c in text if c.isdigit() or c == "."))
    return -amount if negative else amount


# What lc_monetary=C adds to an amount ("-$1,234.56"), removed before int().
_MONEY_MARKS: Final = str.maketrans("", "", "$,-()")


def _money(fraction_digits: int) -> Converter:
    """money in precise mode: a Decimal at ``fraction_digits`` (money.fraction.digits)."""
    quantum = Decimal(1).scaleb(-fraction_digits)

    def convert(text: str) -> str:
        whole, _, cents = text.partition(".")
        if len(cents) == fraction_digits and cents.isdigit():
            # The usual text: already at the scale, so rounding changes nothing.
            try:
                unscaled = int(whole.translate(_MONEY_MARKS) + cents)
            except ValueError:
                pass
            else:
                return unscaled_base64(-unscaled if text[:1] in ("-", "(") else unscaled)
        amount = _money_amount(text).quantize(quantum, rounding=ROUND_HALF_UP)
        return encode_decimal(amount, fraction_digits)

    return convert


def _money_double(text: str) -> float:
    return float(_money_amount(text))


def _money_string(text: str) -> str:
    return format(_money_amount(text), "f")  # toPlainString


def money_converter(mode: DecimalMode = "precise", fraction_digits: int = 2) -> Converter:
    """The converter of a money column in ``mode`` (``fraction_digits``: its scale in
    precise mode, Debezium's money.fraction.digits; the other modes write the amount)."""
    if mode == "precise":
        return _money(fraction_digits)
    return _money_double if mode == "double" else _money_string
