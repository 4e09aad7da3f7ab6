"""Which tables a MySQL/MariaDB daemon captures (patterns, literal names, an entry that
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


def test_patterns_select_the_tables_and_odd_names_get_valid_topics(my_case, tmp_path):
    db, name = my_case.database, my_case.name
    odd_db = f"{name}-db"  # a database `my-db` with a table `T 1`
    for table in ("orders_a", "Orders_B", "other"):
        my_case.ddl(f"CREATE TABLE {db}.{table} (id INT PRIMARY KEY)")
    my_case.ddl(f"CREATE DATABASE `{odd_db}`")
    try:
        my_case.ddl(f"CREATE TABLE `{odd_db}`.`T 1` (id INT PRIMARY KEY)")
        config = my_case.config([])
        config["source"]["tables"] = [
            f"{db}\\.orders_.*",  # a pattern, case-insensitive: orders_a and Orders_B
            {"database": odd_db, "table": "T 1"},
        ]
        path = write_config(tmp_path / "check.toml", config)
        check = run_cli("check", "--config", str(path))
        assert f"  {odd_db}.T 1 -> {name}.{odd_db}.T_1  (renamed: Kafka allows only" in check.stdout
        assert f"  {db}.orders_a -> {name}.{db}.orders_a\n" in check.stdout, check.stdout
        assert f"{db}.other" not in check.stdout
        topics = {
            "orders_a": f"{name}.{db}.orders_a",
            "Orders_B": f"{name}.{db}.Orders_B",
            "T 1": f"{name}.{odd_db}.T_1",
        }
        with daemon(tmp_path, config) as d:
            my_case.execute(
                f"INSERT INTO {db}.orders_a VALUES (1)",
                f"INSERT INTO {db}.Orders_B VALUES (2)",
                f"INSERT INTO {db}.other VALUES (3)",
                f"INSERT INTO `{odd_db}`.`T 1` VALUES (4)",
            )
            my_case.execute(f"INSERT INTO {db}.orders_a VALUES (5)")  # after "other"
            messages = consume(my_case.bootstrap, sorted(topics.values()), expect=4)
            assert d.terminate() == 0
            warnings = _warnings(d.log_text())
    finally:
        my_case.ddl(f"DROP DATABASE IF EXISTS `{odd_db}`")
    arrived = [(m.value["source"]["table"], m.topic, m.key["id"]) for m in messages]
    assert sorted(arrived) == [
        ("Orders_B", topics["Orders_B"], 2),
        ("T 1", topics["T 1"], 4),
        ("orders_a", topics["orders_a"], 1),
        ("orders_a", topics["orders_a"], 5),
    ]
    assert f"table {odd_db}.T 1 is written to topic {name}.{odd_db}.T_1" in warnings
    assert not any("orders_a" in w for w in warnings)


def test_an_entry_that_selects_no_table_stops_the_start_and_fails_the_check(my_case, tmp_path):
    db = my_case.database
    my_case.ddl(f"CREATE TABLE {db}.orders (id INT PRIMARY KEY)")
    config = my_case.config(["orders", "nope"])
    config["log"]["level"] = "error"  # the one line of the failure alone
    path = write_config(tmp_path / "c.toml", config)
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cdcd: error: "), result.stderr
    assert f"source.tables: '{db}.nope' matches no table on the server" in lines[0]
    check = run_cli("check", "--config", str(path))
    assert check.returncode == 1
    assert f"ERROR: source.tables: '{db}.nope' matches no table" in check.stdout
