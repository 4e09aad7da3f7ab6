"""Decimal numbers as Debezium writes them: Kafka Connect's Decimal and the three modes of
``decimal.handling.mode``, written once for both sources.

Debezium (``JdbcValueConverters.DecimalMode``, ``SpecialValueDecimal.fromLogical``) with
Kafka's JsonConverter (``schemas.enable=false``, ``decimal.format=BASE64``, Jackson's
defaults):

- ``precise``: ``org.apache.kafka.connect.data.Decimal``, the unscaled value's
  ``BigInteger.toByteArray()`` (minimal big-endian two's complement) in base64.
- ``double``: ``BigDecimal.doubleValue()``, a JSON number; a double that is not finite is
  written as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (Jackson's
  ``QUOTE_NON_NUMERIC_NUMBERS``, on by default).
- ``string``: ``BigDecimal.toPlainString()``: the digits at the value's scale, never an
  exponent.

Pure functions of Python ints and Decimals: both sources and their reader processes use
them without any driver.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Callable
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any, Final, Literal

__all__ = [
    "DECIMAL_MODES",
    "EXACT_CONTEXT",
    "DecimalMode",
    "decimal_base64",
    "jackson_double",
    "plain_string",
    "unscaled_at_scale",
    "unscaled_base64",
    "unscaled_encoder",
]

#: Debezium's ``decimal.handling.mode`` values; ``precise`` is its default.
DecimalMode = Literal["precise", "double", "string"]
DECIMAL_MODES: Final[tuple[DecimalMode, ...]] = ("precise", "double", "string")

_b2a_base64 = binascii.b2a_base64

#: Decimal arithmetic rounds to its context's precision (28 digits by default); a
#: PostgreSQL numeric has up to 147455 digits: this context never rounds.
EXACT_CONTEXT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)

# Jackson's writeNumber(double) for the values JSON has no number for.
_NOT_FINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}


def unscaled_base64(unscaled: int) -> str:
    """Kafka Connect Decimal of an unscaled value: ``BigInteger.toByteArray`` in base64."""
    # Minimal two's complement with room for the sign bit, at least one byte; big-endian
    # (to_bytes' default). decode() without arguments is the quickest: base64 is ASCII.
    length = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() + 8) >> 3
    return _b2a_base64(unscaled.to_bytes(length, signed=True), newline=False).decode()


def unscaled_at_scale(value: Decimal, scale: int) -> int:
    """The unscaled value of ``value`` at ``scale``; exact or ValueError, as Java's
    ``BigDecimal.setScale`` without rounding (NaN and infinities have none)."""
    if not value.is_finite():
        raise ValueError(f"{value} has no unscaled value")
    scaled = value.scaleb(scale, context=EXACT_CONTEXT)
    unscaled = int(scaled)
    if unscaled != scaled:
        raise ValueError(f"{value} has more than {scale} fractional digits")
    return unscaled


def decimal_base64(value: Decimal, scale: int) -> str:
    """Kafka Connect Decimal of ``value`` at ``scale`` (ValueError if not exact there)."""
    return unscaled_base64(unscaled_at_scale(value, scale))


def plain_string(unscaled: int, scale: int) -> str:
    """``BigDecimal.toPlainString()`` of ``unscaled`` * 10**-``scale``."""
    if scale <= 0:
        return str(unscaled * 10**-scale)
    digits = str(-unscaled if unscaled < 0 else unscaled).rjust(scale + 1, "0")
    return f"{'-' if unscaled < 0 else ''}{digits[:-scale]}.{digits[-scale:]}"


def jackson_double(value: float) -> float | str:
    """A double as Kafka's JsonConverter writes it: a number, or a string if not finite."""
    if value - value == 0:  # finite
        return value
    return _NOT_FINITE.get(value, "NaN")


def unscaled_encoder(mode: DecimalMode, scale: int) -> Callable[[int], Any]:
    """What ``mode`` writes for a decimal of ``scale`` given its unscaled value."""
    if mode == "precise":
        return unscaled_base64
    if mode == "double":
        # int / int is correctly rounded, as BigDecimal.doubleValue(); 65 digits (MySQL's
        # most) are far from overflowing a double.
        if scale <= 0:
            factor = 10**-scale
            return lambda unscaled: float(unscaled * factor)
        divisor = 10**scale
        return lambda unscaled: unscaled / divisor
    if mode == "string":
        return lambda unscaled: plain_string(unscaled, scale)
    raise ValueError(f"unknown decimal handling mode {mode!r}: one of {', '.join(DECIMAL_MODES)}")
