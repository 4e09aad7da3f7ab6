"""The differential harness: the same changes read by Debezium's embedded engine and by
cdcd, compared event by event (tests/compat/, docs/compatibility.md).

``make test`` runs the representative cases, one Debezium run per source; ``make compat``
(``CDCD_COMPAT=full``) runs them all and writes the report of each source (the
differences and the table of types) to ``CDCD_COMPAT_OUT`` (default: the test's tmp dir).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from compat import pg
from compat.capture import Captured
from compat.cases import PG_CASES, Case, selected
from compat.compare import column_schema, compare, inserted_values, render
from compat.known import KNOWN

pytestmark = pytest.mark.integration


def _report(source: str, cases: list[Case], captured: Captured, tmp_path: Path) -> str:
    """Check the differences against the known ones; write the report; the failures."""
    diffs = compare(captured.debezium, captured.cdcd)
    known = KNOWN[source]
    differing = {d.case for d in diffs}
    unknown = [d for d in diffs if d.case not in known]
    fixed = sorted(c.name for c in cases if c.name in known and c.name not in differing)
    out = Path(os.environ.get("CDCD_COMPAT_OUT") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{source}-diff.txt").write_text(render(diffs, known) + "\n")
    (out / f"{source}-types.md").write_text(types_table(cases, captured, differing, known))
    problems = []
    if unknown:
        problems.append(f"differences from Debezium not in known.py:\n{render(unknown)}")
    if fixed:
        problems.append(f"listed in known.py but the same as Debezium now: {', '.join(fixed)}")
    return "\n".join(problems)


def types_table(cases: list[Case], captured: Captured, differing: set[str], known: dict[str, str]) -> str:
    """Markdown: each case's type, Debezium's schema and values, cdcd's, and the verdict."""
    first = {}
    for record in captured.debezium:
        first.setdefault(record["topic"].rsplit(".", 1)[-1], record)
    lines = [
        "| type | Debezium's schema | Debezium | cdcd | |",
        "|---|---|---|---|---|",
    ]
    for case in cases:
        dbz = inserted_values(captured.debezium, case.table)
        ours = inserted_values(captured.cdcd, case.table)
        schema = column_schema(first.get(case.table, {}))
        if case.name not in differing:
            verdict = "same"
        else:
            verdict = known.get(case.name, "**differs**")
        cells = [case.type, schema, _cell(dbz), "same" if dbz == ours else _cell(ours), verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(values: list[object]) -> str:
    import json

    text = ", ".join(json.dumps(v, ensure_ascii=False) for v in values)
    return f"`{text}`" if len(text) < 200 else f"`{text[:200]}…`"


def test_postgres_against_debezium(pg_dsn, tmp_path):
    cases = selected(PG_CASES)
    captured = pg.capture(pg_dsn, cases, tmp_path)
    problems = _report("postgres", cases, captured, tmp_path)
    assert not problems, problems
