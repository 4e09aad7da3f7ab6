"""`cdcd check`: the source's findings, then Kafka's, with their fixes; errors exit 1,
warnings alone 0 (1 with --strict). Real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import consume, daemon, fix_of, free_port, run_cli, unique_name, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def table(pg_dsn: str) -> Iterator[str]:
    """A table with a primary key, and ``<it>_nopk`` without one."""
    name = unique_name("chk")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{name} (id int PRIMARY KEY)")
        conn.execute(f"CREATE TABLE public.{name}_nopk (v int)")
        try:
            yield f"public.{name}"
        finally:
            conn.execute(f"DROP TABLE public.{name}, public.{name}_nopk")


def config(pg_dsn: str, bootstrap: str, tables: list[str], **sections: Any) -> dict[str, Any]:
    name = unique_name("chk")
    return {
        "name": name,
        "source": {"kind": "postgres", "dsn": pg_dsn, "tables": tables},
        "sink": {"kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": name},
        **sections,
    }


def check(tmp_path: Path, cfg: dict[str, Any], *args: str):
    path = write_config(tmp_path / f"{cfg['name']}.toml", cfg)
    result = run_cli("check", "--config", str(path), *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_a_healthy_setup_is_ready(tmp_path, pg_dsn, kafka_bootstrap, table):
    cfg = config(pg_dsn, kafka_bootstrap, [table])
    result = check(tmp_path, cfg)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["tables -> topics (1):", f"  {table} -> {cfg['name']}.{table}"]
    assert lines[2:] == [
        "postgres source: OK",
        f"kafka sink at {kafka_bootstrap}: OK",
        "ready to stream",
    ], result.stdout


def test_unreachable_kafka_is_an_error_naming_the_key(tmp_path, pg_dsn, table):
    port = free_port()
    result = check(tmp_path, config(pg_dsn, f"127.0.0.1:{port}", [table]))
    assert result.returncode == 1, result.stdout
    assert "postgres source: OK" in result.stdout
    assert f"ERROR: cannot reach Kafka at 127.0.0.1:{port}: Connection refused" in result.stdout
    assert "fix: check sink.bootstrap_servers" in result.stdout
    assert "ready to stream" not in result.stdout.replace("not ready to stream", "")


def test_warnings_alone_pass_unless_strict(tmp_path, pg_dsn, kafka_bootstrap, table):
    cfg = config(pg_dsn, kafka_bootstrap, [f"{table}_nopk"])
    result = check(tmp_path, cfg)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"WARNING: table {table}_nopk has no primary key" in result.stdout
    assert "0 error(s), 1 warning(s): ready to stream" in result.stdout
    strict = check(tmp_path, cfg, "--strict")
    assert strict.returncode == 1, strict.stdout
    assert "0 error(s), 1 warning(s): not ready to stream" in strict.stdout


def test_an_offsets_topic_without_compaction_is_an_error(tmp_path, pg_dsn, kafka_bootstrap, table):
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = unique_name("offsets")

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "delete"})]
            )
        finally:
            await admin.close()

    asyncio.run(create())
    result = check(tmp_path, config(pg_dsn, kafka_bootstrap, [table], offsets={"topic": topic}))
    assert result.returncode == 1, result.stdout
    assert f"ERROR: the offsets topic {topic!r} has cleanup.policy=delete" in result.stdout
    assert "or name another topic in offsets.topic" in result.stdout


def test_what_kafka_cannot_create_names_the_key(tmp_path, pg_dsn, kafka_bootstrap, table):
    cfg = config(
        pg_dsn,
        kafka_bootstrap,
        [table],
        offsets={"topic": unique_name("offsets"), "replication_factor": 2},
    )
    cfg["sink"]["replication_factor"] = 3
    result = check(tmp_path, cfg)
    assert result.returncode == 1, result.stdout
    assert "does not exist and cannot be created" in result.stdout
    assert (
        "fix: set offsets.replication_factor to at most the number of brokers (1)" in result.stdout
    )
    assert "fix: set sink.replication_factor to at most the number of brokers (1)" in result.stdout


def test_an_unreachable_source_is_a_finding_and_kafka_is_checked_too(tmp_path, kafka_bootstrap):
    port = free_port()
    result = check(
        tmp_path,
        config(f"postgresql://postgres@127.0.0.1:{port}/db", kafka_bootstrap, ["public.t"]),
    )
    assert result.returncode == 1
    assert (
        f"ERROR: cannot connect to PostgreSQL at 127.0.0.1:{port}: connection to server at "
        f'"127.0.0.1", port {port} failed: Connection refused; Is the server running'
    ) in result.stdout
    assert "\t" not in result.stdout
    assert f"kafka sink at {kafka_bootstrap}: OK" in result.stdout


def test_the_stdout_sink_has_nothing_to_check(tmp_path, pg_dsn, table):
    cfg = config(pg_dsn, "", [table])
    cfg["sink"] = {"kind": "stdout"}
    result = check(tmp_path, cfg)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stdout sink: nothing to check" in result.stdout


# -- PostgreSQL privileges: a real role lacking each, the GRANTs check names, then OK ---


def _dsn_of(dsn: str, database: str, user: str | None = None, password: str | None = None) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    netloc = parts.netloc if user is None else f"{user}:{password}@{parts.netloc.split('@')[-1]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


def test_each_missing_postgres_privilege_is_named_with_its_grant(tmp_path, pg_dsn, kafka_bootstrap):
    name = unique_name("priv")
    role = f"{name}_cdc"
    admin = psycopg.connect(pg_dsn, autocommit=True)
    admin.execute(f"CREATE DATABASE {name}")
    db = psycopg.connect(_dsn_of(pg_dsn, name), autocommit=True)
    try:
        db.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'cdc-pw'")
        db.execute(f"REVOKE CONNECT ON DATABASE {name} FROM PUBLIC")
        db.execute("CREATE SCHEMA shop")
        db.execute("CREATE TABLE shop.orders (id int PRIMARY KEY)")
        db.execute("INSERT INTO shop.orders VALUES (1)")
        db.execute("CREATE TABLE public.heartbeat (id int PRIMARY KEY, n int)")
        heartbeat = (
            "INSERT INTO public.heartbeat VALUES (1, 1) "
            "ON CONFLICT (id) DO UPDATE SET n = heartbeat.n + 1"
        )
        cfg = config(
            _dsn_of(pg_dsn, name, role, "cdc-pw"),
            kafka_bootstrap,
            ["shop.orders"],
            offsets={"topic": f"{name}-offsets"},
        )
        cfg["name"] = name
        cfg["sink"]["topic_prefix"] = name
        cfg["source"]["heartbeat_action_query"] = heartbeat

        refused = check(tmp_path, cfg)
        assert refused.returncode == 1
        assert f'permission denied for database "{name}"' in refused.stdout, refused.stdout
        assert f"grant it: GRANT CONNECT ON DATABASE {name} TO {role}" in refused.stdout
        db.execute(f"GRANT CONNECT ON DATABASE {name} TO {role}")

        lacking = check(tmp_path, cfg)
        out = lacking.stdout
        assert lacking.returncode == 1, out
        assert fix_of(out, f"role {role!r} has no REPLICATION attribute").startswith(
            f"ALTER ROLE {role} REPLICATION"
        )
        create = fix_of(out, "creating it needs CREATE on database")
        assert create.startswith(f"GRANT CREATE ON DATABASE {name} TO {role};"), create
        publish = fix_of(out, "only a table's owner may publish it")
        statement = f"CREATE PUBLICATION cdcd_{name} FOR TABLE shop.orders"
        assert publish.startswith(f"as their owner or a superuser: {statement};"), publish
        select = fix_of(out, "may not SELECT from 1 captured table(s) (shop.orders)")
        assert (
            select == f"GRANT USAGE ON SCHEMA shop TO {role}; GRANT SELECT ON shop.orders TO {role}"
        )
        denied = fix_of(
            out, "source.heartbeat_action_query fails: permission denied for table heartbeat"
        )
        assert denied.startswith(f"GRANT SELECT, INSERT, UPDATE ON heartbeat TO {role} (")
        assert "4 error(s), 1 warning(s)" in out, out

        # The fixes, run as written (the publication created by its owner, the DBA).
        for statement_run in (
            f"ALTER ROLE {role} REPLICATION",
            create.split(";")[0],
            statement,
            *select.split("; "),
            denied.split(" (")[0],
        ):
            db.execute(statement_run)
        ready = check(tmp_path, cfg)
        assert ready.returncode == 0, ready.stdout
        assert "postgres source: OK" in ready.stdout, ready.stdout
        assert db.execute("SELECT count(*) FROM public.heartbeat").fetchone() == (0,), (
            "check ran the heartbeat query without rolling it back"
        )

        # Those privileges suffice: an initial snapshot, the stream, the heartbeats.
        cfg["snapshot"] = {"mode": "initial"}
        cfg["source"]["heartbeat_interval_s"] = 1.0
        with daemon(tmp_path, cfg) as d:
            db.execute("INSERT INTO shop.orders VALUES (2)")
            messages = consume(kafka_bootstrap, [f"{name}.shop.orders"], expect=2, settle=1)
            assert [(m.value["op"], m.key["id"]) for m in messages] == [("r", 1), ("c", 2)]
            assert d.terminate() == 0, d.log_text()[-2000:]
        assert "heartbeat_action_query failed" not in d.log_text()
        assert db.execute("SELECT n > 0 FROM public.heartbeat").fetchone() == (True,)
    finally:
        db.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE database = %s AND NOT active",
            (name,),
        )
        db.close()
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()
