"""The encoding modes of ``[encoding]`` (``Encoding``: the one place that says which a
daemon runs with), and the encodings both sources share: decimal numbers (Kafka Connect's
Decimal and the three modes of ``decimal.handling.mode``) and binary values
(``binary.handling.mode``), written once.

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
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any, Final, Literal

__all__ = [
    "BINARY_MODES",
    "DECIMAL_MODES",
    "MODES",
    "TIME_PRECISION_MODES",
    "BigintUnsignedMode",
    "BinaryMode",
    "Encoding",
    "EXACT_CONTEXT",
    "DecimalMode",
    "HstoreMode",
    "IntervalMode",
    "TimePrecisionMode",
    "binary_encoder",
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
#: ``time.precision.mode``: PostgreSQL's default is adaptive, MySQL's (which no longer
#: accepts adaptive) adaptive_time_microseconds.
TimePrecisionMode = Literal["adaptive", "adaptive_time_microseconds", "connect"]
TIME_PRECISION_MODES: Final[tuple[TimePrecisionMode, ...]] = (
    "adaptive",
    "adaptive_time_microseconds",
    "connect",
)
BinaryMode = Literal["bytes", "base64", "base64-url-safe", "hex"]
BINARY_MODES: Final[tuple[BinaryMode, ...]] = ("bytes", "base64", "base64-url-safe", "hex")
BigintUnsignedMode = Literal["long", "precise"]
IntervalMode = Literal["numeric", "string"]
HstoreMode = Literal["json", "map"]

#: Each mode's values by its ``Encoding`` field, Debezium's default first (but
#: time_precision_mode's, which is the source's).
MODES: Final[dict[str, tuple[str, ...]]] = {
    "decimal_mode": DECIMAL_MODES,
    "time_precision_mode": TIME_PRECISION_MODES,
    "binary_mode": BINARY_MODES,
    "bigint_unsigned_mode": ("long", "precise"),
    "interval_mode": ("numeric", "string"),
    "hstore_mode": ("json", "map"),
}


@dataclass(frozen=True, slots=True)
class Encoding:
    """The encoding modes a daemon runs with (``[encoding]``, Debezium's names and
    defaults): what the sources' converters are built for, once per table, and what a
    schema of their values reads. Built by ``EncodingConfig.modes()``."""

    decimal_mode: DecimalMode = "precise"  # decimal.handling.mode
    time_precision_mode: TimePrecisionMode = "adaptive"  # time.precision.mode
    binary_mode: BinaryMode = "bytes"  # binary.handling.mode
    bigint_unsigned_mode: BigintUnsignedMode = "long"  # bigint.unsigned.handling.mode (MySQL)
    interval_mode: IntervalMode = "numeric"  # interval.handling.mode (PostgreSQL)
    hstore_mode: HstoreMode = "json"  # hstore.handling.mode (PostgreSQL)
    money_fraction_digits: int = 2  # money.fraction.digits (PostgreSQL)
    # column.propagate.source.type: regexes over <schema|database>.<table>.<column>
    propagate_source_types: tuple[str, ...] = ()

    def propagates_source_type(self, namespace: str, table: str, column: str) -> bool:
        """Whether ``column.propagate.source.type`` names the column (a regex matching the
        whole of ``namespace.table.column``, case-insensitively, as Debezium's)."""
        name = f"{namespace}.{table}.{column}"
        return any(re.fullmatch(p, name, re.IGNORECASE) for p in self.propagate_source_types)


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


def _base64_text(value: bytes) -> str:
    return _b2a_base64(value, newline=False).decode()


def _base64_url_safe(value: bytes) -> str:
    # Java's Base64.getUrlEncoder(): '-' and '_' for '+' and '/', with padding
    return _b2a_base64(value, newline=False).decode().translate(_URL_SAFE)


_URL_SAFE: Final = str.maketrans("+/", "-_")


def _hex(value: bytes) -> str:
    return value.hex()  # HexConverter.convertToHexString: lower case


def binary_encoder(mode: BinaryMode) -> Callable[[bytes], str]:
    """What ``binary.handling.mode`` writes for binary bytes through the JsonConverter:
    bytes and base64 alike (JsonConverter writes BYTES in base64), base64-url-safe, hex."""
    if mode in ("bytes", "base64"):
        return _base64_text
    if mode == "base64-url-safe":
        return _base64_url_safe
    if mode == "hex":
        return _hex
    raise ValueError(f"unknown binary handling mode {mode!r}: one of {', '.join(BINARY_MODES)}")
