"""PostgreSQL text-format values -> the JSON values Debezium's PostgreSQL connector emits.

pgoutput (non-binary) sends every column as the text its output function writes. This
module turns that text into what Debezium 2.x/3.x writes with the JsonConverter
(``schemas.enable=false``) under its default settings, ``decimal.handling.mode`` aside
(precise by default, or double or string: ``[encoding] decimal_handling_mode``),
``time.precision.mode=adaptive``, ``binary.handling.mode=bytes``,
``interval.handling.mode=numeric``, ``hstore.handling.mode=json``, ``money.fraction.digits=2``.

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
infinity -> -2147472693 and -infinity -> -2147472692 days; timestamp infinity ->
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
import datetime
import re
import struct
from collections.abc import Callable
from typing import Any, Final

from cdcd.encoding import DecimalMode
from cdcd.sources.postgres.numeric import (
    SPECIALS_AS_DOUBLE,
    encode_decimal,
    encode_variable_scale_decimal,
    money_converter,
    numeric_converter,
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

_US_PER_DAY: Final = 86_400_000_000
_UNIX_EPOCH_ORDINAL: Final = 719_163  # date(1970, 1, 1).toordinal()
_DAYS_PER_MONTH_AVG: Final = 365.25 / 12.0  # MicroDuration.DAYS_PER_MONTH_AVG

# Released Debezium's stand-ins for PostgreSQL's infinite dates and timestamps.
_DATE_POS_INFINITY_DAYS: Final = -2_147_472_693  # LocalDate "-5877611-06-21"
_DATE_NEG_INFINITY_DAYS: Final = -2_147_472_692  # LocalDate "-5877611-06-22"
_TS_POS_INFINITY_US: Final = 9_223_372_036_825_200_000
_TS_NEG_INFINITY_US: Final = -9_223_372_036_832_400_000

# Builtin type OIDs (pg_type.dat).
BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 18, 19, 20, 21, 23, 25, 26
JSON, XML, POINT, CIDR, FLOAT4, FLOAT8 = 114, 142, 600, 650, 700, 701
MACADDR8, MONEY, MACADDR, INET, BPCHAR, VARCHAR = 774, 790, 829, 869, 1042, 1043
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ = 1082, 1083, 1114, 1184, 1186, 1266
BIT, VARBIT, NUMERIC, UUID, TSVECTOR, JSONB = 1560, 1562, 1700, 2950, 3614, 3802


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _float(text: str) -> float | str:
    special = SPECIALS_AS_DOUBLE.get(text)
    return special if special is not None else float(text)


def _bool(text: str) -> bool:
    return text == "t"


_BYTEA_ESCAPE = re.compile(rb"\\(\\|[0-7]{3})")


def _bytea(text: str) -> str:
    if text.startswith("\\x"):
        return _b64(binascii.a2b_hex(text[2:]))
    # bytea_output=escape: printable ASCII as is, '\\' and '\ooo' octal escapes.
    raw = _BYTEA_ESCAPE.sub(
        lambda m: b"\\" if m.group(1) == b"\\" else bytes([int(m.group(1), 8)]),
        text.encode("latin-1"),
    )
    return _b64(raw)


# --- dates and times ---------------------------------------------------------------------


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date; any year (H. Hinnant)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return year_of_era + era * 400 + (month <= 2), month, day


def _epoch_days(date_text: str, bc: bool) -> int:
    """Days since the epoch of PostgreSQL's ISO date text ``Y...Y-MM-DD`` (year >= 1)."""
    if date_text[-3:-2] != "-" or date_text[-6:-5] != "-":
        raise ValueError(f"not an ISO date: {date_text!r}")
    year = int(date_text[:-6])
    month = int(date_text[-5:-3])
    day = int(date_text[-2:])
    if bc:  # 1 BC is ISO year 0
        year = 1 - year
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        raise ValueError(f"not a date: {date_text!r}")
    return _days_from_civil(year, month, day)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _time_of_day_us(text: str) -> int:
    """Microseconds of ``HH:MM:SS[.ffffff]`` (HH may be 24)."""
    hours, minutes, seconds = text[:2], text[3:5], text[6:8]
    if text[2] != ":" or text[5] != ":":
        raise ValueError(f"not a time of day: {text!r}")
    micros = 0
    if len(text) > 8:
        if text[8] != ".":
            raise ValueError(f"not a time of day: {text!r}")
        micros = int(text[9:15].ljust(6, "0"))
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1_000_000 + micros


def _split_offset(text: str) -> tuple[str, int]:
    """Split ``<time>+HH[:MM[:SS]]`` into the time and the offset in seconds east of UTC."""
    sign_at = max(text.rfind("+"), text.rfind("-"))
    if sign_at < 8:
        raise ValueError(f"no UTC offset in {text!r}")
    parts = text[sign_at + 1 :].split(":")
    seconds = int(parts[0]) * 3600
    if len(parts) > 1:
        seconds += int(parts[1]) * 60
    if len(parts) > 2:
        seconds += int(parts[2])
    return text[:sign_at], -seconds if text[sign_at] == "-" else seconds


# Fast paths parse with datetime's C parsers, which cover years 1-9999; what they refuse
# (BC, years past 9999, infinities, 24:00:00) takes the slower general path.
_from_iso_date = datetime.date.fromisoformat
_from_iso_datetime = datetime.datetime.fromisoformat
_from_iso_time = datetime.time.fromisoformat
_EPOCH_NAIVE: Final = datetime.datetime(1970, 1, 1)
_ONE_US: Final = datetime.timedelta(microseconds=1)
_ONE_MS: Final = datetime.timedelta(milliseconds=1)
_UTC: Final = datetime.UTC


def _date(text: str) -> int:
    try:
        return _from_iso_date(text).toordinal() - _UNIX_EPOCH_ORDINAL
    except ValueError:
        pass
    if text == "infinity":
        return _DATE_POS_INFINITY_DAYS
    if text == "-infinity":
        return _DATE_NEG_INFINITY_DAYS
    bc = text.endswith(" BC")
    return _epoch_days(text[:-3] if bc else text, bc)


def _timestamp_us(text: str) -> int:
    """Microseconds since the epoch of a timestamp (without time zone) text value."""
    try:
        return (_from_iso_datetime(text) - _EPOCH_NAIVE) // _ONE_US
    except ValueError:
        pass
    if text == "infinity":
        return _TS_POS_INFINITY_US
    if text == "-infinity":
        return _TS_NEG_INFINITY_US
    bc = text.endswith(" BC")
    if bc:
        text = text[:-3]
    date_text, _, time_text = text.partition(" ")
    return _epoch_days(date_text, bc) * _US_PER_DAY + _time_of_day_us(time_text)


def _timestamp_ms(text: str) -> int:
    # The column keeps at most milliseconds, so the division is exact.
    try:
        return (_from_iso_datetime(text) - _EPOCH_NAIVE) // _ONE_MS
    except ValueError:
        return _timestamp_us(text) // 1000


def _iso_year(year: int) -> str:
    # java.time ISO_LOCAL_DATE: at least 4 digits, '+' above 9999, '-' below 0.
    if year > 9999:
        return f"+{year}"
    if year < 0:
        return f"-{-year:04d}"
    return f"{year:04d}"


def _fraction(micros: int, width: int) -> str:
    if width <= 0:  # ISO_OFFSET_DATE_TIME: only the digits needed, none for zero
        return f".{micros:06d}".rstrip("0") if micros else ""
    return "." + f"{micros:06d}".ljust(width, "0")[:width]


def _timestamptz(width: int) -> Converter:
    zeros = "0" * width

    def convert(text: str) -> str:
        if text[-3:] == "+00" and text[10:11] == " " and text[19:20] in ".+":
            # The replication session runs in UTC: no arithmetic, only reformatting.
            digits = text[20:-3]  # PostgreSQL prints no trailing zeros
            if width <= 0:
                fraction = "." + digits if digits else ""
            else:
                fraction = "." + (digits + zeros)[:width]
            return text[:10] + "T" + text[11:19] + fraction + "Z"
        try:
            iso = _from_iso_datetime(text).astimezone(_UTC).isoformat(timespec="microseconds")
            return iso[:19] + _fraction(int(iso[20:26]), width) + "Z"
        except (ValueError, OverflowError):
            return _timestamptz_general(text, width)

    return convert


def _timestamptz_general(text: str, width: int) -> str:
    if text == "infinity" or text == "-infinity":
        return text
    bc = text.endswith(" BC")
    if bc:
        text = text[:-3]
    date_text, _, time_text = text.partition(" ")
    time_text, offset = _split_offset(time_text)
    epoch_us = (
        _epoch_days(date_text, bc) * _US_PER_DAY + _time_of_day_us(time_text) - offset * 1_000_000
    )
    days, day_us = divmod(epoch_us, _US_PER_DAY)
    year, month, day = _civil_from_days(days)
    seconds, micros = divmod(day_us, 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{_iso_year(year)}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}"
        f"{_fraction(micros, width)}Z"
    )


def _time_us(text: str) -> int:
    try:
        time = _from_iso_time(text)
    except ValueError:  # 24:00:00
        return _time_of_day_us(text)
    return ((time.hour * 60 + time.minute) * 60 + time.second) * 1_000_000 + time.microsecond


def _time_ms(text: str) -> int:
    return _time_us(text) // 1000  # the column keeps at most milliseconds


def _timetz(text: str) -> str:
    time_text, offset = _split_offset(text)
    local_us = _time_of_day_us(time_text)
    if local_us == _US_PER_DAY and offset == 0:
        return "24:00:00Z"  # the end-of-day boundary java.time cannot represent
    utc_us = (local_us - offset * 1_000_000) % _US_PER_DAY
    seconds, micros = divmod(utc_us, 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{_fraction(micros, 0)}Z"


def _java_round(value: float) -> int:
    # Math.round(double): floor(x + 0.5)
    return int((value + 0.5) // 1)


def _interval(text: str) -> int:
    """MicroDuration of an IntervalStyle=postgres interval, as pgjdbc PGInterval parses it."""
    years = months = days = hours = minutes = 0
    seconds = 0.0
    value_token: str | None = None
    for index, token in enumerate(text.replace("+", " ").split()):
        if index % 2 == 0:
            colon = token.find(":")
            if colon == -1:
                value_token = token
                continue
            negative = token[0] == "-"
            start = 1 if negative else 0
            hours = int(token[start:colon])
            minutes = int(token[colon + 1 : colon + 3])
            second_colon = token.find(":", colon + 1)
            if second_colon != -1:
                seconds = float(token[second_colon + 1 :])
            if negative:
                hours, minutes, seconds = -hours, -minutes, -seconds
            value_token = None
        elif value_token is None:
            raise ValueError(f"unexpected {token!r} in interval {text!r}")
        elif token.startswith("year"):
            years = int(value_token)
        elif token.startswith("mon"):
            months = int(value_token)
        elif token.startswith("day"):
            days = int(value_token)
        elif token.startswith("hour"):
            hours = int(value_token)
        elif token.startswith("min"):
            minutes = int(value_token)
        elif token.startswith("sec"):
            seconds = float(value_token)
        else:
            raise ValueError(f"unknown unit {token!r} in interval {text!r}")
    # PGInterval.setSeconds keeps whole seconds and rounded microseconds apart.
    total_micros = _java_round(seconds * 1_000_000)
    whole = abs(total_micros) // 1_000_000 * (1 if total_micros >= 0 else -1)
    seconds = whole + (total_micros - whole * 1_000_000) / 1_000_000
    # MicroDuration.durationMicros, in the same double arithmetic.
    number_of_days = (years * 12 + months) * _DAYS_PER_MONTH_AVG + days
    number_of_seconds = ((number_of_days * 24 + hours) * 60 + minutes) * 60 + seconds
    micros = number_of_seconds * 1_000_000.0
    # Java's (long) cast truncates and saturates at the bounds of a long.
    if micros >= 9.223372036854775807e18:
        return 9_223_372_036_854_775_807
    if micros <= -9.223372036854775808e18:
        return -9_223_372_036_854_775_808
    return int(micros)


# --- other scalar types ------------------------------------------------------------------


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


_HSTORE_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(NULL)\b)\s*(=>|,|$)', re.S | re.I)
_UNESCAPE = re.compile(r"\\(.)", re.S)


def _hstore(text: str) -> str:
    pairs: dict[str, str | None] = {}
    pos, end = 0, len(text)
    key: str | None = None
    while pos < end:
        match = _HSTORE_TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"malformed hstore at offset {pos}: {text!r}")
        quoted, separator = match.group(1), match.group(3)
        value = None if quoted is None else _UNESCAPE.sub(r"\1", quoted)
        if key is None:
            if separator != "=>" or value is None:
                raise ValueError(f"malformed hstore key at offset {pos}: {text!r}")
            key = value
        else:
            if separator == "=>":
                raise ValueError(f"malformed hstore value at offset {pos}: {text!r}")
            pairs[key] = value
            key = None
        pos = match.end()
    if key is not None:
        raise ValueError(f"hstore key without value: {text!r}")
    return (
        "{"
        + ",".join(
            f"{_json_string(k)}:{'null' if v is None else _json_string(v)}"
            for k, v in pairs.items()
        )
        + "}"
    )


# Jackson's default string escaping: '"', '\\', and control characters (\b \t \n \f \r short,
# the others as \u00XX in upper case); everything else, non-ASCII included, as is.
_JSON_ESCAPES: Final = {c: f"\\u{c:04X}" for c in range(0x20)} | {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}


def _json_string(value: str) -> str:
    return '"' + value.translate(_JSON_ESCAPES) + '"'


# --- arrays ------------------------------------------------------------------------------

# PostgreSQL's array_isspace: ASCII whitespace only.
_ARRAY_TOKEN = re.compile(
    r'[ \t\n\r\v\f]*(?:([{},])|(?:"((?:[^"\\]|\\.)*)"|((?:[^{},"\\]|\\.)+?))'
    r"[ \t\n\r\v\f]*(?=[},]))",
    re.S,
)
_FLAT_ARRAY = re.compile(r'\{[^{}"\\ \t\n\r\v\f]*\}')
_ARRAY_DIMENSIONS = re.compile(r"[ \t\n\r\v\f]*(?:\[[+-]?\d+:[+-]?\d+\])+[ \t\n\r\v\f]*=")

ArrayItems = list[Any]  # nested lists of str | None


def parse_array(text: str) -> ArrayItems:
    """Parse PostgreSQL's array text format (``{1,2,NULL,"a,b"}``) into nested lists.

    Elements stay text (``None`` for NULL); multi-dimensional arrays become nested lists.
    """
    if _FLAT_ARRAY.fullmatch(text):
        # PostgreSQL's array_out quotes anything with special characters or whitespace:
        # a flat array of plain elements is a split away.
        inner = text[1:-1]
        if not inner:
            return []
        items = inner.split(",")
        if "" not in items:
            return [None if len(item) == 4 and item.upper() == "NULL" else item for item in items]
    return _parse_array_general(text)


def _parse_array_general(text: str) -> ArrayItems:
    pos = 0
    decoration = _ARRAY_DIMENSIONS.match(text)
    if decoration is not None:
        pos = decoration.end()
    root: ArrayItems | None = None
    stack: list[ArrayItems] = []
    expect_item = True  # after '{' or ',': an element or '{' (or '}' right after '{')
    just_opened = False
    end = len(text)
    while pos < end:
        match = _ARRAY_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"malformed array at offset {pos}: {text!r}")
        punct, quoted, bare = match.groups()
        pos = match.end()
        if punct == "{":
            if not expect_item or (root is not None and not stack):
                raise ValueError(f"unexpected '{{' at offset {match.start(1)}: {text!r}")
            new: ArrayItems = []
            if stack:
                stack[-1].append(new)
            else:
                root = new
            stack.append(new)
            expect_item, just_opened = True, True
        elif punct == "}":
            if not stack or (expect_item and not just_opened):
                raise ValueError(f"unexpected '}}' at offset {match.start(1)}: {text!r}")
            stack.pop()
            expect_item, just_opened = False, False
        elif punct == ",":
            if expect_item or not stack:
                raise ValueError(f"unexpected ',' at offset {match.start(1)}: {text!r}")
            expect_item, just_opened = True, False
        else:
            if not expect_item or not stack:
                raise ValueError(f"unexpected element at offset {match.start()}: {text!r}")
            if quoted is not None:
                stack[-1].append(_UNESCAPE.sub(r"\1", quoted))
            elif "\\" in bare:
                stack[-1].append(_UNESCAPE.sub(r"\1", bare))
            elif bare.isascii() and bare.upper() == "NULL":
                stack[-1].append(None)
            else:
                stack[-1].append(bare)
            expect_item, just_opened = False, False
    if root is None or stack:
        raise ValueError(f"unterminated array: {text!r}")
    return root


def _map_nested(items: ArrayItems, convert: Converter) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item is None:
            out.append(None)
        elif type(item) is list:
            out.append(_map_nested(item, convert))
        else:
            out.append(convert(item))
    return out


def _array(element: Converter) -> Converter:
    if element is str:  # text-like elements: the parsed array is the value
        return parse_array

    def convert(text: str) -> list[Any]:
        return _map_nested(parse_array(text), element)

    return convert


# --- the registry ------------------------------------------------------------------------


def _precision(typmod: int) -> int:
    # pgjdbc TypeInfoCache.getScale for time/timestamp types: no typmod means 6.
    return 6 if typmod < 0 else typmod


def _bit(typmod: int) -> Converter:
    # Column length is the typmod (bit(n), varbit(n)); varbit without one is 2^31 - 1.
    return _bits_as_bool if typmod == 1 else _bits


_SCALARS: Final[dict[int, Callable[[int], Converter]]] = {
    BOOL: lambda _: _bool,
    BYTEA: lambda _: _bytea,
    INT2: lambda _: int,
    INT4: lambda _: int,
    INT8: lambda _: int,
    OID: lambda _: int,
    FLOAT4: lambda _: _float,
    FLOAT8: lambda _: _float,
    DATE: lambda _: _date,
    TIME: lambda typmod: _time_ms if _precision(typmod) <= 3 else _time_us,
    TIMETZ: lambda _: _timetz,
    TIMESTAMP: lambda typmod: _timestamp_ms if _precision(typmod) <= 3 else _timestamp_us,
    TIMESTAMPTZ: lambda typmod: _timestamptz(_precision(typmod)),
    INTERVAL: lambda _: _interval,
    BIT: _bit,
    VARBIT: _bit,
    POINT: lambda _: _point,
}

# The types decimal.handling.mode applies to.
_DECIMALS: Final[dict[int, Callable[[int, DecimalMode], Converter]]] = {
    NUMERIC: numeric_converter,
    MONEY: money_converter,
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
_EXTENSIONS: Final[dict[str, Converter]] = {"hstore": _hstore}


def _scalar(type_oid: int, typmod: int, decimal_mode: DecimalMode) -> Converter:
    decimal = _DECIMALS.get(type_oid)
    if decimal is not None:
        return decimal(typmod, decimal_mode)
    factory = _SCALARS.get(type_oid)
    return str if factory is None else factory(typmod)


def make_converter(
    type_oid: int,
    typmod: int,
    type_name: str | None = None,
    decimal_mode: DecimalMode = "precise",
) -> Converter:
    """Build the converter of one column from its Relation message type and typmod.

    ``type_name`` comes from the Type message pgoutput sends for non-builtin types (enums,
    domains, extension types); it is ignored for builtin OIDs. Anything unrecognised is
    passed through as its text, as are enums. ``decimal_mode`` is Debezium's
    ``decimal.handling.mode`` (numeric and money, their arrays and domains).
    """
    if type_oid in _SCALARS or type_oid in _DECIMALS:
        return _scalar(type_oid, typmod, decimal_mode)
    element = _ARRAYS.get(type_oid)
    if element is not None:
        return _array(_scalar(element, typmod, decimal_mode))
    if type_name is None or type_oid < 10000:  # builtin text-encoded type, or unknown
        return str
    return _converter_by_name(type_name, typmod, decimal_mode)


def _converter_by_name(type_name: str, typmod: int, decimal_mode: DecimalMode) -> Converter:
    if type_name.startswith("_"):  # array types are named after their element, with '_'
        return _array(_converter_by_name(type_name[1:], typmod, decimal_mode))
    extension = _EXTENSIONS.get(type_name)
    if extension is not None:
        return extension
    builtin = _NAMES.get(type_name)  # a domain over a builtin type
    return str if builtin is None else _scalar(builtin, typmod, decimal_mode)
