"""PostgreSQL's dates, times, timestamps and intervals (ISO ``DateStyle``,
``IntervalStyle=postgres``) -> Debezium's encodings of them; ``types`` says which of
these each column type gets (and why).

Infinite dates and timestamps reproduce the constants of released Debezium versions,
including their known oddities (``PostgresValueConverter.POSITIVE_INFINITY_*``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from typing import Final

_US_PER_DAY: Final = 86_400_000_000
_UNIX_EPOCH_ORDINAL: Final = 719_163  # date(1970, 1, 1).toordinal()
_DAYS_PER_MONTH_AVG: Final = 365.25 / 12.0  # MicroDuration.DAYS_PER_MONTH_AVG

# Released Debezium's stand-ins for PostgreSQL's infinite dates and timestamps.
_DATE_POS_INFINITY_DAYS: Final = -2_147_472_692  # LocalDate "-5877611-06-21".toEpochDay()
_DATE_NEG_INFINITY_DAYS: Final = -2_147_472_691  # LocalDate "-5877611-06-22".toEpochDay()
_TS_POS_INFINITY_US: Final = 9_223_372_036_825_200_000
_TS_NEG_INFINITY_US: Final = -9_223_372_036_832_400_000


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


def date_days(text: str) -> int:
    """io.debezium.time.Date: days since 1970-01-01."""
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


def timestamp_us(text: str) -> int:
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


def timestamp_ms(text: str) -> int:
    """Timestamp: milliseconds since the epoch (timestamp(p), p <= 3)."""
    # The column keeps at most milliseconds, so the division is exact.
    try:
        return (_from_iso_datetime(text) - _EPOCH_NAIVE) // _ONE_MS
    except ValueError:
        return timestamp_us(text) // 1000


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


def timestamptz(width: int) -> Callable[[str], str]:
    """ZonedTimestamp of timestamptz(``width``): ISO-8601 in UTC with ``width`` fractional
    digits (0: none), ``Z``."""
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


def time_us(text: str) -> int:
    """MicroTime: microseconds past midnight."""
    try:
        time = _from_iso_time(text)
    except ValueError:  # 24:00:00
        return _time_of_day_us(text)
    return ((time.hour * 60 + time.minute) * 60 + time.second) * 1_000_000 + time.microsecond


def time_ms(text: str) -> int:
    """Time: milliseconds past midnight (time(p), p <= 3)."""
    return time_us(text) // 1000  # the column keeps at most milliseconds


def timetz(text: str) -> str:
    """ZonedTime: ISO-8601 time in UTC, fraction without trailing zeros, ``Z``."""
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


def _interval_fields(text: str) -> tuple[int, int, int, int, int, float]:
    """Years, months, days, hours, minutes and seconds of an IntervalStyle=postgres
    interval, as pgjdbc's PGInterval parses it (``getSeconds()``)."""
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
    return years, months, days, hours, minutes, seconds


def interval_micros(text: str) -> int:
    """MicroDuration of an IntervalStyle=postgres interval, as pgjdbc PGInterval parses it."""
    years, months, days, hours, minutes, seconds = _interval_fields(text)
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


_NINE_DIGITS: Final = Decimal("1e-9")


def interval_iso(text: str) -> str:
    """io.debezium.time.Interval (interval.handling.mode=string): Interval.toIsoString,
    ``P<y>Y<m>M<d>DT<h>H<min>M<s>S``, the seconds BigDecimal.valueOf(double) with its
    trailing zeros stripped (``P1Y2M3DT4H5M6.78S``, ``P0Y0M0DT0H0M0S``)."""
    years, months, days, hours, minutes, seconds = _interval_fields(text)
    second = Decimal(repr(seconds))  # Double.toString's shortest digits, as BigDecimal.valueOf
    if second.as_tuple().exponent < -9:  # type: ignore[operator]
        second = second.quantize(_NINE_DIGITS, rounding=ROUND_DOWN)
    second_text = "0" if second == 0 else format(second.normalize(), "f")
    return f"P{years}Y{months}M{days}DT{hours}H{minutes}M{second_text}S"
