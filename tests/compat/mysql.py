"""MariaDB or MySQL 8: a database of its own, the binlog position both readers start at
(noted before the tables are created, so the DDL is in the stream: Debezium learns the
tables from it), the changes, then cdcd and Debezium, each with its own server id."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pymysql
from support import unique_name

from compat.capture import Captured, run_cdcd, run_debezium
from compat.cases import Case

CONNECTORS = {
    "mariadb": "io.debezium.connector.mariadb.MariaDbConnector",
    "mysql": "io.debezium.connector.mysql.MySqlConnector",
}


def _connect(url: str) -> pymysql.Connection:
    u = urlsplit(url)
    return pymysql.connect(
        host=u.hostname or "127.0.0.1",
        port=u.port or 3306,
        user=unquote(u.username or "root"),
        password=unquote(u.password or ""),
        autocommit=True,
        charset="utf8mb4",
    )


def _position(cur: pymysql.cursors.Cursor, flavor: str) -> dict[str, object]:
    cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    assert row is not None, "the server has no binary log"
    gtid = None
    if flavor == "mariadb":
        cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
        gtid = cur.fetchone()[0]  # type: ignore[index]
    elif len(row) > 4:
        gtid = row[4].replace("\n", "")
    return {"file": row[0], "pos": int(row[1]), "gtid": gtid or None}


def capture(url: str, flavor: str, cases: list[Case], workdir: Path) -> Captured:
    name = unique_name("compat")
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
            start = _position(cur, flavor)
            cur.execute(f"USE {name}")
            cur.execute("SET SESSION sql_mode = ''")
            for case in cases:
                cur.execute(case.create())
            for case in cases:
                for statement in case.changes():
                    cur.execute(statement)
        count = sum(case.expected_records() for case in cases)
        return _read(url, flavor, name, start, cases, workdir, count)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


def _read(
    url: str,
    flavor: str,
    name: str,
    start: dict[str, object],
    cases: list[Case],
    workdir: Path,
    count: int,
) -> Captured:
    u = urlsplit(url)
    server_ids = 6000 + secrets.randbelow(3000)
    cdcd, error = run_cdcd(
        workdir,
        {
            "name": name,
            "source": {
                "kind": "mysql",
                "dsn": url,
                "tables": [f"{name}.{case.table}" for case in cases],
                "initial_position": start["gtid"] or f"{start['file']}:{start['pos']}",
                "schema_changes": False,
                "server_id": server_ids,
            },
        },
        count,
        may_stop=any(case.cdcd_stops for case in cases),
    )
    offset = {"file": start["file"], "pos": start["pos"]}
    if start["gtid"]:
        offset["gtids"] = start["gtid"]
    debezium = run_debezium(
        workdir,
        "binlog",
        {
            "name": name,
            "connector.class": CONNECTORS[flavor],
            "database.hostname": u.hostname or "127.0.0.1",
            "database.port": str(u.port or 3306),
            "database.user": unquote(u.username or "root"),
            "database.password": unquote(u.password or ""),
            "database.server.id": str(server_ids + 1),
            "topic.prefix": name,
            "database.include.list": name,
            "table.include.list": rf"{name}\.c_.*",
            "include.schema.changes": "false",
            "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
            "schema.history.internal.file.filename": str(workdir / "schema-history.dat"),
            "snapshot.mode": "configuration_based",
            "snapshot.mode.configuration.based.snapshot.schema": "false",
            "snapshot.mode.configuration.based.snapshot.data": "false",
            "snapshot.mode.configuration.based.start.stream": "true",
            "snapshot.mode.configuration.based.snapshot.on.schema.error": "true",
            "capture.seed.offset.key": json.dumps([name, {"server": name}], separators=(",", ":")),
            "capture.seed.offset.value": json.dumps(offset, separators=(",", ":")),
        },
        count,
    )
    return Captured(debezium, cdcd, error)
