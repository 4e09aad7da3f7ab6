"""`cdcd check` and `cdcd run` refuse a server that cannot be streamed, naming the variable."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
from support import fix_of, free_port, run_cli, unique_name, write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def misconfigured_mariadb() -> Iterator[str]:
    """A throwaway MariaDB with STATEMENT binlog, MINIMAL row image and metadata."""
    datadir = tempfile.mkdtemp(prefix="cdcd-badmariadb-")
    port = free_port()
    subprocess.run(
        [
            "mariadb-install-db",
            f"--datadir={datadir}/data",
            "--user=root",
            "--auth-root-authentication-method=normal",
        ],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [
            "mariadbd",
            "--no-defaults",
            f"--datadir={datadir}/data",
            "--user=root",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={datadir}/sock",
            f"--pid-file={datadir}/pid",
            "--log-bin=bin",
            "--server-id=7",
            "--binlog-format=STATEMENT",
            "--binlog-row-image=MINIMAL",
            "--binlog-row-metadata=MINIMAL",
            "--skip-grant-tables=0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["mariadb-admin", f"--socket={datadir}/sock", "-uroot", "ping"], capture_output=True
            )
            if ping.returncode == 0:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the throwaway MariaDB did not start")
        subprocess.run(
            [
                "mariadb",
                f"--socket={datadir}/sock",
                "-uroot",
                "-e",
                "CREATE USER 'cdc'@'127.0.0.1' IDENTIFIED BY 'pw'; CREATE DATABASE shop; "
                "CREATE TABLE shop.orders (id INT PRIMARY KEY); CREATE TABLE shop.nokey (v INT); "
                "GRANT SELECT ON shop.* TO 'cdc'@'127.0.0.1';",
            ],
            check=True,
            capture_output=True,
        )
        yield f"mysql://cdc:pw@127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(datadir, ignore_errors=True)


def config(tmp_path, url, tables, bootstrap="127.0.0.1:9"):
    name = unique_name()
    return write_config(
        tmp_path / f"{name}.toml",
        {
            "name": name,
            "source": {"kind": "mysql", "dsn": url, "tables": tables},
            "sink": {"kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": name},
        },
    )


def test_check_names_every_variable_and_grant_to_fix(tmp_path, misconfigured_mariadb):
    result = run_cli(
        "check",
        "--config",
        str(config(tmp_path, misconfigured_mariadb, ["shop.orders", "shop.nokey"])),
    )
    assert result.returncode == 1
    out = result.stdout
    assert "ERROR: binlog_format is 'STATEMENT', cdcd needs 'ROW'" in out
    assert "SET GLOBAL binlog_format = 'ROW'" in out
    assert "ERROR: binlog_row_image is 'MINIMAL', cdcd needs 'FULL'" in out
    assert "ERROR: binlog_row_metadata is 'MINIMAL'" in out
    assert "REPLICATION SLAVE" in out and "GRANT REPLICATION SLAVE ON *.* TO" in out
    assert "WARNING: table shop.nokey has no primary key" in out
    assert "Traceback" not in result.stderr


def test_run_refuses_with_one_line(tmp_path, misconfigured_mariadb, kafka_bootstrap):
    path = config(tmp_path, misconfigured_mariadb, ["shop.orders"], kafka_bootstrap)
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and lines[-1].startswith(
        "cdcd: error: binlog_format is 'STATEMENT'"
    ), result.stderr


def test_check_passes_on_the_test_server(tmp_path, mysql_url):
    result = run_cli("check", "--config", str(config(tmp_path, mysql_url, ["mysql.user"])))
    assert "binlog_format" not in result.stdout and "binlog_row" not in result.stdout, result.stdout
    assert "REPLICATION" not in result.stdout, result.stdout


def test_unreachable_server(tmp_path, kafka_bootstrap):
    port = free_port()
    path = config(tmp_path, f"mysql://root@127.0.0.1:{port}/", ["a.b"], kafka_bootstrap)
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cdcd: error: cannot connect to MySQL/MariaDB at 127.0.0.1:{port}" in result.stderr


def test_each_missing_privilege_is_named_with_its_grant(my_case, tmp_path, kafka_bootstrap):
    """A real user lacking each privilege: check names the GRANT; the GRANTs, run as
    written, make check pass."""
    db = my_case.database
    my_case.ddl("CREATE TABLE readable (id INT PRIMARY KEY)")
    my_case.ddl("CREATE TABLE unreadable (id INT PRIMARY KEY)")
    user = unique_name("cdc")
    account = f"'{user}'@'%'"
    my_case.ddl(f"CREATE USER {account} IDENTIFIED BY 'cdc-pw'")
    try:
        my_case.ddl(f"GRANT SELECT ON {db}.readable TO {account}")
        my_case.ddl(f"GRANT INSERT ON {db}.unreadable TO {account}")  # seen, not readable
        url = my_case.url.replace("root:root@", f"{user}:cdc-pw@")
        path = config(tmp_path, url, [f"{db}.readable", f"{db}.unreadable"], kafka_bootstrap)

        lacking = run_cli("check", "--config", str(path))
        out = lacking.stdout
        assert lacking.returncode == 1 and "Traceback" not in lacking.stderr, out
        monitor = "BINLOG MONITOR" if my_case.flavor == "mariadb" else "REPLICATION CLIENT"
        fixes = [
            fix_of(out, "the user lacks the REPLICATION SLAVE privilege"),
            fix_of(out, f"the user lacks {monitor} to read binlog positions"),
            fix_of(out, f"may not SELECT from 1 captured table(s) (`{db}`.`unreadable`)"),
        ]
        assert fixes == [
            f"GRANT REPLICATION SLAVE ON *.* TO {account}",
            f"GRANT {monitor} ON *.* TO {account}",
            f"GRANT SELECT ON `{db}`.`unreadable` TO {account}",
        ]
        if my_case.flavor == "mysql":  # its consistent view takes a brief global read lock
            fixes.append(fix_of(out, "the user lacks RELOAD"))
            assert fixes[-1] == f"GRANT RELOAD ON *.* TO {account}"
            assert "2 error(s), 2 warning(s)" in out, out
        else:
            assert "RELOAD" not in out and "2 error(s), 1 warning(s)" in out, out

        for fix in fixes:
            my_case.ddl(fix)
        ready = run_cli("check", "--config", str(path))
        assert ready.returncode == 0, ready.stdout
        assert "mysql source: OK" in ready.stdout, ready.stdout
    finally:
        my_case.ddl(f"DROP USER {account}")
