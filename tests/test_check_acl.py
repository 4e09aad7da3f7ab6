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
from support import run_cli, unique_name, write_config

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
READ, WRITE, CREATE, DESCRIBE = 3, 4, 5, 8
ALLOW = 3


class SaslBroker(Broker):
    """The private broker, with SASL PLAIN on its client listener and ACLs enforced."""

    def secure(self) -> None:
        props = self.props.read_text()
        props = props.replace("PLAINTEXT://", "SASL_PLAINTEXT://").replace(
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        )
        props = props.replace("inter.broker.listener.name=PLAINTEXT", "inter.broker.listener.name=SASL_PLAINTEXT")
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
def table(pg_dsn: str) -> Iterator[str]:
    name = unique_name("acl")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{name} (id int PRIMARY KEY)")
        try:
            yield f"public.{name}"
        finally:
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
    broker: SaslBroker, pg_dsn: str, table: str, tmp_path: Path, monkeypatch
):
    name = unique_name("acl")
    offsets_topic = f"{name}-offsets"
    config = {
        "name": name,
        "source": {"kind": "postgres", "dsn": pg_dsn, "tables": [table]},
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
    }
    path = str(write_config(tmp_path / "acl.toml", config))

    def check(password: str):
        result = run_cli("check", "--config", path, env={"CDCD_TEST_SASL_PASSWORD": password})
        assert "Traceback" not in result.stderr, result.stderr
        return result

    wrong = check("not-the-password")
    assert wrong.returncode == 1
    assert f"ERROR: Kafka at {broker.bootstrap} refused the SASL login of 'cdc'" in wrong.stdout
    assert "fix: check sink.sasl_username, the password (sink.sasl_password_env" in wrong.stdout

    refused = check(CDC_PASSWORD)
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
        "4 error(s), 0 warning(s)",
    ):
        assert needle in refused.stdout, refused.stdout

    grant(
        broker.bootstrap,
        *[(TOPIC, offsets_topic, LITERAL, op) for op in (CREATE, DESCRIBE, READ, WRITE)],
        *[(TOPIC, name, PREFIXED, op) for op in (CREATE, DESCRIBE, WRITE)],
        (TRANSACTIONAL_ID, f"cdcd-{name}", LITERAL, WRITE),
        (GROUP, f"cdcd-{name}", LITERAL, READ),
    )
    deadline = time.monotonic() + 20  # the ACLs reach the broker through its metadata log
    while True:
        granted = check(CDC_PASSWORD)
        if granted.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert granted.returncode == 0, granted.stdout
    assert f"kafka sink at {broker.bootstrap}: OK" in granted.stdout
