"""Debezium's records against cdcd's, event by event, value by value.

Debezium's are Kafka Connect JSON with schemas (``{"schema", "payload"}``), cdcd's JSON
without schema; the payloads are compared: key, ``op``, each column of ``before`` and
``after`` and each ``source`` field both have (``version`` aside: each its own). The
records of a table are paired in the order each reader wrote them. Pure functions of the
records, so the comparison itself is tested without servers (test_compare.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

# Fields the two never share: the writer's own version and the envelope's processing time.
IGNORED_SOURCE = frozenset({"version"})
MISSING = "(none)"


@dataclass(frozen=True)
class Diff:
    """One value that differs: in table ``table``, the event of row ``row`` (its key)."""

    table: str
    row: str
    op: str
    field: str  # "after.v", "key.id", "op", "source.lsn", "record" (one has none)
    debezium: Any
    cdcd: Any

    @property
    def case(self) -> str:
        return self.table.removeprefix("c_")


def payload(part: Any) -> Any:
    """The payload of a JsonConverter value with schema (None stays None)."""
    return part["payload"] if isinstance(part, dict) and "schema" in part else part


def _by_table(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        tables[record["topic"].rsplit(".", 1)[-1]].append(record)
    return tables


def _row(key: Any) -> str:
    if isinstance(key, dict):
        return ",".join(f"{k}={v}" for k, v in key.items())
    return MISSING if key is None else str(key)


def _fields(
    prefix: str, dbz: Any, cdcd: Any, skip: frozenset[str] = frozenset()
) -> list[tuple[str, Any, Any]]:
    """The fields of two dicts (either may be None) that differ."""
    if not isinstance(dbz, dict) or not isinstance(cdcd, dict):
        return [] if dbz == cdcd else [(prefix, dbz, cdcd)]
    out = []
    for name in list(dbz) + [n for n in cdcd if n not in dbz]:
        if name in skip:
            continue
        left, right = dbz.get(name, MISSING), cdcd.get(name, MISSING)
        if not _same(left, right):
            out.append((f"{prefix}.{name}", left, right))
    return out


def _same(left: Any, right: Any) -> bool:
    # 1 == 1.0 == True in Python; a JSON consumer tells them apart.
    return type(left) is type(right) and left == right


def compare_event(
    table: str, dbz: dict[str, Any] | None, cdcd: dict[str, Any] | None
) -> list[Diff]:
    """The differences between two records of ``table`` paired with each other."""
    if dbz is None or cdcd is None:
        present = dbz or cdcd
        assert present is not None
        row = _row(payload(present["key"]))
        value = payload(present.get("value"))
        op = value.get("op", "tombstone") if isinstance(value, dict) else "tombstone"
        left = MISSING if dbz is None else "record"
        right = MISSING if cdcd is None else "record"
        return [Diff(table, row, op, "record", left, right)]
    dbz_key, cdcd_key = payload(dbz["key"]), cdcd["key"]
    dbz_value, cdcd_value = payload(dbz["value"]), cdcd["value"]
    row = _row(dbz_key)
    op = dbz_value.get("op", "?") if isinstance(dbz_value, dict) else "tombstone"
    found = _fields("key", dbz_key, cdcd_key)
    if not isinstance(dbz_value, dict) or not isinstance(cdcd_value, dict):
        found += [] if dbz_value == cdcd_value else [("value", dbz_value, cdcd_value)]
    else:
        if dbz_value.get("op") != cdcd_value.get("op"):
            found.append(("op", dbz_value.get("op"), cdcd_value.get("op")))
        for part in ("before", "after"):
            found += _fields(part, dbz_value.get(part), cdcd_value.get(part))
        dbz_source, cdcd_source = dbz_value.get("source") or {}, cdcd_value.get("source") or {}
        shared = {k: v for k, v in dbz_source.items() if k in cdcd_source}
        found += _fields("source", shared, {k: cdcd_source[k] for k in shared}, IGNORED_SOURCE)
    return [Diff(table, row, op, field, left, right) for field, left, right in found]


def compare(debezium: list[dict[str, Any]], cdcd: list[dict[str, Any]]) -> list[Diff]:
    """Every difference, table by table in Debezium's order (then tables only cdcd has)."""
    dbz_tables, cdcd_tables = _by_table(debezium), _by_table(cdcd)
    diffs: list[Diff] = []
    for table in list(dbz_tables) + [t for t in cdcd_tables if t not in dbz_tables]:
        left, right = dbz_tables.get(table, []), cdcd_tables.get(table, [])
        for index in range(max(len(left), len(right))):
            diffs += compare_event(
                table,
                left[index] if index < len(left) else None,
                right[index] if index < len(right) else None,
            )
    return diffs


def _show(value: Any) -> str:
    return value if value == MISSING else json.dumps(value, ensure_ascii=False)


def known_reason(diff: Diff, known: dict[str, str]) -> str | None:
    """Why ``diff`` is known (``known``: by case name, or ``field:<field>`` for a field
    that differs in every table), or None."""
    return known.get(diff.case) or known.get(f"field:{diff.field}")


def render(diffs: list[Diff], known: dict[str, str] | None = None) -> str:
    """The differences as a readable table; a known one marked with its reason."""
    known = known or {}
    lines = []
    for d in diffs:
        reason = known_reason(d, known)
        note = f"  (known: {reason})" if reason else ""
        lines.append(
            f"{d.table} row {d.row} op {d.op} {d.field}: "
            f"Debezium {_show(d.debezium)} | cdcd {_show(d.cdcd)}{note}"
        )
    return "\n".join(lines)


def column_schema(record: dict[str, Any], column: str = "v") -> str:
    """Debezium's schema of ``column`` in a record's ``after`` (or ``before``): its type,
    logical name and parameters, as the doc's table shows them."""
    value = record.get("value")
    if not isinstance(value, dict) or "schema" not in value:
        return MISSING
    for part in value["schema"].get("fields", []):
        if part.get("field") not in ("after", "before"):
            continue
        for fld in part.get("fields", []):
            if fld.get("field") == column:
                text = fld["type"]
                if fld.get("name"):
                    text += f" {fld['name']}"
                params = {
                    k: v
                    for k, v in (fld.get("parameters") or {}).items()
                    if not k.startswith("__debezium")
                }
                if params:
                    text += " (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"
                if fld.get("type") == "array" and isinstance(fld.get("items"), dict):
                    items = fld["items"]
                    text += f" of {items['type']}" + (
                        f" {items['name']}" if items.get("name") else ""
                    )
                return text
    return MISSING


def inserted_values(records: list[dict[str, Any]], table: str, column: str = "v") -> list[Any]:
    """The values of ``column`` each insert into ``table`` wrote, in order."""
    out = []
    for record in records:
        if record["topic"].rsplit(".", 1)[-1] != table:
            continue
        value = payload(record.get("value"))
        if isinstance(value, dict) and value.get("op") == "c":
            out.append((value.get("after") or {}).get(column))
    return out
