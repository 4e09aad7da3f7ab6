"""Routing SMTs of ``[shaping]``: the filter (by operation, by a condition on the row)
and Kafka Connect's RegexRouter (``regex`` / ``replacement``)."""

from __future__ import annotations

import re
from typing import Any

from cdcd.envelope import Message
from cdcd.errors import ConfigError
from cdcd.events import ChangeEvent
from cdcd.transforms import Item
from cdcd.transforms.config import ShapingConfig, compile_regex
from cdcd.transforms.predicate import parse_condition


class Filter:
    """Keeps the changes of ``filter.tables`` (all tables by default) whose operation is
    one of ``filter.operations`` and whose row (``after``; a delete's ``before``) meets
    ``filter.condition``; a dropped delete's tombstone goes with it."""

    def __init__(self, config: ShapingConfig) -> None:
        self.operations = frozenset(config.filter_operations or ())
        self.condition = (
            parse_condition(config.filter_condition) if config.filter_condition else None
        )
        self.tables = [compile_regex(t) for t in config.filter_tables or []]
        self._applies: dict[tuple[str, str], bool] = {}
        self.dropped = 0

    def apply(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        dropped = 0
        for item in items:
            event = item.event if type(item) is Message else None
            if type(event) is ChangeEvent and not self._keeps(event):
                dropped += item.value is not None  # type: ignore[union-attr]
                continue
            out.append(item)
        self.dropped = dropped
        return out

    def _keeps(self, event: ChangeEvent) -> bool:
        table = (event.namespace, event.table)
        applies = self._applies.get(table)
        row = event.after if event.after is not None else event.before
        if applies is None:
            name = f"{table[0]}.{table[1]}"
            applies = not self.tables or any(p.fullmatch(name) for p in self.tables)
            if applies and self.condition is not None and row is not None:
                missing = sorted(self.condition.columns() - set(row))
                if missing:
                    raise ConfigError(
                        f"shaping.filter.condition: table {name} has no column {missing[0]!r} "
                        f"(its columns: {', '.join(row)}); name its columns, or set "
                        "shaping.filter.tables to the tables that have them"
                    )
            self._applies[table] = applies
        if not applies:
            return True
        if self.operations and event.op not in self.operations:
            return False
        return self.condition is None or (row is not None and self.condition.holds(row))


def java_replacement(replacement: str) -> str:
    """A Java ``Matcher.replaceFirst`` replacement (``$1``, ``${name}``, ``\\$``) as
    Python's ``re`` writes it."""
    out = []
    i = 0
    while i < len(replacement):
        c = replacement[i]
        if c == "\\" and i + 1 < len(replacement):
            out.append(replacement[i + 1].replace("\\", "\\\\"))
            i += 2
            continue
        if c == "$":
            named = re.match(r"\$\{(\w+)\}", replacement[i:])
            number = re.match(r"\$(\d+)", replacement[i:])
            if named or number:
                found: Any = named or number
                out.append(f"\\g<{found[1]}>")
                i += len(found[0])
                continue
        out.append("\\\\" if c == "\\" else c)
        i += 1
    return "".join(out)


class RegexRouter:
    """A topic the whole ``regex`` matches becomes ``replacement`` (its groups as ``$1``);
    other topics stay. Each topic is worked out once."""

    def __init__(self, regex: str, replacement: str) -> None:
        self.regex = re.compile(regex)
        self.replacement = java_replacement(replacement)
        self._topics: dict[str, str] = {}

    def apply(self, items: list[Item]) -> list[Item]:
        topics = self._topics
        for item in items:
            if type(item) is Message:
                topic = topics.get(item.topic)
                if topic is None:
                    match = self.regex.fullmatch(item.topic)
                    topic = match.expand(self.replacement) if match else item.topic
                    topics[item.topic] = topic
                item.topic = topic
        return items
