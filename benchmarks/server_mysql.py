"""MariaDB or MySQL 8 under test: the ``bench`` database, the binlog position every
reader starts from (noted before ``CREATE TABLE``, so the DDL is in the stream), and how
each reader is pointed at it (cdcd's source keys, Debezium's properties and seeded offset,
``mariadb-binlog``, python-mysql-replication)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import load
from harness import HERE, Options, log_tail, url_parts
from procstat import run_measured


class MysqlBench:
    """MariaDB (``mysql``) or MySQL 8 (``mysql8``): database ``bench``, binlog positions."""

    family = "binlog"
    db = "mysql"  # load.py's name of the database kind

    def __init__(self, opts: Options, name: str) -> None:
        self.opts = opts
        self.name = name
        self.url = opts.mysql_url if name == "mysql" else (opts.mysql8_url or "")
        self.parts = url_parts(self.url)
        self.start: dict[str, Any] = {}
        self.flavor = "mariadb" if name == "mysql" else "mysql"
        self.connector = (
            "io.debezium.connector.mariadb.MariaDbConnector"
            if self.flavor == "mariadb"
            else "io.debezium.connector.mysql.MySqlConnector"
        )

    @property
    def dsn(self) -> str:
        return self.url

    def position(self) -> dict[str, Any]:
        conn = load.mysql_connect(self.url)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW MASTER STATUS")
                row = cur.fetchone()
                gtid = None
                if self.flavor == "mariadb":
                    cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
                    gtid = cur.fetchone()[0]
                elif len(row) > 4:
                    gtid = row[4]
            return {"file": row[0], "pos": int(row[1]), "gtid": gtid}
        finally:
            conn.close()

    def prepare(self, roles: list[str]) -> dict[str, Any]:
        if not self.url:
            raise RuntimeError(f"no server for {self.name}: CDCD_TEST_MYSQL8_URL is not set")
        conn = load.mysql_connect(self.url)
        try:
            load.mysql_script(conn, load.MYSQL_DROP)
            # A fresh binlog file: a reader starting from a GTID does not make the server
            # scan the long file the other tests filled to find it.
            load.mysql_script(conn, "FLUSH BINARY LOGS")
            # Every reader starts before CREATE TABLE: the DDL is in the stream, so Debezium
            # learns the table from it (its schema history starts empty).
            self.start = self.position()
            load.mysql_script(conn, load.MYSQL_CREATE)
        finally:
            conn.close()
        return self.start

    def end_position(self) -> dict[str, Any]:
        return self.position()

    def cdcd_source(self, role: str, start: dict[str, Any]) -> dict[str, Any]:
        # The GTID position when the server has one (a transaction boundary, whatever the
        # file), else file:pos.
        initial = start["gtid"] or f"{start['file']}:{start['pos']}"
        return {
            "kind": "mysql",
            "dsn": self.url,
            "tables": ["bench.orders"],
            "initial_position": initial,
            "schema_changes": False,
        }

    def cdcd_catchup_source(self, role: str) -> dict[str, Any]:
        return self.cdcd_source(role, self.start)

    def _debezium_base(self, prefix: str, workdir: Path) -> dict[str, str]:
        """Debezium's connection, selection and schema history (a file of its own)."""
        p = self.parts
        return {
            "name": f"bench-dbz-{self.name}",
            "connector.class": self.connector,
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(workdir / "offsets.dat"),
            "offset.flush.interval.ms": "10000",
            "database.hostname": p["host"],
            "database.port": str(p["port"] or 3306),
            "database.user": p["user"],
            "database.password": p["password"],
            "database.server.id": str(5400 + secrets.randbelow(500)),
            "topic.prefix": prefix,
            "database.include.list": "bench",
            "table.include.list": "bench.orders",
            "include.schema.changes": "false",
            "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
            "schema.history.internal.file.filename": str(workdir / "schema-history.dat"),
        }

    def debezium_props(
        self, role: str, start: dict[str, Any], prefix: str, workdir: Path
    ) -> dict[str, str]:
        props = self._debezium_base(prefix, workdir)
        props.update(
            {
                "snapshot.mode": "configuration_based",
                "snapshot.mode.configuration.based.snapshot.schema": "false",
                "snapshot.mode.configuration.based.snapshot.data": "false",
                "snapshot.mode.configuration.based.start.stream": "true",
                # An offset without a schema history: start from the offset with an empty
                # history, which the CREATE TABLE in the stream then fills.
                "snapshot.mode.configuration.based.snapshot.on.schema.error": "true",
                # The start position, as the engine's file offset store holds it.
                "bench.seed.offset.key": json.dumps(
                    [props["name"], {"server": prefix}], separators=(",", ":")
                ),
                "bench.seed.offset.value": json.dumps(
                    {
                        "file": start["file"],
                        "pos": start["pos"],
                        **({"gtids": start["gtid"]} if start["gtid"] else {}),
                    },
                    separators=(",", ":"),
                ),
            }
        )
        return props

    def debezium_catchup_props(self, role: str, prefix: str, workdir: Path) -> dict[str, str]:
        return self.debezium_props(role, self.start, prefix, workdir)

    def c_limit(self, end: dict[str, Any], workdir: Path) -> dict[str, Any]:
        p = self.parts
        argv = [
            "mariadb-binlog",
            "--read-from-remote-server",
            f"--host={p['host']}",
            f"--port={p['port'] or 3306}",
            f"--user={p['user']}",
            "-v",
            f"--start-position={self.start['pos']}",
            "--to-last-log",
            self.start["file"],
        ]
        env = {**os.environ, "MYSQL_PWD": p["password"]}
        with open(workdir / "mariadb-binlog.log", "wb") as err:
            result = run_measured(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=err, timeout=1800
            )
        result["reader"] = "mariadb-binlog --read-from-remote-server -v (decoded, to /dev/null)"
        if result.get("returncode"):
            result["error"] = (
                f"mariadb-binlog exited {result['returncode']}: "
                f"{log_tail(workdir / 'mariadb-binlog.log')}"
            )
        return result

    def pyrepl(self, workdir: Path) -> dict[str, Any]:
        argv = [
            sys.executable,
            str(HERE / "pyrepl_reader.py"),
            "--dsn",
            self.url,
            "--file",
            self.start["file"],
            "--pos",
            str(self.start["pos"]),
        ]
        out_path = workdir / "pyrepl.out"
        with open(out_path, "wb") as out, open(workdir / "pyrepl.log", "wb") as err:
            result = run_measured(argv, stdout=out, stderr=err, timeout=3600)
        if result.get("returncode"):
            result["error"] = (
                f"pyrepl_reader exited {result['returncode']}: {log_tail(workdir / 'pyrepl.log')}"
            )
            return result
        with contextlib.suppress(Exception):
            result.update(json.loads(out_path.read_text().strip().splitlines()[-1]))
        return result

    def latency_start(self, role: str) -> dict[str, Any]:
        return self.position()

    def cdcd_latency_source(self, role: str, start: dict[str, Any]) -> dict[str, Any]:
        return self.cdcd_source(role, start)

    def debezium_latency_props(
        self, role: str, start: dict[str, Any], prefix: str, workdir: Path
    ) -> dict[str, str]:
        # Streaming from "now": no offset to seed; the table's schema comes from a schema
        # snapshot (no CREATE TABLE ahead in the stream this time).
        props = self.debezium_props(role, start, prefix, workdir)
        props.pop("bench.seed.offset.key")
        props.pop("bench.seed.offset.value")
        props["snapshot.mode.configuration.based.snapshot.schema"] = "true"
        # (without an offset, on.schema.error=true makes the connector refuse to start)
        props["snapshot.mode.configuration.based.snapshot.on.schema.error"] = "false"
        return props

    def settle(self, table: str = "bench.orders", timeout: float = 60.0) -> dict[str, Any]:
        """After a load: the table's statistics (``ANALYZE TABLE``, kept out of the binlog
        the readers read), then until InnoDB has purged its old row versions (history
        list under 1,000) and written its dirty pages (PostgreSQL's CHECKPOINT), so that
        neither lands inside a later phase."""
        started = time.monotonic()
        conn = load.mysql_connect(self.url)
        history = dirty = None
        try:
            with conn.cursor() as cur:
                cur.execute(f"ANALYZE NO_WRITE_TO_BINLOG TABLE {table}")
                cur.fetchall()
                while time.monotonic() - started < timeout:
                    cur.execute(
                        "SELECT COUNT FROM information_schema.INNODB_METRICS "
                        "WHERE NAME = 'trx_rseg_history_len'"
                    )
                    row = cur.fetchone()
                    history = int(row[0]) if row else 0
                    if history < 1000:
                        break
                    time.sleep(1)
                cur.execute("FLUSH TABLES")
                cur.execute("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
                (pct,) = cur.fetchone()
                cur.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
                try:
                    while time.monotonic() - started < timeout:
                        cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
                        row = cur.fetchone()
                        dirty = int(row[1]) if row else 0
                        if dirty < 100:
                            break
                        time.sleep(0.5)
                finally:
                    cur.execute(f"SET GLOBAL innodb_max_dirty_pages_pct = {float(pct)}")
        finally:
            conn.close()
        return {
            "settle_s": round(time.monotonic() - started, 3),
            "history_len": history,
            "dirty_pages": dirty,
        }

    # -- the snapshot phase: a table of its own, no start position (each reader's own) --

    def snapshot_prepare(self, table: str) -> None:
        load.create_table("mysql", self.url, table.split(".")[1])

    def cdcd_snapshot_source(self, role: str, table: str) -> dict[str, Any]:
        return {
            "kind": "mysql",
            "dsn": self.url,
            "tables": [table],
            "schema_changes": False,
        }

    def debezium_snapshot_props(
        self, role: str, table: str, prefix: str, workdir: Path
    ) -> dict[str, str]:
        props = self._debezium_base(prefix, workdir)
        props.update(
            {
                "snapshot.mode": "initial",
                "table.include.list": table,
                # Its one departure from the defaults: the schema snapshot reads the captured
                # table's structure only (as cdcd does), not every table of the server,
                # which fails when another client drops a table meanwhile (the shared test
                # server: "Table 'x.y' doesn't exist").
                "schema.history.internal.store.only.captured.tables.ddl": "true",
            }
        )
        return props

    def snapshot_cleanup(self, table: str) -> None:
        conn = load.mysql_connect(self.url)
        try:
            load.mysql_script(conn, f"DROP TABLE IF EXISTS {table}")
        finally:
            conn.close()

    # -- the takeover phase: a table of its own, streamed from the position after it --

    def takeover_prepare(self, table: str) -> None:
        self.snapshot_prepare(table)

    def cdcd_takeover_source(self, role: str, table: str) -> dict[str, Any]:
        """A pair's source: from the position now (before the load), the table's
        columns from the binlog's metadata."""
        source = self.cdcd_source(role, self.position())
        source["tables"] = [table]
        return source

    def takeover_cleanup(self, table: str) -> None:
        self.snapshot_cleanup(table)

    def cleanup(self) -> None:
        pass
