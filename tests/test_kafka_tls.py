"""Kafka over TLS with a SASL login: the test environment's SASL_SSL listener.

The daemon streams a PostgreSQL row into Kafka through it with each mechanism (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512), in Kafka transactions; every command that talks to Kafka
(``check``, ``offsets show/reset``, ``snapshot``) works through it. A wrong password, a
CA that did not sign the broker's certificate and a host name the certificate does not
hold each stop every command at once with one line naming the key to fix, exit code 1.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from pg_support import PgCase
from support import assert_one_line_error, consume, daemon, run_cli, write_config

pytestmark = pytest.mark.integration

MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def sasl_sink(kafka_sasl_ssl: Any, tmp_path: Path, mechanism: str, **keys: Any) -> dict[str, Any]:
    """``[sink]`` keys for the SASL_SSL listener (the password in a file)."""
    secret = tmp_path / f"kafka-{mechanism}.password"
    secret.write_text(kafka_sasl_ssl.password + "\n")
    return {
        "bootstrap_servers": kafka_sasl_ssl.bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_username": kafka_sasl_ssl.username,
        "sasl_password_file": str(secret),
        "ssl_cafile": kafka_sasl_ssl.ca,
        **keys,
    }


def orders(pg_case: PgCase) -> None:
    pg_case.execute(f"CREATE TABLE {pg_case.schema}.orders (id int PRIMARY KEY, note text)")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_the_daemon_streams_through_sasl_ssl(pg_case: PgCase, kafka_sasl_ssl, mechanism: str):
    orders(pg_case)
    config = pg_case.config(["orders"], **sasl_sink(kafka_sasl_ssl, pg_case.tmp_path, mechanism))
    with daemon(pg_case.tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {pg_case.schema}.orders VALUES (1, 'over SASL_SSL')")
        # read back through the same broker's PLAINTEXT listener, read_committed
        messages = consume(pg_case.bootstrap, [pg_case.topic("orders")], expect=1)
        assert d.terminate() == 0
    assert [(m.key, m.value["op"], m.value["after"]) for m in messages] == [
        ({"id": 1}, "c", {"id": 1, "note": "over SASL_SSL"})
    ]
    assert '"delivery":"exactly-once"' in d.log_text(), d.log_text()[-2000:]


def test_every_kafka_command_works_through_sasl_ssl(pg_case: PgCase, kafka_sasl_ssl):
    orders(pg_case)
    pg_case.execute(f"INSERT INTO {pg_case.schema}.orders VALUES (1, 'before')")
    sink = sasl_sink(kafka_sasl_ssl, pg_case.tmp_path, "SCRAM-SHA-512")
    config = pg_case.config(["orders"], **sink)
    path = write_config(pg_case.tmp_path / "cli.toml", config)
    checked = run_cli("check", "--config", str(path))
    assert checked.returncode == 0, (checked.stdout, checked.stderr)
    assert f"kafka sink at {kafka_sasl_ssl.bootstrap}: OK" in checked.stdout, checked.stdout
    with daemon(pg_case.tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {pg_case.schema}.orders VALUES (2, 'streamed')")
        consume(pg_case.bootstrap, [pg_case.topic("orders")], expect=1, settle=0)
        shown = run_cli("offsets", "show", "--config", str(path))
        assert shown.returncode == 0, shown.stderr
        assert f"{config['name']} (running: " in shown.stdout, shown.stdout
        snapshot = run_cli(
            "snapshot", "--config", str(path), "--table", f"{pg_case.schema}.orders", timeout=120
        )
        assert snapshot.returncode == 0, (snapshot.stdout, snapshot.stderr)
        messages = consume(pg_case.bootstrap, [pg_case.topic("orders")], expect=3)
        assert d.terminate() == 0
    assert sorted((m.key["id"], m.value["op"]) for m in messages) == [(1, "r"), (2, "c"), (2, "r")]
    reset = run_cli("offsets", "reset", "--to", "latest", "--yes", "--config", str(path))
    assert reset.returncode == 0, (reset.stdout, reset.stderr)
    assert "stored: " in reset.stdout, reset.stdout
    shown = run_cli("offsets", "show", "--config", str(path))
    assert shown.returncode == 0 and "not running" in shown.stdout, (shown.stdout, shown.stderr)


def _alias_of_loopback() -> str | None:
    """A host name other than localhost that resolves to 127.0.0.1 (the broker's
    certificate names only 127.0.0.1 and localhost), from /etc/hosts or the host's own."""
    names = [socket.gethostname()]
    try:
        for line in Path("/etc/hosts").read_text().splitlines():
            fields = line.split("#")[0].split()
            if fields[:1] == ["127.0.0.1"]:
                names += fields[1:]
    except OSError:
        pass
    for name in names:
        if name in ("localhost", "localhost.localdomain") or "." in name:
            continue
        try:
            if socket.gethostbyname(name) == "127.0.0.1":
                return name
        except OSError:
            continue
    return None


def _failure_keys(kafka_sasl_ssl: Any, tmp_path: Path, failure: str) -> tuple[dict, list[str]]:
    """Sink keys that make ``failure``, and what its line must say."""
    if failure == "wrong password":
        secret = tmp_path / "wrong.password"
        secret.write_text("not-the-password\n")
        return {"sasl_password_file": str(secret)}, ["refused the SASL login", "sink.sasl_"]
    if failure == "untrusted certificate":
        return {"ssl_cafile": kafka_sasl_ssl.other_ca}, ["not signed by", "sink.ssl_cafile"]
    alias = _alias_of_loopback()
    if alias is None:
        pytest.skip("no host name but localhost resolves to 127.0.0.1 here")
    port = kafka_sasl_ssl.bootstrap.rsplit(":", 1)[1]
    return {"bootstrap_servers": f"{alias}:{port}"}, [
        f"not valid for '{alias}'",
        "sink.bootstrap_servers",
    ]


COMMANDS = {
    "run": ["run"],
    "check": ["check"],
    "offsets show": ["offsets", "show"],
    "offsets reset": ["offsets", "reset", "--to", "latest", "--yes"],
    "snapshot": ["snapshot", "--table", "public.orders"],
}


@pytest.mark.parametrize("failure", ["wrong password", "untrusted certificate", "name mismatch"])
def test_each_failure_is_one_line_naming_the_key(pg_dsn, kafka_sasl_ssl, tmp_path, failure):
    keys, needles = _failure_keys(kafka_sasl_ssl, tmp_path, failure)
    name = f"tls-{failure.replace(' ', '-')}"
    config = {
        "name": name,
        "source": {"kind": "postgres", "dsn": pg_dsn, "tables": ["public.orders"]},
        "sink": {
            "kind": "kafka",
            "topic_prefix": name,
            **sasl_sink(kafka_sasl_ssl, tmp_path, "SCRAM-SHA-256", **keys),
        },
    }
    path = write_config(tmp_path / "failing.toml", config)
    lines = []
    for label, command in COMMANDS.items():
        started = time.monotonic()
        result = run_cli(*command, "--config", str(path))
        took = time.monotonic() - started
        assert took < 20, f"{label}: {took:.1f} s (a retry loop?)"
        if label == "check":  # a finding on standard output, with its fix
            assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
            out = result.stdout.splitlines()
            [at] = [
                i for i, line in enumerate(out) if line.startswith("ERROR: ") and "Kafka" in line
            ]
            line = f"{out[at]} {out[at + 1].strip()}"
            for needle in needles:
                assert needle in line, line
        else:
            line = assert_one_line_error(result, *needles)
        lines.append(f"{label}: {line}")
    print("\n" + "\n".join(lines))


def test_a_consumer_over_tls_stops_at_once(kafka_sasl_ssl, tmp_path):
    """A consumer stopped with a fetch in flight, on uvloop as the daemon runs: the loop
    waited for the broker's TLS close_notify, 30 s in about one stop of eight, before the
    shims closed TLS connections at once."""
    import uvloop
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from cdcd.config import parse_config
    from cdcd.sinks.kafka.client import client_options

    sink = sasl_sink(kafka_sasl_ssl, tmp_path, "PLAIN", kind="kafka", topic_prefix="tls")
    config = parse_config(
        {"name": "tls", "source": {"kind": "postgres", "dsn": "postgresql://h/db"}, "sink": sink}
    )

    async def stops() -> list[float]:
        took = []
        for _ in range(16):
            consumer = AIOKafkaConsumer(
                **client_options(config.sink), isolation_level="read_committed"
            )
            await consumer.start()
            tp = TopicPartition("cdcd-offsets", 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            await consumer.getmany(timeout_ms=300)  # and the next fetch is sent
            started = time.monotonic()
            await consumer.stop()
            took.append(round(time.monotonic() - started, 2))
        return took

    took = uvloop.run(stops())
    assert max(took) < 5, took
