"""Binlog file/pos positions (GTIDs off), on a throwaway MySQL 8 with gtid_mode = OFF.

MariaDB always writes GTIDs, so MySQL is the server where file/pos is all a position
holds. SIGKILL mid-stream under load and binlog rotations must lose nothing and repeat
nothing, and every stored position must be a transaction boundary: the event it points
at starts a transaction (or is the end of a file).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from offsets_support import offset_history
from support import (
    RangeWriter,
    assert_each_once,
    consume,
    daemon,
    mysql_ticks_writer,
    run_cli,
    unique_name,
)
from throwaway import Server, mysql8

pytestmark = pytest.mark.integration

# Events a binlog position at a transaction boundary may point at (MySQL without GTIDs
# starts every transaction, DDL included, with an Anonymous_Gtid event).
TRANSACTION_STARTS = {"Anonymous_Gtid", "Gtid"}


@pytest.fixture(scope="module")
def no_gtid_mysql() -> Iterator[Server]:
    with mysql8("gtid_mode = OFF", "enforce_gtid_consistency = OFF") as server:
        assert server.sql("SELECT @@GLOBAL.gtid_mode") == [("OFF",)]
        yield server


def connect(server: Server) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1", port=server.port, user="root", password="root", autocommit=True
    )


def config(server: Server, name: str, bootstrap: str, tables: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"kind": "mysql", "dsn": server.url, "tables": tables},
        "sink": {"kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": name},
        "log": {"level": "debug", "format": "json"},
    }


def ticks_writer(
    server: Server, table: str, total: int, per_tx: int = 100, pause: float = 0.002
) -> RangeWriter:
    return mysql_ticks_writer(lambda: connect(server), table, total, per_tx, pause)


def event_at(server: Server, file: str, pos: int) -> str | None:
    """The type of the binlog event at ``file``:``pos`` (None: the file's end)."""
    rows = server.sql(f"SHOW BINLOG EVENTS IN '{file}' FROM {pos} LIMIT 1")
    return str(rows[0][2]) if rows else None


def assert_boundaries(server: Server, positions: list[dict[str, Any]]) -> dict[str, int]:
    """Every stored position is file/pos only and points at a transaction's first event
    (or at a rotation / the end of a file); returns how many of each kind were seen."""
    kinds: dict[str, int] = {}
    for position in positions:
        assert position["gtid_set"] is None and position["index"] == 0, position
        kind = event_at(server, position["file"], position["pos"])
        assert kind in TRANSACTION_STARTS | {"Rotate", None}, (position, kind)
        kinds[str(kind)] = kinds.get(str(kind), 0) + 1
    return kinds


def transactions_after(server: Server, file: str, pos: int) -> int:
    """How many transactions the binlog holds after ``file``:``pos``."""
    files = [str(row[0]) for row in server.sql("SHOW BINARY LOGS")]
    count = 0
    for name in files[files.index(file) :]:
        rows = server.sql(f"SHOW BINLOG EVENTS IN '{name}' FROM {pos if name == file else 4}")
        count += sum(1 for row in rows if row[2] in TRANSACTION_STARTS)
    return count


def offsets_show(path: str) -> dict[str, Any]:
    result = run_cli("offsets", "show", "--config", path)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("position:"))
    print(f"\ncdcd offsets show: {line}")
    text, stored = line.removeprefix("position:").strip().split("  ", 1)
    position: dict[str, Any] = json.loads(stored)
    assert text == f"{position['file']}:{position['pos']}", line  # no GTID set shown
    return position


def master_status(server: Server) -> tuple[str, int]:
    file, pos = server.sql("SHOW MASTER STATUS")[0][:2]
    return str(file), int(pos)


def test_sigkill_under_load_resumes_by_file_pos(no_gtid_mysql, kafka_bootstrap, tmp_path):
    server, name, total = no_gtid_mysql, unique_name(), 20_000
    server.sql(f"CREATE DATABASE {name}", f"CREATE TABLE {name}.ticks (id INT PRIMARY KEY, v INT)")
    topic = f"{name}.{name}.ticks"
    # 200 transactions over 4 s at least: the kill lands while the writer writes.
    writer = ticks_writer(server, f"{name}.ticks", total, pause=0.02)
    with daemon(tmp_path, config(server, name, kafka_bootstrap, [f"{name}.ticks"])) as d:
        writer.start()
        early = consume(kafka_bootstrap, [topic], expect=1000, settle=0)
        assert len(early) >= 1000
        d.kill()  # SIGKILL in the middle of the stream
        killed_at = writer.written
        time.sleep(0.5)
        d.start()
        writer.finish()
        messages = consume(kafka_bootstrap, [topic], expect=total, timeout=120, settle=2)
        assert d.terminate() == 0
    print(f"\nkilled after id {killed_at} of {total} was committed")
    assert killed_at < total, "the writer had finished before the kill: no load"
    assert_each_once(messages, total, "SIGKILL, file/pos (MySQL 8, gtid_mode=OFF)")

    starts = [json.loads(x) for x in d.log_text().splitlines() if '"streaming"' in x]
    assert len(starts) == 2 and starts[1]["gtid_set"] is None and starts[1]["file"], starts
    assert starts[1]["pos"] > 4
    sources = [m.value["source"] for m in messages]
    assert all(s["gtid"] is None and s["file"].startswith("binlog.") for s in sources)

    history = [h for h in offset_history(kafka_bootstrap, name, "mysql") if h is not None]
    kinds = assert_boundaries(server, history)
    print(f"{len(history)} stored positions, pointing at: {kinds}")
    stored = offsets_show(str(d.config_path))
    # Drained at SIGTERM: the stored position is the binlog's end, where the next
    # transaction will start.
    assert (stored["file"], stored["pos"]) == master_status(server)
    assert transactions_after(server, stored["file"], stored["pos"]) == 0
    assert stored["gtid_set"] is None and stored["flavor"] == "mysql"


def test_rotations_and_a_kill_after_one(no_gtid_mysql, kafka_bootstrap, tmp_path):
    server, name, total = no_gtid_mysql, unique_name(), 12_000
    server.sql(f"CREATE DATABASE {name}", f"CREATE TABLE {name}.ticks (id INT PRIMARY KEY, v INT)")
    topic = f"{name}.{name}.ticks"
    first_file, _ = master_status(server)
    writer = ticks_writer(server, f"{name}.ticks", total, per_tx=50, pause=0.01)
    rotated_at = []
    with daemon(tmp_path, config(server, name, kafka_bootstrap, [f"{name}.ticks"])) as d:
        writer.start()
        for written in (2000, 4000):
            writer.wait_for(written)
            server.sql("FLUSH BINARY LOGS")
            rotated_at.append(writer.written)
        consume(kafka_bootstrap, [topic], expect=4000, settle=0)
        d.kill()  # soon after a rotation: the stored position may be in either file
        killed_at = writer.written
        time.sleep(0.5)
        d.start()
        writer.wait_for(8000)
        server.sql("FLUSH BINARY LOGS")
        rotated_at.append(writer.written)
        writer.finish()
        messages = consume(kafka_bootstrap, [topic], expect=total, timeout=120, settle=2)
        assert d.terminate() == 0
    print(f"\nrotated after ids {rotated_at}, killed after id {killed_at}, of {total}")
    assert rotated_at[-1] < total and killed_at < total, "the writer finished too early"
    assert_each_once(messages, total, "rotations and SIGKILL, file/pos")
    files = [m.value["source"]["file"] for m in messages]
    assert files == sorted(files), "records out of binlog order"
    rotated = sorted(set(files))
    print(f"binlog files the records came from: {rotated}")
    assert len(rotated) >= 3 and rotated[0] == first_file, rotated

    history = [h for h in offset_history(kafka_bootstrap, name, "mysql") if h is not None]
    kinds = assert_boundaries(server, history)
    print(f"{len(history)} stored positions in {sorted({h['file'] for h in history})}: {kinds}")
    assert len({h["file"] for h in history}) >= 3
    stored = offsets_show(str(d.config_path))
    assert transactions_after(server, stored["file"], stored["pos"]) == 0, stored
