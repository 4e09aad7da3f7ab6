"""`cdcd check` against a Kafka that wants a SASL login and enforces ACLs: a wrong
password, then each permission missing, named with its grant; with the grants, OK. The
broker is a private one (SASL_PLAINTEXT, PLAIN, StandardAuthorizer)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from offsets_support import Broker
from support import daemon, run_cli, unique_name, write_config

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "admin-secret"
CDC_PASSWORD = "cdc-secret"
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="admin" password="{ADMIN_PASSWORD}" '
    f'user_admin="{ADMIN_PASSWORD}" user_cdc="{CDC_PASSWORD}";'
)

# Kafka's AclOperation / ResourceType / PatternType / AclPermissionType codes.
TOPIC, GROUP, TRANSACTIONAL_ID = 2, 3, 5
LITERAL, PREFIXED = 3, 4
READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS = 3, 4, 5, 8, 10
ALLOW = 3


class SaslBroker(Broker):
    """The private broker, with SASL PLAIN on its client listener and ACLs enforced."""

    def secure(self) -> None:
        props = self.props.read_text()
        props = props.replace("PLAINTEXT://", "SASL_PLAINTEXT://").replace(
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        )
        props = props.replace(
            "inter.broker.listener.name=PLAINTEXT", "inter.broker.listener.name=SASL_PLAINTEXT"
        )
        props += (
            "sasl.enabled.mechanisms=PLAIN\n"
            "sasl.mechanism.inter.broker.protocol=PLAIN\n"
            f"listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}\n"
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
            # ANONYMOUS: the controller's own PLAINTEXT listener.
            "super.users=User:admin;User:ANONYMOUS\n"
        )
        self.props.write_text(props)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    kafka = SaslBroker(tmp_path_factory.mktemp("kafka-sasl"))
    kafka.format()
    kafka.secure()
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop(signal.SIGKILL)


@pytest.fixture
def name(pg_dsn: str) -> Iterator[str]:
    """The daemon's name, and its table public.<name>."""
    name = unique_name("acl")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{name} (id int PRIMARY KEY)")
        try:
            yield name
        finally:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (f"cdcd_{name}",),
            )
            conn.execute(f"DROP PUBLICATION IF EXISTS cdcd_{name}")
            conn.execute(f"DROP TABLE public.{name}")


def grant(bootstrap: str, *acls: tuple[int, str, int, int]) -> None:
    """Allow User:cdc each (resource type, name, pattern type, operation), as admin."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.protocol.admin import CreateAclsRequest

    async def create() -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_plain_username="admin",
            sasl_plain_password=ADMIN_PASSWORD,
        )
        await admin.start()
        try:
            for kind, name, pattern, operation in acls:
                request = CreateAclsRequest(kind, name, pattern, "User:cdc", "*", operation, ALLOW)
                response = await admin._send_request(request)
                assert all(code == 0 for code, _ in response.creation_responses), response
        finally:
            await admin.close()

    asyncio.run(create())


def test_login_and_permissions_are_checked_with_their_fixes(
    broker: SaslBroker, pg_dsn: str, name: str, tmp_path: Path
):
    offsets_topic = f"{name}-offsets"
    status_topic, dedup_topic = f"{name}-status", f"{name}-dedup"
    config = {
        "name": name,
        "source": {"kind": "postgres", "dsn": pg_dsn, "tables": [f"public.{name}"]},
        "sink": {
            "kind": "kafka",
            "bootstrap_servers": broker.bootstrap,
            "topic_prefix": name,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "cdc",
            "sasl_password_env": "CDCD_TEST_SASL_PASSWORD",
        },
        "offsets": {"topic": offsets_topic},
        "ha": {"status_topic": status_topic, "dedup_topic": dedup_topic},
    }
    path = str(write_config(tmp_path / "acl.toml", config))

    def check(password: str = CDC_PASSWORD):
        result = run_cli("check", "--config", path, env={"CDCD_TEST_SASL_PASSWORD": password})
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def check_until_ok() -> str:
        deadline = time.monotonic() + 20  # ACLs reach the broker through its metadata log
        while True:
            result = check()
            if result.returncode == 0 or time.monotonic() > deadline:
                assert result.returncode == 0, result.stdout
                return result.stdout
            time.sleep(1)

    wrong = check("not-the-password")
    assert wrong.returncode == 1
    login = f"Kafka at {broker.bootstrap} refused the SASL login of 'cdc'"
    assert f"ERROR: {login}" in wrong.stdout
    assert "fix: check sink.sasl_username, the password (sink.sasl_password_env" in wrong.stdout
    run = run_cli("run", "--config", path, env={"CDCD_TEST_SASL_PASSWORD": "not-the-password"})
    assert run.returncode == 1 and run.stderr.startswith(f"cdcd: error: {login}"), run.stderr
    assert "check sink.sasl_username" in run.stderr

    refused = check()
    assert refused.returncode == 1
    for needle in (
        f"the offsets topic {offsets_topic!r} does not exist and cannot be created",
        f"fix: grant CREATE on Topic {offsets_topic}",
        f"topics named {name}.* cannot be created",
        f"fix: grant CREATE on topics prefixed {name}",
        f"Kafka refuses the transactional id cdcd-{name}",
        f"fix: grant WRITE and DESCRIBE on TransactionalId cdcd-{name}",
        f"Kafka refuses the consumer group cdcd-{name}",
        f"fix: grant READ and DESCRIBE on Group cdcd-{name}",
        f"the status topic (ha.status_topic) {status_topic!r} does not exist and cannot be",
        f"fix: grant CREATE on Topic {status_topic}",
        f"the dedup topic (ha.dedup_topic) {dedup_topic!r} does not exist and cannot be",
        f"fix: grant CREATE on Topic {dedup_topic} (an active/standby pair needs READ and",
        "6 error(s), 0 warning(s)",  # not the signal channel's group: said by the one above
    ):
        assert needle in refused.stdout, refused.stdout

    # What the fixes say, no more: then check passes, and so does the daemon.
    grant(
        broker.bootstrap,
        *[
            (TOPIC, topic, LITERAL, op)
            for topic in (offsets_topic, status_topic, dedup_topic)
            for op in (CREATE, DESCRIBE, READ, WRITE)
        ],
        *[(TOPIC, name, PREFIXED, op) for op in (CREATE, DESCRIBE, WRITE)],
        (TRANSACTIONAL_ID, f"cdcd-{name}", LITERAL, WRITE),
        (GROUP, f"cdcd-{name}", LITERAL, READ),
    )
    signals = check_until_ok()  # with a warning
    assert (
        f"WARNING: Kafka refuses the consumer group cdcd-{name}-signals of the signal "
        "channel: the daemon streams, but reads no signals from topic cdcd-signals"
    ) in signals, signals
    assert (
        f"fix: grant READ on Group cdcd-{name}-signals and READ, DESCRIBE on Topic cdcd-signals"
        in signals
    )
    grant(
        broker.bootstrap,
        (GROUP, f"cdcd-{name}-signals", LITERAL, READ),
        *[(TOPIC, "cdcd-signals", LITERAL, op) for op in (READ, DESCRIBE)],
    )
    assert f"kafka sink at {broker.bootstrap}: OK" in check_until_ok()
    # The daemon's environment is the test's: its password comes from a file.
    secret = tmp_path / "sasl.secret"
    secret.write_text(CDC_PASSWORD)
    sink = {k: v for k, v in config["sink"].items() if k != "sasl_password_env"}
    streaming = {**config, "sink": {**sink, "sasl_password_file": str(secret)}}
    with daemon(tmp_path, streaming) as d:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"INSERT INTO public.{name} VALUES (1)")
        d.wait_for_log('"topics created"')
        assert d.terminate() == 0, d.log_text()[-3000:]

    # The offsets topic (and the pair's dedup topic, compacted too) now exist; without
    # DESCRIBE_CONFIGS their policies are not known.
    unknown = check()
    assert unknown.returncode == 0, unknown.stdout
    assert (
        f"WARNING: Kafka does not tell cdcd the cleanup.policy of the offsets topic "
        f"{offsets_topic!r}" in unknown.stdout
    )
    assert f"fix: grant DESCRIBE_CONFIGS on Topic {offsets_topic}" in unknown.stdout
    assert f"fix: grant DESCRIBE_CONFIGS on Topic {dedup_topic}" in unknown.stdout
    grant(
        broker.bootstrap,
        *[(TOPIC, topic, LITERAL, DESCRIBE_CONFIGS) for topic in (offsets_topic, dedup_topic)],
    )
    assert f"kafka sink at {broker.bootstrap}: OK" in check_until_ok()
