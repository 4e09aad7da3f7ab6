"""Throwaway MariaDB and MySQL 8 servers, and TLS certificates, for tests that need a
server set up unlike the shared test environment (TLS only, GTIDs off).

Each server listens on 127.0.0.1 on a free port, keeps its data in a fresh temporary
directory and is stopped (by its own PID) and removed when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
from support import free_port

MYSQL8_HOME = Path(
    os.environ.get("CDCD_MYSQL8_HOME") or Path.home() / ".cache" / "cdcd" / "mysql8-0.6"
)
ROOT_PASSWORD = "root"


@dataclass
class Server:
    """A throwaway server: ``url`` logs in as root over TCP."""

    flavor: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    command: list[str]

    @property
    def url(self) -> str:
        return f"mysql://root:{ROOT_PASSWORD}@127.0.0.1:{self.port}/"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "sock"

    def admin(self) -> pymysql.connections.Connection:
        """A root connection over the Unix socket (allowed even when TCP needs TLS)."""
        return pymysql.connect(
            unix_socket=str(self.socket_path),
            user="root",
            password=ROOT_PASSWORD,
            autocommit=True,
        )

    def sql(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run statements as root; the rows of the last one."""
        conn = self.admin()
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def restart(self, down_s: float = 0, how: str = "term") -> None:
        """Stop the server, leave it down ``down_s`` seconds, start it again on the same
        port and data. ``how``: "term" (SIGTERM, by its PID), "shutdown" (the SHUTDOWN
        statement), "kill" (SIGKILL: a crash)."""
        if how == "shutdown":
            with contextlib.suppress(pymysql.err.MySQLError):
                self.sql("SHUTDOWN")
            self.process.wait(60)
        elif how == "kill":
            self.process.kill()
            self.process.wait(10)
        else:
            _stop(self)
        time.sleep(down_s)
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )
        _wait_until_up(self)

    def log_text(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _wait_until_up(server: Server, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"the throwaway {server.flavor} exited with {server.process.returncode}:\n"
                f"{server.log_text()[-3000:]}"
            )
        try:
            server.sql("SELECT 1")
            return
        except pymysql.err.MySQLError:
            time.sleep(0.3)
    raise AssertionError(
        f"the throwaway {server.flavor} did not start in {timeout}s:\n{server.log_text()[-3000:]}"
    )


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()  # our own child, by its PID
        try:
            server.process.wait(60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)


@contextmanager
def mariadb(*options: str, setup: tuple[str, ...] = ()) -> Iterator[Server]:
    """A MariaDB with the binlog as cdcd needs it, plus ``options``; ``setup`` runs as root."""
    workdir = Path(tempfile.mkdtemp(prefix="cdcd-mdb-"))
    port = free_port()
    try:
        subprocess.run(
            [
                "mariadb-install-db",
                f"--datadir={workdir}/data",
                "--user=root",
                "--auth-root-authentication-method=normal",
            ],
            check=True,
            capture_output=True,
        )
        command = [
            "mariadbd",
            "--no-defaults",
            f"--datadir={workdir}/data",
            "--user=root",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--socket={workdir}/sock",
            f"--pid-file={workdir}/pid",
            f"--log-error={workdir}/error.log",
            "--log-bin=mariadb-bin",
            "--server-id=11",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0",
            *options,
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = Server("mariadb", port, workdir, process, command)
        try:
            # root has no password yet: set one, and let root in over TCP.
            deadline = time.monotonic() + 60
            while True:
                try:
                    conn = pymysql.connect(
                        unix_socket=str(workdir / "sock"), user="root", autocommit=True
                    )
                    break
                except pymysql.err.MySQLError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(
                            f"the throwaway MariaDB did not start:\n{server.log_text()[-3000:]}"
                        ) from None
                    time.sleep(0.3)
            with conn.cursor() as cursor:
                cursor.execute(f"ALTER USER root@localhost IDENTIFIED BY '{ROOT_PASSWORD}'")
                cursor.execute(
                    f"CREATE OR REPLACE USER root@'127.0.0.1' IDENTIFIED BY '{ROOT_PASSWORD}'"
                )
                cursor.execute("GRANT ALL ON *.* TO root@'127.0.0.1' WITH GRANT OPTION")
                cursor.execute("RESET MASTER")
            conn.close()
            if setup:
                server.sql(*setup)
            yield server
        finally:
            _stop(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def mysql8(*options: str) -> Iterator[Server]:
    """A MySQL 8 (the testenv's binaries) with ROW binlog and FULL metadata, plus
    ``options`` (one ``name = value`` line of my.cnf each)."""
    mysqld = MYSQL8_HOME / "bin" / "mysqld"
    if not mysqld.exists():
        import pytest

        pytest.skip(f"no MySQL 8 binaries at {MYSQL8_HOME} (scripts/testenv up unpacks them)")
    workdir = Path(tempfile.mkdtemp(prefix="cdcd-my8-"))
    port = free_port()
    try:
        cnf = workdir / "my.cnf"
        user_line = "user = root" if os.getuid() == 0 else ""
        cnf.write_text(
            "\n".join(
                [
                    "[mysqld]",
                    user_line,
                    f"basedir = {MYSQL8_HOME}",
                    f"lc-messages-dir = {MYSQL8_HOME / 'share'}",
                    f"datadir = {workdir / 'data'}",
                    f"socket = {workdir / 'sock'}",
                    f"pid-file = {workdir / 'mysqld.pid'}",
                    f"log-error = {workdir / 'error.log'}",
                    "bind-address = 127.0.0.1",
                    f"port = {port}",
                    "mysqlx = OFF",
                    "skip-name-resolve",
                    "server_id = 12",
                    "log_bin = binlog",
                    "binlog_format = ROW",
                    "binlog_row_image = FULL",
                    "binlog_row_metadata = FULL",
                    "default_authentication_plugin = mysql_native_password",
                    "performance_schema = OFF",
                    "innodb_buffer_pool_size = 64M",
                    "innodb_flush_log_at_trx_commit = 2",
                    "sync_binlog = 0",
                    f"secure_file_priv = {workdir}",
                    *options,
                    "",
                ]
            )
        )
        init = workdir / "init.sql"
        init.write_text(
            "SET SESSION sql_log_bin = 0;\n"
            f"CREATE USER 'root'@'127.0.0.1' IDENTIFIED WITH mysql_native_password BY '{ROOT_PASSWORD}';\n"
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n"
            f"ALTER USER 'root'@'localhost' IDENTIFIED WITH mysql_native_password BY '{ROOT_PASSWORD}';\n"
        )
        subprocess.run(
            [str(mysqld), f"--defaults-file={cnf}", "--initialize-insecure", f"--init-file={init}"],
            check=True,
            capture_output=True,
            cwd=workdir,
            timeout=300,
        )
        command = [str(mysqld), f"--defaults-file={cnf}"]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir
        )
        server = Server("mysql", port, workdir, process, command)
        try:
            _wait_until_up(server)
            server.sql("RESET MASTER")
            yield server
        finally:
            _stop(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate signed
    by it, and a second CA that signed nothing (a wrong ``ssl_ca``)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}-key.pem", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=cdcd test {name}", "-keyout", str(key), "-out", str(cert),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return cert, key


def _sign(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert = (directory / f"{name}-{s}.pem" for s in ("key", "csr", "cert"))
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", str(key), "-out", str(csr), cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(ext), "-out", str(cert),
        cwd=directory,
    )  # fmt: skip
    return cert, key


def make_tls_files(directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(directory, "ca")
    other_ca, _ = _make_ca(directory, "other-ca")
    server_cert, server_key = _sign(
        directory,
        "server",
        ca,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    client_cert, client_key = _sign(
        directory,
        "cdc",
        ca,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n",
    )
    return TlsFiles(ca[0], server_cert, server_key, client_cert, client_key, other_ca)


def encrypt_key(key: str | Path, directory: Path, passphrase: str) -> tuple[Path, Path]:
    """``key`` (PEM) encrypted with ``passphrase`` (AES-256, mode 0600), and the file
    holding the passphrase."""
    encrypted, secret = directory / "encrypted-key.pem", directory / "key.passphrase"
    secret.write_text(passphrase + "\n")
    _openssl(
        "pkey", "-in", str(key), "-aes256", "-out", str(encrypted),
        "-passout", f"file:{secret}", cwd=directory,
    )  # fmt: skip
    encrypted.chmod(0o600)
    return encrypted, secret
