"""Positions a MySQL/MariaDB server cannot stream on from exactly: its binlog reset
(RESET MASTER) or purged while the daemon was stopped, GTIDs it never executed. The
daemon stops with what is gone instead of streaming on past a gap; `cdcd offsets set`
and `source.initial_position` refuse such positions. Throwaway servers (the shared one
must keep its binlogs), real Kafka; rows written are counted against what a
read_committed consumer sees."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from offsets_support import offset_history
from support import consume, daemon, run_cli, unique_name, write_config
from throwaway import Server, mariadb, mysql8

pytestmark = pytest.mark.integration


def _server(flavor: str) -> AbstractContextManager[Server]:
    if flavor == "mariadb":
        return mariadb()
    return mysql8("gtid_mode = ON", "enforce_gtid_consistency = ON")


@pytest.fixture(params=["mariadb", "mysql8"])
def server(request) -> Iterator[Server]:
    with _server(request.param) as server:
        server.sql("CREATE DATABASE shop", "CREATE TABLE shop.ticks (id INT PRIMARY KEY)")
        yield server


def config_for(server: Server, bootstrap: str, **source: Any) -> dict[str, Any]:
    name = unique_name()
    return {
        "name": name,
        "source": {"kind": "mysql", "dsn": server.url, "tables": ["shop.ticks"], **source},
        "sink": {"kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": name},
        "log": {"level": "info", "format": "json"},
    }


def insert(server: Server, first: int, last: int, per_tx: int = 10) -> None:
    for start in range(first, last + 1, per_tx):
        ids = range(start, min(start + per_tx, last + 1))
        server.sql("INSERT INTO shop.ticks VALUES " + ", ".join(f"({i})" for i in ids))


def streamed(bootstrap: str, config: dict[str, Any], expect: int) -> list[int]:
    topic = f"{config['name']}.shop.ticks"
    messages = consume(bootstrap, [topic], expect=expect, timeout=20, settle=1)
    return [m.key["id"] for m in messages if m.value is not None]


def run_until_stopped(tmp_path: Path, config: dict[str, Any]) -> str:
    """``cdcd run`` that must stop by itself with exit code 1; its last line."""
    path = write_config(tmp_path / f"{config['name']}-run.toml", config)
    result = run_cli("run", "--config", str(path), timeout=90)
    assert result.returncode == 1, f"the daemon went on:\n{result.stderr[-2000:]}"
    last = result.stderr.strip().splitlines()[-1]
    print(f"\n{last}")
    return last


def stream_then_stop(tmp_path: Path, config: dict[str, Any], server: Server, rows: int) -> None:
    bootstrap = config["sink"]["bootstrap_servers"]
    with daemon(tmp_path, config) as d:
        insert(server, 1, rows)
        assert len(streamed(bootstrap, config, rows)) == rows
        # A few rotations, so that the stored position names a later binlog file.
        server.sql("FLUSH BINARY LOGS", "FLUSH BINARY LOGS", "FLUSH BINARY LOGS")
        insert(server, rows + 1, rows + 10)
        assert len(streamed(bootstrap, config, rows + 10)) == rows + 10
        assert d.terminate() == 0


@pytest.mark.parametrize("after_reset", [20, 500])
def test_a_reset_binlog_stops_the_daemon(server, kafka_bootstrap, tmp_path, after_reset):
    """RESET MASTER while the daemon is stopped, then fewer (the server's GTIDs no longer
    contain the stored ones) or more transactions than before (the GTIDs look fine, the
    binlog file the position was read in is gone from the very same server)."""
    config = config_for(server, kafka_bootstrap)
    stream_then_stop(tmp_path, config, server, 200)
    server.sql("RESET MASTER")
    server.sql("DELETE FROM shop.ticks")
    insert(server, 1001, 1000 + after_reset, per_tx=1)  # new transactions, never streamed
    last = run_until_stopped(tmp_path, config)
    if after_reset < 210:
        assert "never executed" in last or "is ahead of the binlog" in last
    else:
        assert "its binary log was reset (RESET MASTER) since" in last
    assert "cdcd offsets reset --to latest" in last
    ids = streamed(kafka_bootstrap, config, 210)
    assert sorted(ids) == list(range(1, 211)), "the daemon streamed past the reset"


def purge_all_but_the_newest(server: Server, timeout: float = 30) -> None:
    """MariaDB keeps a binlog that crash recovery may still need (its binlog checkpoint)
    and purges it only once InnoDB has flushed: rotate and ask again until it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        server.sql("FLUSH BINARY LOGS")
        [(newest, *_)] = server.sql("SHOW MASTER STATUS")
        server.sql(f"PURGE BINARY LOGS TO '{newest}'")
        if len(server.sql("SHOW BINARY LOGS")) == 1:
            return
        assert time.monotonic() < deadline, server.sql("SHOW BINARY LOGS")
        time.sleep(0.5)


def test_purged_binlogs_stop_the_daemon(server, kafka_bootstrap, tmp_path):
    config = config_for(server, kafka_bootstrap)
    stream_then_stop(tmp_path, config, server, 100)
    insert(server, 111, 160)  # written while stopped, then purged
    purge_all_but_the_newest(server)
    insert(server, 161, 170)
    last = run_until_stopped(tmp_path, config)
    assert "purged" in last and "cdcd offsets reset --to earliest" in last
    ids = streamed(kafka_bootstrap, config, 110)
    assert sorted(ids) == list(range(1, 111)), "the daemon streamed past purged binlogs"


def test_positions_the_server_never_had_are_refused(server, kafka_bootstrap, tmp_path):
    config = config_for(server, kafka_bootstrap)
    stream_then_stop(tmp_path, config, server, 10)
    path = write_config(tmp_path / "offsets.toml", config)
    before = offset_history(kafka_bootstrap, config["name"], source="mysql")
    flavor = before[-1]["flavor"]
    never = "0-11-999999" if flavor == "mariadb" else "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
    result = run_cli("offsets", "set", "--config", str(path), "--position", never, "--yes")
    print(f"\n{result.stderr.strip()}")
    assert result.returncode == 1
    assert "never executed" in result.stderr or "is ahead of the binlog" in result.stderr
    missing = json.dumps(
        {"kind": "mysql", "flavor": flavor, "gtid_set": None, "file": "nope.000042", "pos": 4}
    )
    result = run_cli("offsets", "set", "--config", str(path), "--position", missing, "--yes")
    print(result.stderr.strip())
    assert result.returncode == 1 and "does not have" in result.stderr
    assert offset_history(kafka_bootstrap, config["name"], source="mysql") == before

    # The same GTIDs as a first start's initial_position.
    fresh = config_for(server, kafka_bootstrap, initial_position=never)
    last = run_until_stopped(tmp_path, fresh)
    assert last.startswith("cdcd: error: source.initial_position")
