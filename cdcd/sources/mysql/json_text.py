"""MySQL's binary JSON as Debezium prints it (``types`` uses it for JSON columns).

MySQL keeps JSON in a binary form that the library decodes into Python values (dict with
bytes keys, bytes strings, int, float, bool, None, Decimal/datetime for opaque scalars).
Debezium prints the binary form with mysql-binlog-connector-java's JsonStringFormatter:
compact ({"a":1,"b":[1,2]}), keys in stored order. MariaDB's JSON is LONGTEXT and arrives
as text, passed through untouched.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

__all__ = ["json_text", "write_json"]

_JSON_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
_JSON_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})
for _code in range(0x20):
    _JSON_ESCAPES.setdefault(_code, f"\\u{_code:04X}")


def json_text(value: Any) -> str:
    """The JSON column value: MariaDB's text as is, MySQL's decoded document compact."""
    if isinstance(value, str):
        return value
    out: list[str] = []
    write_json(value, out)
    return "".join(out)


def write_json(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_json_string(key))
            out.append(":")
            write_json(item, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            write_json(item, out)
        out.append("]")
    elif isinstance(value, bytes | str):
        out.append(_json_string(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_java_double(value))
    elif isinstance(value, Decimal):
        out.append(format(value, "f"))  # BigDecimal.toPlainString
    elif isinstance(value, dt.datetime):
        # valueDatetime; DATE scalars also arrive as datetime (the library drops the kind)
        text = value.strftime("%Y-%m-%d %H:%M:%S") + _trimmed_fraction(value.microsecond)
        out.append(_json_string(text))
    elif isinstance(value, dt.time):
        text = value.strftime("%H:%M:%S") + _trimmed_fraction(value.microsecond)
        out.append(_json_string(text))
    else:
        raise ValueError(f"unexpected value in a JSON document: {type(value).__name__}")


def _json_string(value: bytes | str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return '"' + value.translate(_JSON_ESCAPES) + '"'


def _java_double(value: float) -> str:
    # JsonStringFormatter.value(double): Double.toString, or the exact BigDecimal expansion
    # when that would be in E notation (|x| < 1e-3 or >= 1e7).
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)
    return format(Decimal(value), "f")


def _trimmed_fraction(microsecond: int) -> str:
    return f".{microsecond:06d}".rstrip("0") if microsecond else ""
