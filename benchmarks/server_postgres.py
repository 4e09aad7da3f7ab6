"""PostgreSQL under test: the ``bench`` database, its publication, one replication slot
per reader (created before the backlog, so that every slot holds all of it), and how each
reader is pointed at its slot (cdcd's source keys, Debezium's properties,
``pg_recvlogical``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import load
from harness import PG_BIN, Options, log, log_tail, url_parts
from procstat import run_measured


class PostgresBench:
    """PostgreSQL: database ``bench``, publication ``bench_pub``, one slot per reader."""

    name = "postgres"
    db = "postgres"  # load.py's name of the database kind
    family = "postgres"
    connector = "io.debezium.connector.postgresql.PostgresConnector"

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        u = urlsplit(opts.pg_dsn)
        self.admin_dsn = opts.pg_dsn
        # Plaintext for every reader, as in the runs before the test environment's
        # PostgreSQL had ssl = on (libpq's and Debezium's default, prefer, would take TLS):
        # the figures stay comparable from run to run.
        self.dsn = urlunsplit(u._replace(path="/bench", query="sslmode=disable"))
        self.parts = url_parts(self.dsn)
        self.publication = "bench_pub"
        self.snapshot_publication = "bench_snap_pub"  # the snapshot phase's table only
        self.takeover_publication = "bench_takeover_pub"  # the takeover phase's
        self.slots: list[str] = []
        self.start: dict[str, Any] = {}

    def _conn(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True)

    def prepare(self, roles: list[str]) -> dict[str, Any]:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = 'bench'").fetchone():
                admin.execute("CREATE DATABASE bench")
        load.create_table("postgres", self.dsn)
        with self._conn() as conn:
            # Inactive slots of an earlier, interrupted run of this harness retain WAL.
            for (slot,) in conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'bench\\_%' "
                "AND database = 'bench' AND NOT active"
            ).fetchall():
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute(f"DROP PUBLICATION IF EXISTS {self.publication}")
            conn.execute(f"CREATE PUBLICATION {self.publication} FOR TABLE bench.orders")
        self.start = {"slots": {role: self.create_slot(role) for role in roles}}
        return self.start

    def create_slot(self, role: str) -> str:
        slot = f"bench_{role}_{self.opts.run_id}"
        with self._conn() as conn:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        self.slots.append(slot)
        return slot

    def end_position(self) -> dict[str, Any]:
        with self._conn() as conn:
            return {"lsn": conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]}

    def settle(self, table: str = "bench.orders") -> dict[str, Any]:
        """After a load: its dead rows vacuumed (and the hint bits set, which no reader's
        scan then writes) and a checkpoint written now, so that autovacuum and a
        checkpoint do not land inside a later phase."""
        started = time.monotonic()
        with self._conn() as conn:
            conn.execute(f"VACUUM (ANALYZE) {table}")
            conn.execute("CHECKPOINT")
        return {
            "settle_s": round(time.monotonic() - started, 3),
            "did": "VACUUM ANALYZE, CHECKPOINT",
        }

    def cdcd_source(self, role: str, slot: str) -> dict[str, Any]:
        return {
            "kind": "postgres",
            "dsn": self.dsn,
            "tables": ["bench.orders"],
            "slot_name": slot,
            "publication_name": self.publication,
            "create_slot": False,
            "create_publication": False,
        }

    def cdcd_catchup_source(self, role: str) -> dict[str, Any]:
        return self.cdcd_source(role, self.start["slots"][role])

    def debezium_props(self, role: str, slot: str, prefix: str, workdir: Path) -> dict[str, str]:
        p = self.parts
        return {
            "name": f"bench-dbz-{self.name}",
            "connector.class": self.connector,
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(workdir / "offsets.dat"),
            "offset.flush.interval.ms": "10000",
            "database.hostname": p["host"],
            "database.port": str(p["port"] or 5432),
            "database.user": p["user"],
            "database.password": p["password"],
            "database.dbname": "bench",
            "database.sslmode": "disable",
            "topic.prefix": prefix,
            "plugin.name": "pgoutput",
            "slot.name": slot,
            "publication.name": self.publication,
            "publication.autocreate.mode": "disabled",
            "snapshot.mode": "no_data",
            "table.include.list": "bench.orders",
        }

    def debezium_catchup_props(self, role: str, prefix: str, workdir: Path) -> dict[str, str]:
        return self.debezium_props(role, self.start["slots"][role], prefix, workdir)

    def c_limit(self, end: dict[str, Any], workdir: Path) -> dict[str, Any]:
        p = self.parts
        argv = [
            str(PG_BIN / "pg_recvlogical"),
            "-d",
            f"host={p['host']} port={p['port'] or 5432} user={p['user']} dbname=bench sslmode=disable",
            "--slot",
            self.start["slots"]["c"],
            "--start",
            "--endpos",
            end["lsn"],
            "-o",
            "proto_version=1",
            "-o",
            f"publication_names={self.publication}",
            "-f",
            "/dev/null",
            "--no-loop",
        ]
        env = {**os.environ, "PGPASSWORD": p["password"]}
        with open(workdir / "pg_recvlogical.log", "wb") as err:
            result = run_measured(argv, env=env, stderr=err, timeout=1800)
        result["reader"] = "pg_recvlogical (pgoutput proto 1, binary to /dev/null)"
        if result.get("returncode"):
            result["error"] = (
                f"pg_recvlogical exited {result['returncode']}: "
                f"{log_tail(workdir / 'pg_recvlogical.log')}"
            )
        return result

    def latency_start(self, role: str) -> dict[str, Any]:
        return {"slot": self.create_slot(role)}

    def cdcd_latency_source(self, role: str, start: dict[str, Any]) -> dict[str, Any]:
        return self.cdcd_source(role, start["slot"])

    def debezium_latency_props(
        self, role: str, start: dict[str, Any], prefix: str, workdir: Path
    ) -> dict[str, str]:
        return self.debezium_props(role, start["slot"], prefix, workdir)

    # -- the snapshot phase: a table of its own, each reader creating its own slot --

    def snapshot_prepare(self, table: str, publication: str | None = None) -> None:
        """The (empty) table and a publication of it alone (the snapshot phase's, unless
        ``publication`` names another)."""
        publication = publication or self.snapshot_publication
        schema, name = table.split(".")
        load.create_table("postgres", self.dsn, name)
        with self._conn() as conn:
            conn.execute(f"DROP PUBLICATION IF EXISTS {publication}")
            conn.execute(f"CREATE PUBLICATION {publication} FOR TABLE {table}")

    def _reader_slot(self, role: str) -> str:
        """A slot the reader creates itself (the snapshot it exports is the reader's
        consistent view); dropped at cleanup like the harness's own."""
        slot = f"bench_{role}_{self.opts.run_id}"
        self.slots.append(slot)
        return slot

    def cdcd_snapshot_source(self, role: str, table: str) -> dict[str, Any]:
        source = self.cdcd_source(role, self._reader_slot(role))
        source.update(tables=[table], publication_name=self.snapshot_publication, create_slot=True)
        return source

    def debezium_snapshot_props(
        self, role: str, table: str, prefix: str, workdir: Path
    ) -> dict[str, str]:
        props = self.debezium_props(role, self._reader_slot(role), prefix, workdir)
        props.update(
            {
                "publication.name": self.snapshot_publication,
                "snapshot.mode": "initial",
                "table.include.list": table,
            }
        )
        return props

    def snapshot_cleanup(self, table: str, publication: str | None = None) -> None:
        """The table and its publication dropped (the slots go at cleanup)."""
        with self._conn() as conn:
            conn.execute(f"DROP PUBLICATION IF EXISTS {publication or self.snapshot_publication}")
            conn.execute(f"DROP TABLE IF EXISTS {table}")

    # -- the takeover phase: a table and publication of its own, a slot per session --

    def takeover_prepare(self, table: str) -> None:
        self.snapshot_prepare(table, self.takeover_publication)

    def cdcd_takeover_source(self, role: str, table: str) -> dict[str, Any]:
        """A pair's source: a slot of its own, created now (before the load), which the
        pair's leaders hand on to each other."""
        source = self.cdcd_source(role, self.create_slot(role))
        source.update(tables=[table], publication_name=self.takeover_publication)
        return source

    def takeover_cleanup(self, table: str) -> None:
        self.snapshot_cleanup(table, self.takeover_publication)

    def cleanup(self) -> None:
        with self._conn() as conn:
            for slot in self.slots:
                for _ in range(20):
                    row = conn.execute(
                        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                    ).fetchone()
                    if row is None:
                        break
                    if row[0] is None:
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                        break
                    time.sleep(0.5)
                else:
                    log(f"slot {slot} still in use: not dropped")
        self.slots.clear()
