"""Bad input gives one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
from support import free_port, run_cli, unique_name, write_config

PG_BIN = "/usr/lib/postgresql/15/bin"


def assert_one_line_error(result, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cdcd: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def pg_config(dsn: str, bootstrap: str = "127.0.0.1:1") -> dict:
    name = unique_name()
    return {
        "name": name,
        "source": {"kind": "postgres", "dsn": dsn, "tables": ["public.t"]},
        "sink": {"kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": name},
    }


def test_missing_config_file(tmp_path):
    assert_one_line_error(
        run_cli("run", "--config", str(tmp_path / "nope.toml")), "no such configuration file"
    )


def test_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("name = \n")
    assert_one_line_error(run_cli("run", "--config", str(path)), "not valid TOML")


def test_config_errors_name_the_key(tmp_path):
    path = write_config(
        tmp_path / "c.toml",
        {
            "name": "shop",
            "source": {"kind": "postgres", "dsn": "mysql://x/", "tabels": ["a.b"]},
            "sink": {"kind": "kafka", "topic_prefix": "shop"},
        },
    )
    result = run_cli("run", "--config", str(path))
    assert_one_line_error(
        result,
        "source.dsn: must be a URL like postgresql://",
        "source.tabels: is not a known key",
        "sink.bootstrap_servers: is required",
    )
    for command in ("check",):
        assert_one_line_error(run_cli(command, "--config", str(path)), "source.dsn")


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_an_empty_table_list_is_refused(tmp_path, kind):
    # It was a syntax error on PostgreSQL (CREATE PUBLICATION ... FOR TABLE) and silently
    # "capture nothing" on MariaDB.
    config = pg_config("postgresql://cdc@127.0.0.1:1/db")
    if kind == "mysql":
        config["source"]["kind"], config["source"]["dsn"] = "mysql", "mysql://cdc@127.0.0.1:1/"
    config["source"]["tables"] = []
    path = write_config(tmp_path / "c.toml", config)
    message = "source.tables: an empty list captures nothing; leave the key out to capture every table"
    for command in ("run", "check"):
        assert_one_line_error(run_cli(command, "--config", str(path)), message)


def test_missing_password_variable(tmp_path, pg_dsn):
    config = pg_config(pg_dsn)
    config["source"]["password_env"] = "CDCD_TEST_NO_SUCH_VARIABLE"
    path = write_config(tmp_path / "c.toml", config)
    assert_one_line_error(
        run_cli("run", "--config", str(path)),
        "source.password_env",
        "CDCD_TEST_NO_SUCH_VARIABLE is not set",
    )


def test_unreachable_database(tmp_path, kafka_bootstrap):
    port = free_port()
    config = pg_config(f"postgresql://postgres@127.0.0.1:{port}/db", kafka_bootstrap)
    path = write_config(tmp_path / "c.toml", config)
    reason = "Connection refused; Is the server running on that host"
    assert_one_line_error(
        run_cli("run", "--config", str(path)),
        f"cannot connect to PostgreSQL at 127.0.0.1:{port}",
        reason,
    )
    # check reports it as a finding, and checks Kafka too
    result = run_cli("check", "--config", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"ERROR: cannot connect to PostgreSQL at 127.0.0.1:{port}" in result.stdout
    assert reason in result.stdout and "\t" not in result.stdout


def test_unreachable_kafka(tmp_path, pg_dsn):
    port = free_port()
    path = write_config(tmp_path / "c.toml", pg_config(pg_dsn, f"127.0.0.1:{port}"))
    started = time.monotonic()
    assert_one_line_error(
        run_cli("run", "--config", str(path)),
        f"cannot reach Kafka at 127.0.0.1:{port}",
        "sink.bootstrap_servers",
    )
    assert time.monotonic() - started < 45


@pytest.fixture(scope="module")
def replica_pg() -> Iterator[str]:
    """A throwaway PostgreSQL with wal_level=replica: logical decoding impossible."""
    datadir = tempfile.mkdtemp(prefix="cdcd-walreplica-")
    shutil.chown(datadir, "postgres")
    port = free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    as_postgres(f"{PG_BIN}/initdb", "-D", f"{datadir}/data", "-U", "postgres", "--auth=trust")
    as_postgres(
        f"{PG_BIN}/pg_ctl",
        "-D",
        f"{datadir}/data",
        "-l",
        f"{datadir}/log",
        "-w",
        "-o",
        f"-c wal_level=replica -c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={datadir}",
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(f"{PG_BIN}/pg_ctl", "-D", f"{datadir}/data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(datadir, ignore_errors=True)


def test_wal_level_replica_is_refused_with_the_fix(tmp_path, replica_pg, kafka_bootstrap):
    config = pg_config(replica_pg, kafka_bootstrap)
    path = write_config(tmp_path / "c.toml", config)
    assert_one_line_error(
        run_cli("run", "--config", str(path)), "wal_level is 'replica'", "wal_level = logical"
    )
    result = run_cli("check", "--config", str(path))
    assert result.returncode == 1
    assert "ERROR: wal_level is 'replica'" in result.stdout
    assert "fix: set wal_level = logical" in result.stdout
    assert "Traceback" not in result.stderr


def test_check_passes_on_a_ready_server(tmp_path, pg_dsn, kafka_bootstrap):
    import psycopg

    name = unique_name()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{name} (id int PRIMARY KEY)")
        conn.execute(f"CREATE TABLE public.{name}_nopk (v int)")
        try:
            config = pg_config(pg_dsn, kafka_bootstrap)
            config["source"]["tables"] = [f"public.{name}"]
            result = run_cli("check", "--config", str(write_config(tmp_path / "ok.toml", config)))
            assert result.returncode == 0, result.stdout + result.stderr
            assert "OK" in result.stdout
            config["source"]["tables"] = [f"public.{name}_nopk", "public.no_such_table"]
            result = run_cli("check", "--config", str(write_config(tmp_path / "bad.toml", config)))
            assert result.returncode == 1
            assert (
                f"table public.{name}_nopk has no primary key and no replica identity"
                in result.stdout
            )
            assert "REPLICA IDENTITY FULL" in result.stdout
            assert (
                "ERROR: source.tables: 'public.no_such_table' matches no table in database"
                in result.stdout
            )
        finally:
            conn.execute(f"DROP TABLE public.{name}, public.{name}_nopk")


def test_offsets_set_without_a_terminal_needs_yes(tmp_path, pg_dsn, kafka_bootstrap):
    import psycopg
    from support import ROOT, cdcd_command

    config = pg_config(pg_dsn, kafka_bootstrap)
    path = str(write_config(tmp_path / "c.toml", config))
    slot = f"cdcd_{config['name']}"  # a position to set must be one the slot can stream from
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        (lsn,) = conn.execute(
            "SELECT lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,)
        ).fetchone()
        try:
            for command in (["set", "--position", str(lsn)], ["reset", "--to", "latest"]):
                result = subprocess.run(
                    cdcd_command("offsets", *command, "--config", path),
                    stdin=subprocess.DEVNULL,  # no terminal, no answer
                    capture_output=True,
                    text=True,
                    timeout=60,
                    cwd=ROOT,
                )
                assert "Aborted" not in result.stderr
                assert_one_line_error(result, "--yes is needed to confirm without one (nothing changed)")
                assert result.returncode == 1
            shown = run_cli("offsets", "show", "--config", path)
            assert "position: none stored" in shown.stdout, shown.stdout + shown.stderr
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
