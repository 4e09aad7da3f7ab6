"""The filter's tiny condition language: no ``eval``, nothing but comparisons.

    amount >= 100 and status == 'paid' or vip == true

Clauses ``<column> <op> <literal>`` (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``; a literal
is a number, a quoted string, ``true``, ``false`` or ``null``), joined by ``and``, then
``or`` (``and`` binds tighter; no parentheses). A comparison of values that cannot be
ordered (a string with a number, anything with null) is false.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_CLAUSE = re.compile(
    r"""\s*(?P<column>[A-Za-z_][\w$]*)\s*(?P<op>==|!=|<=|>=|<|>)\s*
    (?P<literal>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)\s*$""",
    re.VERBOSE,
)
_LITERALS = {"true": True, "false": False, "null": None}


@dataclass(frozen=True, slots=True)
class Clause:
    column: str
    op: str
    literal: Any

    def holds(self, row: dict[str, Any]) -> bool:
        value = row.get(self.column)
        if self.op in ("==", "!="):
            return _OPS[self.op](value, self.literal)
        try:
            return _OPS[self.op](value, self.literal)
        except TypeError:
            return False


@dataclass(frozen=True, slots=True)
class Condition:
    alternatives: tuple[tuple[Clause, ...], ...]  # or of ands

    def columns(self) -> set[str]:
        return {clause.column for group in self.alternatives for clause in group}

    def holds(self, row: dict[str, Any]) -> bool:
        return any(all(c.holds(row) for c in group) for group in self.alternatives)


def _literal(text: str) -> Any:
    if text in _LITERALS:
        return _LITERALS[text]
    if text[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    number = float(text)
    return int(number) if number.is_integer() and not re.search(r"[.eE]", text) else number


def parse_condition(text: str) -> Condition:
    """The condition ``text`` says; a ValueError names the clause it cannot read."""
    groups = []
    # Split outside quotes only.
    parts = re.split(r"""\s+(and|or)\s+(?=(?:[^'"]|'[^']*'|"[^"]*")*$)""", text.strip())
    group: list[Clause] = []
    for index, part in enumerate(parts):
        if index % 2:
            if part == "or":
                groups.append(tuple(group))
                group = []
            continue
        match = _CLAUSE.match(part)
        if match is None:
            raise ValueError(
                f"cannot read {part!r}: write column op literal (op: == != < <= > >=; a literal: "
                "a number, a 'quoted string', true, false or null), joined by and / or"
            )
        group.append(Clause(match["column"], match["op"], _literal(match["literal"])))
    groups.append(tuple(group))
    return Condition(tuple(groups))
