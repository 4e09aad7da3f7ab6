"""The connector-level column options of ``[shaping]``, by Debezium's names:

- ``column.include.list`` / ``column.exclude.list``: regular expressions over
  ``<schema or database>.<table>.<column>``; columns left out of ``before`` and ``after``;
- ``column.mask.with.N.chars``: a string value becomes N ``*``;
- ``column.mask.hash.<algorithm>.with.salt.<salt>``: a string value becomes the lowercase
  hex digest of the salt followed by the value as Java serialises a String (Debezium's
  default, V1: ``ObjectOutputStream.writeObject``); ``column.mask.hash.v2.…``: followed
  by the value's UTF-8 bytes alone;
- ``column.truncate.to.N.chars``: a string value cut to N characters;
- ``message.key.columns``: ``<table regex>:<column>,<column>;…``, the message key.

As in Debezium, masking, hashing and truncation change string values only. Rows are
copied, never changed in place (the event's dicts belong to the source). A table's
plan is made at its first row (and again if its columns change).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from cdcd.envelope import Message
from cdcd.errors import ConfigError
from cdcd.events import ChangeEvent
from cdcd.transforms import Item
from cdcd.transforms.config import ColumnRule, ShapingConfig, compile_regex

Convert = Callable[[Any], Any]


def parse_key_columns(text: str) -> list[tuple[re.Pattern[str], list[str]]]:
    """``message.key.columns``: (table regex, its key columns) for each ``;`` entry."""
    out = []
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        table, sep, columns = entry.rpartition(":")
        names = [c.strip() for c in columns.split(",") if c.strip()]
        if not sep or not table or not names:
            raise ValueError(
                f"message.key.columns: {entry!r} is not <table regex>:<column>[,<column>...] "
                '(e.g. "shop.orders:customer,id;shop.items:sku")'
            )
        out.append((compile_regex(table), names))
    return out


def java_serialized(value: str) -> bytes:
    """A String as ``ObjectOutputStream.writeObject`` writes it: the stream header, then
    TC_STRING with a 2-byte length (TC_LONGSTRING, 8 bytes, past 65,535) and the
    modified UTF-8 (NUL as C0 80, a character beyond the BMP as two 3-byte surrogates)."""
    data = value.encode("utf-8")
    if "\0" in value or any(ord(c) > 0xFFFF for c in value):
        units = value.encode("utf-16-be", "surrogatepass")
        chars = (int.from_bytes(units[i : i + 2], "big") for i in range(0, len(units), 2))
        data = b"".join(
            b"\xc0\x80" if u == 0 else chr(u).encode("utf-8", "surrogatepass") for u in chars
        )
    if len(data) <= 0xFFFF:
        return b"\xac\xed\x00\x05\x74" + len(data).to_bytes(2, "big") + data
    return b"\xac\xed\x00\x05\x7c" + len(data).to_bytes(8, "big") + data


def _converter(rule: ColumnRule) -> Convert:
    if rule.kind == "mask":
        stars = "*" * rule.length
        return lambda v: stars if isinstance(v, str) else v
    if rule.kind == "truncate":
        n = rule.length
        return lambda v: v[:n] if isinstance(v, str) else v
    name = rule.algorithm.lower().replace("-", "").replace("sha3", "sha3_")
    salt = rule.salt.encode()
    to_bytes = (lambda v: v.encode("utf-8")) if rule.v2 else java_serialized

    def digest(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        h = hashlib.new(name)
        h.update(salt)
        h.update(to_bytes(value))
        return h.hexdigest()

    return digest


def _chain(first: Convert, then: Convert) -> Convert:
    return lambda value: then(first(value))


class _Plan:
    """One table's columns: those kept and the converter of each (None: as it is)."""

    def __init__(self, columns: tuple[str, ...], kept: list[str], convert: dict[str, Convert]):
        self.columns = columns
        self.kept = kept
        self.convert = convert
        self.identity = len(kept) == len(columns) and not convert

    def row(self, row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None or self.identity:
            return row
        convert = self.convert
        return {
            name: (convert[name](row[name]) if name in convert else row[name])
            for name in self.kept
            if name in row
        }


class ColumnShaper:
    def __init__(self, config: ShapingConfig) -> None:
        self.include = [compile_regex(e) for e in config.column_include_list or []]
        self.exclude = [compile_regex(e) for e in config.column_exclude_list or []]
        self.rules = [
            ([compile_regex(c) for c in rule.columns], _converter(rule))
            for rule in config.column_rules
        ]
        self.keys = parse_key_columns(config.message_key_columns or "")
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._key_columns: dict[tuple[str, str], list[str] | None] = {}

    def apply(self, items: list[Item]) -> list[Item]:
        for item in items:
            if type(item) is not Message:
                continue
            event = item.event
            if type(event) is not ChangeEvent or type(item.value) is not dict:
                continue
            row = event.after if event.after is not None else event.before
            if row is None:
                continue  # a truncate
            table = (event.namespace, event.table)
            key_columns = self._key_columns.get(table, ())
            if key_columns == ():
                key_columns = self._key_columns[table] = self._key_for(table, row)
            if key_columns is not None:
                item.key = {name: row.get(name) for name in key_columns}  # a key-only before
            plan = self._plans.get(table)
            if plan is None or plan.columns != tuple(row):
                plan = self._plans[table] = self._plan(table, tuple(row))
            if not plan.identity:
                value = item.value = dict(item.value)
                value["before"] = plan.row(value["before"])
                value["after"] = plan.row(value["after"])
        return items

    def _key_for(self, table: tuple[str, str], row: dict[str, Any]) -> list[str] | None:
        name = f"{table[0]}.{table[1]}"
        for pattern, columns in self.keys:
            if pattern.fullmatch(name):
                missing = [c for c in columns if c not in row]
                if missing:
                    raise ConfigError(
                        f"shaping.message.key.columns: table {name} has no column "
                        f"{missing[0]!r} (its columns: {', '.join(row)})"
                    )
                return columns
        return None

    def _plan(self, table: tuple[str, str], columns: tuple[str, ...]) -> _Plan:
        prefix = f"{table[0]}.{table[1]}."
        kept = []
        convert: dict[str, Convert] = {}
        for column in columns:
            full = prefix + column
            if self.include and not any(p.fullmatch(full) for p in self.include):
                continue
            if any(p.fullmatch(full) for p in self.exclude):
                continue
            kept.append(column)
            for patterns, converter in self.rules:
                if any(p.fullmatch(full) for p in patterns):
                    first = convert.get(column)
                    convert[column] = converter if first is None else _chain(first, converter)
        return _Plan(columns, kept, convert)
