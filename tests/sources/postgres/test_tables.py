"""Which tables a PostgreSQL daemon captures (patterns, literal names, an entry that
selects nothing) and the topics of names Kafka cannot carry as they are."""

from __future__ import annotations

import json

import pytest
from support import consume, daemon, run_cli, write_config

pytestmark = pytest.mark.integration


def _warnings(log_text: str) -> list[str]:
    events = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    # cdcd's own: a library's lines (aiokafka's, e.g. NotLeaderForPartition on a new
    # topic) name their "logger"
    return [e["event"] for e in events if e.get("level") == "warning" and "logger" not in e]


def test_patterns_and_literal_names_select_the_tables_and_odd_names_get_valid_topics(
    pg_case, tmp_path
):
    s, name = pg_case.schema, pg_case.name
    tables = ["orders_a", "Orders_B", "other", "with.dot", "with space", 'quo"te', "ünï"]
    pg_case.execute(
        *(f'CREATE TABLE {s}."{t.replace(chr(34), chr(34) * 2)}" (id int PRIMARY KEY)' for t in tables)
    )
    config = pg_case.config()
    config["source"]["tables"] = [
        f"{s}\\.orders_.*",  # a pattern, case-insensitive: orders_a and Orders_B
        {"schema": s, "table": "with.dot"},
        {"schema": s, "table": "with space"},
        {"schema": s, "table": 'quo"te'},
        f"{s}.ünï",
    ]
    path = write_config(tmp_path / "check.toml", config)
    check = run_cli("check", "--config", str(path))
    assert f"  {s}.Orders_B -> {name}.{s}.Orders_B\n" in check.stdout, check.stdout
    assert f'  {s}.quo"te -> {name}.{s}.quo_te  (renamed: Kafka allows only' in check.stdout
    assert f"  {s}.ünï -> {name}.{s}._n_  (renamed:" in check.stdout
    assert f"{s}.other" not in check.stdout
    topics = {
        "orders_a": f"{name}.{s}.orders_a",
        "Orders_B": f"{name}.{s}.Orders_B",
        "with.dot": f"{name}.{s}.with.dot",
        "with space": f"{name}.{s}.with_space",
        'quo"te': f"{name}.{s}.quo_te",
        "ünï": f"{name}.{s}._n_",
    }
    with daemon(tmp_path, config) as d:
        pg_case.execute(
            *(
                f'INSERT INTO {s}."{t.replace(chr(34), chr(34) * 2)}" VALUES ({i})'
                for i, t in enumerate(tables)
            )
        )
        messages = consume(pg_case.bootstrap, sorted(set(topics.values())), expect=6)
        assert d.terminate() == 0
        warnings = _warnings(d.log_text())
    published = pg_case.conn.execute(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1",
        (f"cdcd_{name}",),
    ).fetchall()
    assert sorted(t for (t,) in published) == sorted(topics)  # FOR TABLE: not "other"
    arrived = {m.value["source"]["table"]: m.topic for m in messages}
    assert arrived == topics
    assert f'table {s}.quo"te is written to topic {name}.{s}.quo_te' in warnings
    assert f"table {s}.ünï is written to topic {name}.{s}._n_" in warnings
    assert f"table {s}.with space is written to topic {name}.{s}.with_space" in warnings
    assert not any("orders_a" in w or "with.dot" in w for w in warnings)


def test_an_entry_that_selects_no_table_stops_the_start_and_fails_the_check(pg_case, tmp_path):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.orders (id int PRIMARY KEY)")
    config = pg_case.config(["orders"])
    config["source"]["tables"].append(f"{s}\\.nope_.*")
    config["log"]["level"] = "error"  # the one line of the failure alone
    path = write_config(tmp_path / "c.toml", config)
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cdcd: error: "), result.stderr
    assert f"source.tables: '{s}\\\\.nope_.*' matches no table in database" in lines[0]
    check = run_cli("check", "--config", str(path))
    assert check.returncode == 1
    assert f"ERROR: source.tables: '{s}\\\\.nope_.*' matches no table" in check.stdout
    # Nothing was created for a daemon that did not start.
    assert not pg_case.conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (f"cdcd_{pg_case.name}",)
    ).fetchone()
