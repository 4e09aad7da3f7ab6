"""A throwaway PostgreSQL 15 for tests that stop, restart or break the server itself
(the shared one of scripts/testenv must stay up for the other tests).

It listens on 127.0.0.1 on a free port, keeps its data in a fresh temporary directory,
runs as the OS user ``postgres`` when the tests run as root (PostgreSQL refuses root),
and is stopped (immediate mode, by its data directory) and removed when the block ends.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from support import free_port

PG_BIN = Path(os.environ.get("CDCD_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
PASSWORD = "postgres"


def _as_server_user() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid}


@dataclass
class PgServer:
    port: int
    workdir: Path

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True)

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cur = conn.execute(statement, params)
            return list(cur.fetchall()) if cur.description else []

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.workdir / "log"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
            cwd=self.workdir,
            **_as_server_user(),
        )

    def start(self) -> None:
        self.pg_ctl("-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m smart|fast|immediate``; waits until the server is down."""
        self.pg_ctl("-w", "-t", "60", "-m", mode, "stop")

    def restart(self, mode: str = "fast", down_s: float = 0) -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def log_text(self) -> str:
        path = self.workdir / "log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def postgres(*settings: str) -> Iterator[PgServer]:
    """A PostgreSQL 15 with wal_level = logical, plus ``settings`` (postgresql.conf lines)."""
    if not (PG_BIN / "initdb").exists():
        import pytest

        pytest.skip(f"no PostgreSQL binaries in {PG_BIN} (scripts/testenv up installs them)")
    workdir = Path(tempfile.mkdtemp(prefix="cdcd-pg-"))
    os.chmod(workdir, 0o755)
    server = PgServer(free_port(), workdir)
    ids = _as_server_user()
    if ids:
        os.chown(workdir, ids["user"], ids["group"])
    try:
        pwfile = workdir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if ids:
            os.chown(pwfile, ids["user"], ids["group"])
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(server.data), "-U", "postgres",
             "--pwfile", str(pwfile), "-E", "UTF8", "--locale=C", "--auth-local=trust",
             "--auth-host=scram-sha-256", "--no-sync"],
            check=True, capture_output=True, cwd=workdir, **ids,
        )  # fmt: skip
        with open(server.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n".join(
                    [
                        "listen_addresses = '127.0.0.1'",
                        f"port = {server.port}",
                        f"unix_socket_directories = '{workdir}'",
                        "wal_level = logical",
                        "max_replication_slots = 10",
                        "max_wal_senders = 10",
                        "fsync = off",
                        "shared_buffers = 32MB",
                        *settings,
                    ]
                )
                + "\n"
            )
        (server.data / "pg_hba.conf").write_text(
            "local all all trust\nlocal replication all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n"
        )
        server.start()
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            server.pg_ctl("-w", "-m", "immediate", "stop", check=False)
        shutil.rmtree(workdir, ignore_errors=True)
