"""The takeover phase's arithmetic (benchmarks/takeover.py): which takeover a repeat or a
lost row is put to, the figures per kind, what counts as an error, the sessions each
mode runs, and the report's rows."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "benchmarks")]

import report  # noqa: E402
import run  # noqa: E402
import takeover  # noqa: E402
from pair import Seen  # noqa: E402

MS = 1_000_000  # ns


def _takeover(kind: str, at_s: float, acquired_s: float, taken_s: float) -> dict:
    return {"kind": kind, "signalled_at": at_s, "acquired_s": acquired_s, "takeover_s": taken_s}


def test_repeats_and_lost_rows_are_put_to_their_takeover():
    # Rows 1..6 committed at 1, 2, ... 6 s; takeovers acquired at 2.5 s (sigkill) and 4.5 s
    # (sigterm). Row 2 is repeated after the first, row 4 after the second; row 3 is lost
    # (committed before the second takeover), row 6 too (after the last one).
    commits = [[row, 1, row * 1000 * MS, row * 1000 * MS + MS] for row in range(1, 7)]
    takeovers = [_takeover("sigkill", 2.0, 0.5, 4.0), _takeover("sigterm", 4.3, 0.2, 0.3)]
    appended = {1: 1100, 2: 2100, 4: 4100, 5: 5100}
    records = [Seen(row, i, ts, ts / 1000) for i, (row, ts) in enumerate(appended.items())]
    records += [Seen(2, 10, 2600, 2.6), Seen(4, 11, 4600, 4.6), Seen(4, 12, 4700, 4.7)]
    out = takeover.counts(records, commits, takeovers)
    assert (out["changes"], out["read"], out["duplicates"], out["missing"]) == (6, 4, 3, 2)
    assert out["by_takeover"] == {
        "-1": {"missing": 1},
        "0": {"duplicates": 1},
        "1": {"duplicates": 2, "missing": 1},
    }
    kinds = takeover.by_kind({"takeovers": takeovers, **out})
    assert kinds["sigkill"]["duplicates"] == 1 and kinds["sigkill"]["missing"] == 0
    assert kinds["sigterm"]["duplicates"] == 2 and kinds["sigterm"]["missing"] == 1


def test_a_repeat_before_any_takeover_is_put_to_none():
    commits = [[1, 1, 1000 * MS, 1001 * MS]]
    records = [Seen(1, 0, 1100, 1.1), Seen(1, 1, 1200, 1.2)]
    out = takeover.counts(records, commits, [_takeover("sigkill", 5.0, 1.0, 1.5)])
    assert out["by_takeover"] == {"-1": {"duplicates": 1}}


def test_median_p90_and_max_per_kind():
    times = [4.1, 4.9, 4.3, 5.6, 4.5, 4.2, 4.4, 4.8, 4.6, 4.7]
    takeovers = [_takeover("sigkill", float(i), 1.0, t) for i, t in enumerate(times)]
    takeovers.append(_takeover("sigterm", 20.0, 0.0, 0.25))
    kinds = takeover.by_kind({"takeovers": takeovers})
    assert kinds["sigkill"]["takeovers"] == 10
    assert kinds["sigkill"]["median_s"] == 4.55
    assert kinds["sigkill"]["p90_s"] == 4.9 and kinds["sigkill"]["max_s"] == 5.6
    assert kinds["sigterm"] == {
        "times_s": [0.25],
        "duplicates": 0,
        "missing": 0,
        "takeovers": 1,
        "median_s": 0.25,
        "p90_s": 0.25,
        "max_s": 0.25,
    }


def _session(delivery: str, duplicates: int, missing: int) -> dict:
    return {
        "delivery": delivery,
        "changes": 100,
        "duplicates": duplicates,
        "missing": missing,
        "unexpected": 0,
    }


def test_exactly_once_errs_on_a_duplicate_at_least_once_only_on_a_lost_row():
    for delivery, dup, miss, error in [
        ("exactly-once", 0, 0, None),
        ("exactly-once", 1, 0, "exactly-once: 1 duplicates of 100 changes"),
        ("exactly-once", 0, 2, "exactly-once: 2 missing of 100 changes"),
        ("at-least-once", 7, 0, None),
        ("at-least-once", 7, 1, "at-least-once: 1 missing of 100 changes"),
    ]:
        result = _session(delivery, dup, miss)
        takeover._verdict(result)
        assert (result.get("error") or "").startswith(error or ""), (delivery, dup, miss)
        assert ("error" in result) == (error is not None), (delivery, dup, miss)


def test_sessions_by_mode_and_options(monkeypatch):
    monkeypatch.setenv("CDCD_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("CDCD_TEST_PG_DSN", "postgresql://x@127.0.0.1:1/x")
    full = run.parse_options([])
    assert (full.takeovers, full.handovers, full.lease_ms, full.heartbeat_ms) == (10, 5, 5000, 1000)
    assert takeover.plan(full) == {
        "exactly-once": [("sigkill", 10), ("sigterm", 5)],
        "at-least-once": [("sigkill", 10)],
    }
    quick = run.parse_options(["--quick"])
    assert takeover.plan(quick) == {
        "exactly-once": [("sigkill", 2), ("sigterm", 1)],
        "at-least-once": [("sigkill", 1)],
    }
    only_terms = run.parse_options(["--takeovers", "0", "--handovers", "3", "--lease-ms", "3000"])
    assert only_terms.lease_ms == 3000
    assert takeover.plan(only_terms) == {"exactly-once": [("sigterm", 3)]}
    assert takeover.plan(run.parse_options(["--takeovers", "0", "--handovers", "0"])) == {}


def test_report_rows_per_kind_and_the_debezium_note():
    kinds = takeover.by_kind(
        {
            "takeovers": [_takeover("sigkill", 1.0, 4.0, 4.75), _takeover("sigterm", 9.0, 0, 0.2)],
            "by_takeover": {"0": {"duplicates": 3}},
        }
    )
    session = {"delivery": "at-least-once", "changes": 12345, "kinds": kinds}
    phase = {
        "lease_ms": 5000,
        "heartbeat_ms": 1000,
        "rate": 1000.0,
        "debezium": takeover.DEBEZIUM_NOTE,
        "sessions": {"at-least-once": session},
    }
    rows = report._takeover_rows({"sources": {"postgres": {"takeover": phase, "errors": {}}}})
    text = "\n".join(rows)
    assert "lease_ms 5000, heartbeat_ms 1000" in text
    kill = next(r for r in rows if "SIGKILL" in r).split()
    assert kill[:2] == ["postgres", "at-least-once"]
    assert kill[-6:] == ["4.75", "4.75", "4.75", "12,345", "3", "0"]
    assert "Debezium has no comparable standby" in text
