"""The differential harness: the same changes read by Debezium's embedded engine and by
cdcd, compared event by event (tests/compat/, docs/compatibility.md).

``make test`` runs the representative cases, one Debezium run per source; ``make compat``
(``CDCD_COMPAT=full``) runs them all and writes the report of each source (the
differences and the table of types) to ``CDCD_COMPAT_OUT`` (default: the test's tmp dir).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from compat import mysql, pg
from compat.capture import Captured
from compat.cases import MYSQL_CASES, PG_CASES, START, Case, runs, selected
from compat.compare import Diff, column_schema, compare, inserted_values, known_reason, render
from compat.known import KNOWN

pytestmark = pytest.mark.integration

Capture = Callable[[list[Case], Path], Captured]


def check_source(source: str, cases: list[Case], capture: Capture, tmp_path: Path) -> str:
    """Capture every run of ``cases``, compare, write the report; what fails, if anything."""
    diffs: list[Diff] = []
    rows: list[str] = []
    errors: list[str] = []
    for index, run in enumerate(runs(cases)):
        workdir = tmp_path / f"run{index}"
        workdir.mkdir()
        captured = capture(run, workdir)
        own = run if index == 0 else [case for case in run if case is not START]
        tables = {case.table for case in own}
        diffs += [d for d in compare(captured.debezium, captured.cdcd) if d.table in tables]
        rows += [type_row(case, captured, diffs, KNOWN[source]) for case in own]
        if captured.cdcd_error:
            errors.append(f"{', '.join(c.name for c in own)}: {captured.cdcd_error}")
    known = KNOWN[source]
    unknown = [d for d in diffs if known_reason(d, known) is None]
    seen = {d.case for d in diffs} | {f"field:{d.field}" for d in diffs}
    ran = {c.name for c in cases} | {k for k in known if k.startswith("field:")}
    fixed = sorted(k for k in known if k in ran and k not in seen)
    out = Path(os.environ.get("CDCD_COMPAT_OUT") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{source}-diff.txt").write_text(render(diffs, known) + "\n" + "\n".join(errors) + "\n")
    header = "| type | Debezium's schema | Debezium | cdcd | |\n|---|---|---|---|---|\n"
    (out / f"{source}-types.md").write_text(header + "\n".join(rows) + "\n")
    problems = []
    if unknown:
        problems.append(f"differences from Debezium not in known.py:\n{render(unknown)}")
        problems += [f"cdcd stopped: {line}" for line in errors]
    if fixed:
        problems.append(f"listed in known.py but the same as Debezium now: {', '.join(fixed)}")
    return "\n".join(problems)


def type_row(case: Case, captured: Captured, diffs: list[Diff], known: dict[str, str]) -> str:
    """A row of the doc's table: the type, Debezium's schema and values, cdcd's, verdict."""
    dbz = inserted_values(captured.debezium, case.table)
    ours = inserted_values(captured.cdcd, case.table)
    first = next((r for r in captured.debezium if r["topic"].endswith(f".{case.table}")), {})
    # The values' verdict: what differs in every table (a source field) is listed apart.
    own = [d for d in diffs if d.case == case.name and not d.field.startswith("source.")]
    reasons = sorted({known_reason(d, known) or "**differs**" for d in own})
    verdict = "; ".join(reasons) if reasons else "same"
    cells = [
        case.type,
        column_schema(first),
        _cell(dbz),
        "same" if dbz == ours else _cell(ours),
        verdict,
    ]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _cell(values: list[object]) -> str:
    text = ", ".join(json.dumps(v, ensure_ascii=False) for v in values)
    return f"`{text}`" if len(text) < 160 else f"`{text[:160]}…`"


def test_postgres_against_debezium(pg_dsn, tmp_path):
    def capture(cases: list[Case], workdir: Path) -> Captured:
        return pg.capture(pg_dsn, cases, workdir)

    problems = check_source("postgres", selected(PG_CASES), capture, tmp_path)
    assert not problems, problems


@pytest.mark.parametrize("flavor", ["mariadb", "mysql"])
def test_mysql_against_debezium(flavor, request, tmp_path):
    url = request.getfixturevalue("mysql_url" if flavor == "mariadb" else "mysql8_url")
    if url is None:
        pytest.skip("no MySQL 8 server (CDCD_TEST_MYSQL8_URL)")

    def capture(cases: list[Case], workdir: Path) -> Captured:
        return mysql.capture(url, flavor, cases, workdir)

    problems = check_source(flavor, selected(MYSQL_CASES, flavor), capture, tmp_path)
    assert not problems, problems
