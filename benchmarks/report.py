"""Phase 4: the figures. Each source's headline (the keys the issue names, the ratios,
the targets), the table printed at the end, and the JSON and table written to disk."""

from __future__ import annotations

import json
from typing import Any

from harness import (
    RESULTS,
    TARGET_MIN_N,
    TARGET_P99_MS,
    TARGET_RSS_MB,
    TARGET_SNAPSHOT_ROWS,
    TARGET_SNAPSHOT_VS_DEBEZIUM,
    TARGETS,
    Options,
)

# -- the headline ----------------------------------------------------------------------------


def headline(source: str, out: dict[str, Any], opts: Options) -> None:
    """The figures the issue names, at the top of each source's block."""
    readers = out["readers"]

    def rate(reader: str) -> float | None:
        r = readers.get(reader) or {}
        return None if "error" in r else r.get("events_per_s")

    cdcd = rate("cdcd")
    transforms = rate("cdcd_transforms")
    dbz = rate("debezium")
    c = rate("c_limit")
    lat = out.get("latency") or {}
    # Exactly-once: until consumers can read the row (its COMMIT marker appended).
    seen = lat.get("visible") or lat
    big = out.get("big_transaction") or {}
    rss = [
        v
        for v in (
            (readers.get("cdcd") or {}).get("peak_rss_mb"),
            lat.get("peak_rss_mb"),
            big.get("peak_rss_mb"),
        )
        if v
    ]
    out.update(
        cdcd_events_per_s=cdcd,
        cdcd_transforms_events_per_s=transforms,
        debezium_events_per_s=dbz,
        c_limit_events_per_s=c,
        p50_latency_ms=seen.get("p50_ms"),
        p99_latency_ms=seen.get("p99_ms"),
        big_transaction_rows=(big.get("workload") or {}).get("rows"),
        big_transaction_peak_rss_mb=big.get("peak_rss_mb"),
        big_transaction_events_per_s=big.get("events_per_s"),
        max_latency_ms=seen.get("max_ms"),
        peak_rss_mb=max(rss) if rss else None,
        cdcd_cpu_s=(readers.get("cdcd") or {}).get("cpu_s"),
        debezium_peak_rss_mb=(readers.get("debezium") or {}).get("peak_rss_mb"),
        debezium_cpu_s=(readers.get("debezium") or {}).get("cpu_s"),
    )
    out["ratios"] = {
        "cdcd_vs_debezium": round(cdcd / dbz, 3) if cdcd and dbz else None,
        "cdcd_vs_c_limit": round(cdcd / c, 3) if cdcd and c else None,
        "cdcd_transforms_vs_cdcd": round(transforms / cdcd, 3) if transforms and cdcd else None,
    }
    out["targets"] = _targets(source, out, comparable=opts.n >= TARGET_MIN_N)
    if out.get("snapshot"):
        _snapshot_headline(out)


def _verdict(ok: bool | None, comparable: bool, why: str) -> str:
    if ok is None:
        return "n/a"
    return ("PASS" if ok else "FAIL") + ("" if comparable else f" ({why}: not comparable)")


def _targets(source: str, out: dict[str, Any], comparable: bool) -> dict[str, str]:
    """PASS/FAIL of each target of the issue (flagged below the comparable N)."""
    target = TARGETS[source]["cdcd_vs_debezium"]

    def verdict(ok: bool | None) -> str:
        return _verdict(ok, comparable, "N < 500k")

    ratio = out["ratios"]["cdcd_vs_debezium"]
    p99 = out["p99_latency_ms"]
    peak = out["peak_rss_mb"]
    return {
        f"cdcd_vs_debezium >= {target}": verdict(None if ratio is None else ratio >= target),
        f"p99_latency_ms <= {TARGET_P99_MS:.0f}": verdict(
            None if p99 is None else p99 <= TARGET_P99_MS
        ),
        f"peak_rss_mb <= {TARGET_RSS_MB:.0f}": verdict(
            None if peak is None else peak <= TARGET_RSS_MB
        ),
    }


def _snapshot_headline(out: dict[str, Any]) -> None:
    """The snapshot phase's keys, its ratio and its targets (flagged below 1M rows)."""
    snap = out["snapshot"]
    readers = snap.get("readers") or {}

    def figure(reader: str, key: str) -> Any:
        return (readers.get(reader) or {}).get(key)

    cdcd = figure("cdcd", "rows_per_s")
    dbz = figure("debezium", "rows_per_s")
    rss = figure("cdcd", "peak_rss_mb")
    out.update(
        snapshot_rows=snap.get("rows"),
        cdcd_snapshot_rows_per_s=cdcd,
        debezium_snapshot_rows_per_s=dbz,
        cdcd_snapshot_peak_rss_mb=rss,
        debezium_snapshot_peak_rss_mb=figure("debezium", "peak_rss_mb"),
        cdcd_snapshot_cpu_s=figure("cdcd", "cpu_s"),
        debezium_snapshot_cpu_s=figure("debezium", "cpu_s"),
    )
    ratio = round(cdcd / dbz, 3) if cdcd and dbz else None
    out["ratios"]["snapshot_cdcd_vs_debezium"] = ratio
    comparable = (snap.get("rows") or 0) >= TARGET_SNAPSHOT_ROWS
    why = f"snapshot < {TARGET_SNAPSHOT_ROWS:,} rows"
    target = TARGET_SNAPSHOT_VS_DEBEZIUM
    out["targets"][f"snapshot cdcd_vs_debezium >= {target:g}"] = _verdict(
        None if ratio is None else ratio >= target, comparable, why
    )
    out["targets"][f"snapshot cdcd peak_rss_mb <= {TARGET_RSS_MB:.0f}"] = _verdict(
        None if rss is None or cdcd is None else rss <= TARGET_RSS_MB, comparable, why
    )


# -- the table ----------------------------------------------------------------------------

READER_LABELS = {
    "c_limit": "C limit",
    "python_mysql_replication": "python-mysql-replication (no Kafka)",
    "cdcd": "cdcd -> Kafka",
    "debezium": "Debezium embedded -> Kafka",
    "cdcd_transforms": "cdcd + transforms -> Kafka",
    "cdcd_profiled": "cdcd -> Kafka under py-spy",
}


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def report(result: dict[str, Any]) -> str:
    """The table printed at the end: a row per reader, then latency, ratios, targets."""
    w = result["workload"]
    m = result["machine"]
    lines = [
        "",
        f"cdcd benchmark {result['run_id']} ({result['mode']}): N = {w['n']:,} inserts -> "
        f"{w['events']:,} row events per source; {m['cpus']} CPUs, load average "
        f"{m['loadavg'][0]} at start, {result['loadavg_end'][0]} at end",
        "",
        f"{'source':9} {'reader':34} {'ev/s':>10} {'1st-last s':>10} {'wall s':>8} {'RSS MB':>8} "
        f"{'CPU s':>7} {'busy':>5}  note",
    ]
    for source, out in result["sources"].items():
        lines.extend(_reader_rows(source, out))
    lines.extend(_snapshot_rows(result))
    lines.extend(_takeover_rows(result))
    lines.append("")
    lines.append("latency at a steady rate (from the commit), ratios, targets:")
    delivery = result["settings"].get("cdcd_latency_delivery", "?")
    for source, out in result["sources"].items():
        lines.extend(_summary_lines(source, out, delivery))
    lines.append("")
    lines.append(
        "ev/s: row events / (first to last row event): Kafka readers by the broker's "
        "LogAppendTime stamps, the others by the wall clock; busy: cores the whole "
        "machine used meanwhile."
    )
    return "\n".join(lines) + "\n"


def _reader_rows(source: str, out: dict[str, Any]) -> list[str]:
    lines = []
    for key, label in READER_LABELS.items():
        r = out.get("readers", {}).get(key)
        if r is None:
            continue
        if key == "c_limit":
            label = (
                "C limit ("
                + ("pg_recvlogical" if source == "postgres" else "mariadb-binlog -v")
                + ")"
            )
        note = _reader_note(key, r)
        span = r.get("first_to_last_s")
        lines.append(
            f"{source:9} {label[:34]:34} {_fmt(r.get('events_per_s')):>10} {_fmt(span, 2):>10} "
            f"{_fmt(r.get('wall_s'), 2):>8} {_fmt(r.get('peak_rss_mb'), 1):>8} "
            f"{_fmt(r.get('cpu_s'), 1):>7} {_fmt(r.get('machine_busy_cores'), 1):>5}  "
            f"{note[:120]}"
        )
    if out.get("error"):
        lines.append(f"{source:9} (source failed) {out['error'][:200]}")
    return lines


SNAPSHOT_LABELS = {"cdcd": "cdcd -> Kafka", "debezium": "Debezium embedded -> Kafka"}


def _snapshot_rows(result: dict[str, Any]) -> list[str]:
    """The snapshot phase: a row per source and reader (none when no source ran it)."""
    lines: list[str] = []
    for source, out in result["sources"].items():
        snap = out.get("snapshot") or {}
        for key, label in SNAPSHOT_LABELS.items():
            r = (snap.get("readers") or {}).get(key)
            if r is None:
                continue
            note = _reader_note(key, r)
            lines.append(
                f"{source:9} {label[:34]:34} {_fmt(snap.get('rows')):>10} "
                f"{_fmt(r.get('rows_per_s')):>10} {_fmt(r.get('wall_s'), 2):>8} "
                f"{_fmt(r.get('peak_rss_mb'), 1):>8} {_fmt(r.get('cpu_s'), 1):>7} "
                f"{_fmt(r.get('machine_busy_cores'), 1):>5}  {note[:120]}"
            )
        if snap and not snap.get("readers"):
            errors = {k: v for k, v in out["errors"].items() if k.startswith("snapshot")}
            lines.append(f"{source:9} (no snapshot) {errors}"[:200])
    if not lines:
        return []
    return [
        "",
        "initial snapshot of a table (rows/s: rows / (reader started -> its last r record "
        "appended)):",
        f"{'source':9} {'reader':34} {'rows':>10} {'rows/s':>10} {'wall s':>8} {'RSS MB':>8} "
        f"{'CPU s':>7} {'busy':>5}  note",
        *lines,
    ]


KIND_LABELS = {"sigkill": "SIGKILL of the active", "sigterm": "SIGTERM of the active"}


def _takeover_rows(result: dict[str, Any]) -> list[str]:
    """The takeover phase: a row per source, delivery and kind of takeover."""
    lines: list[str] = []
    settings: dict[str, Any] = {}
    for source, out in result["sources"].items():
        phase = out.get("takeover") or {}
        settings = settings or phase
        for delivery, session in (phase.get("sessions") or {}).items():
            note = session.get("error") or ""
            for kind, k in (session.get("kinds") or {}).items():
                lines.append(
                    f"{source:9} {delivery:14} {KIND_LABELS.get(kind, kind):22} "
                    f"{k['takeovers']:>3} {k['median_s']:>8.2f} {k['p90_s']:>6.2f} "
                    f"{k['max_s']:>6.2f} {_fmt(session.get('changes')):>9} "
                    f"{k['duplicates']:>5} {k['missing']:>5}  {note[:100]}"
                )
            if not session.get("kinds"):
                lines.append(f"{source:9} {delivery:14} (no takeover) {note[:150]}")
        errors = {k: v for k, v in out.get("errors", {}).items() if k.startswith("takeover")}
        if phase and not phase.get("sessions"):
            lines.append(f"{source:9} (no takeover) {errors}"[:200])
    if not lines:
        return []
    return [
        "",
        f"takeovers of an active/standby pair ([ha] lease_ms {settings.get('lease_ms')}, "
        f"heartbeat_ms {settings.get('heartbeat_ms')}; steady load "
        f"{_fmt(settings.get('rate'))} rows/s): signal -> the new leader's first record read "
        "by a read_committed consumer, s:",
        f"{'source':9} {'delivery':14} {'kind':22} {'n':>3} {'median':>8} {'p90':>6} "
        f"{'max':>6} {'changes':>9} {'dup':>5} {'miss':>5}  note",
        *lines,
        "changes: rows the load committed in the session; dup, miss: rows the consumer read "
        "twice or never, put to the takeover before the repeat / after the lost row's commit.",
        "Exactly-once: dup and miss must be 0 (else an error of the phase); at-least-once: "
        "dup are the repeats a takeover cost, not an error.",
        f"{settings.get('debezium', '')}.",
    ]


def _reader_note(key: str, r: dict[str, Any]) -> str:
    """A reader row's note: its error or warning, else what it is; then its CPU by
    process, the others' CPU, host steal and each round's rate."""
    note = r.get("error") or r.get("warning") or ""
    if key == "debezium" and "version" in r:
        note = note or f"Debezium {r['version']}"
    if key in ("c_limit", "python_mysql_replication"):
        note = note or "wall clock, no Kafka"
    parts = [note] if note else []
    each = r.get("cpu_s_each") or []
    if key.startswith("cdcd") and len(each) > 1 and not note:
        parts.append("CPU s by process: " + " + ".join(f"{c:.1f}" for c in each))
    others = r.get("others_cpu_s") or []
    if others and not r.get("error"):
        parts.append("others: " + ", ".join(f"{n} {c:.1f} s" for n, c in others))
    if (r.get("host_steal_cores") or 0) >= 0.1:
        parts.append(f"host steal {r['host_steal_cores']:.1f} cores")
    if r.get("rounds"):
        speeds = " / ".join(_fmt(x.get("events_per_s")) for x in r["rounds"])
        parts.append(f"fastest of {speeds}")
    return "; ".join(parts)


def _summary_lines(source: str, out: dict[str, Any], delivery: str) -> list[str]:
    """A source's latency, big transaction, ratios and targets."""
    lat = out.get("latency") or {}
    lines = _latency_lines(source, lat, delivery) if lat else []
    big = out.get("big_transaction") or {}
    if big:
        lines.append(
            f"  {source:9} cdcd, one transaction of {_fmt((big.get('workload') or {}).get('rows'))} "
            f"rows: {_fmt(big.get('events_per_s'))} ev/s, peak RSS {_fmt(big.get('peak_rss_mb'), 1)} MB "
            f"({_fmt(big.get('processes'))} processes)"
            + (f" [{big['error'][:100]}]" if big.get("error") else "")
        )
    fs = lat.get("from_source_ts")
    if fs:
        lines.append(
            f"  {source:9}   (from the server's commit stamp source.ts_us: p50 "
            f"{_fmt(fs.get('p50_ms'), 1)} ms, p99 {_fmt(fs.get('p99_ms'), 1)} ms)"
        )
    dl = out.get("debezium_latency")
    if dl:
        lines.append(
            f"  {source:9} Debezium latency: p50 {_fmt(dl.get('p50_ms'), 1)} ms, "
            f"p99 {_fmt(dl.get('p99_ms'), 1)} ms, max {_fmt(dl.get('max_ms'), 1)} ms"
        )
    ratios = out.get("ratios") or {}
    lines.append(
        f"  {source:9} cdcd/Debezium {_fmt(ratios.get('cdcd_vs_debezium'), 2)}x, "
        f"cdcd/C-limit {_fmt(ratios.get('cdcd_vs_c_limit'), 3)}x, "
        f"cdcd peak RSS {_fmt(out.get('peak_rss_mb'), 1)} MB"
    )
    if ratios.get("cdcd_transforms_vs_cdcd"):
        lines.append(
            f"  {source:9} cdcd with transforms (outbox, flatten, masking) / plain cdcd: "
            f"{_fmt(ratios['cdcd_transforms_vs_cdcd'], 2)}x "
            f"({_fmt(out.get('cdcd_transforms_events_per_s'))} / "
            f"{_fmt(out.get('cdcd_events_per_s'))} ev/s)"
        )
    if out.get("snapshot"):
        lines.append(
            f"  {source:9} initial snapshot of {_fmt(out.get('snapshot_rows'))} rows: "
            f"cdcd/Debezium {_fmt(ratios.get('snapshot_cdcd_vs_debezium'), 2)}x, "
            f"cdcd peak RSS {_fmt(out.get('cdcd_snapshot_peak_rss_mb'), 1)} MB, "
            f"Debezium {_fmt(out.get('debezium_snapshot_peak_rss_mb'), 1)} MB"
        )
    for target, verdict in (out.get("targets") or {}).items():
        lines.append(f"  {source:9}   target {target}: {verdict}")
    return lines


def _latency_lines(source: str, lat: dict[str, Any], delivery: str) -> list[str]:
    lines = [
        f"  {source:9} cdcd ({delivery}) latency at {_fmt(lat.get('rate'))} ev/s "
        f"(achieved {_fmt(lat.get('achieved_rate'))}, {_fmt(lat.get('events'))} events): "
        f"to the record's append: p50 {_fmt(lat.get('p50_ms'), 1)} ms, "
        f"p99 {_fmt(lat.get('p99_ms'), 1)} ms, max {_fmt(lat.get('max_ms'), 1)} ms; "
        f"cdcd CPU {_fmt(lat.get('reader_cpu_percent'), 0)}% "
        + (f"[{lat['error'][:100]}]" if lat.get("error") else "")
    ]
    windows = lat.get("windows") or []
    if len(windows) > 1:
        lines.append(
            f"  {source:9}   window {lat.get('chosen_window')} of {len(windows)} counts "
            "(the least host steal); each window's p99 / host steal: "
            + ", ".join(
                f"{_fmt(w.get('p99_ms'), 1)} ms / {_fmt(w.get('host_steal_cores'), 2)}"
                for w in windows
            )
        )
    seen = lat.get("visible")
    if seen:
        lines.append(
            f"  {source:9}   to read_committed consumers (its transaction's COMMIT "
            f"marker appended): p50 {_fmt(seen['p50_ms'], 1)} ms, p99 "
            f"{_fmt(seen['p99_ms'], 1)} ms, max {_fmt(seen['max_ms'], 1)} ms"
        )
    stages = lat.get("stages")
    if stages:
        lines.append(
            f"  {source:9}   commit -> cdcd has it: p50 "
            f"{_fmt(stages['to_reader_p50_ms'], 1)} ms, p99 "
            f"{_fmt(stages['to_reader_p99_ms'], 1)} ms; cdcd -> Kafka append: p50 "
            f"{_fmt(stages['to_kafka_p50_ms'], 1)} ms, p99 "
            f"{_fmt(stages['to_kafka_p99_ms'], 1)} ms"
        )
    if lat.get("others_cpu_s"):
        lines.append(
            f"  {source:9}   machine busy {_fmt(lat.get('machine_busy_cores'), 2)} cores; "
            "CPU s of the others: " + ", ".join(f"{n} {c:.1f}" for n, c in lat["others_cpu_s"])
        )
    seconds = lat.get("by_second") or {}
    if seconds.get("seconds"):
        lines.append(
            f"  {source:9}   seconds with p99 > {_fmt(seconds['target_ms'])} ms: "
            f"{seconds['seconds_over_target']} of {seconds['seconds']}; host steal "
            f"{_fmt(lat.get('host_steal_cores'), 2)} cores over the window, "
            f"{_fmt(seconds.get('steal_cores_in_slow_seconds'), 2)} in those seconds, "
            f"{_fmt(seconds.get('steal_cores_in_other_seconds'), 2)} in the others"
        )
    return lines


# -- the files ----------------------------------------------------------------------------


def write(result: dict[str, Any], opts: Options) -> str:
    """The JSON to ``--out`` and to ``run-<id>.json``, the table next to ``--out``
    (``.txt``); the table."""
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str)
    opts.out.write_text(text)
    (RESULTS / f"run-{opts.run_id}.json").write_text(text)
    table = report(result)
    opts.out.with_suffix(".txt").write_text(table)
    return table
