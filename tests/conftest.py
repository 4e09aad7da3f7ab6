"""Session fixtures for the real servers of scripts/testenv.

Where the connection strings come from, first match wins:
  1. the environment (CDCD_TEST_PG_DSN, CDCD_TEST_MYSQL_URL, CDCD_TEST_KAFKA_BOOTSTRAP, and
     optionally CDCD_TEST_MYSQL8_URL), e.g. `eval "$(scripts/testenv up)"` or CI's own servers;
  2. .testenv/env, written by `scripts/testenv up`, if its servers answer;
  3. otherwise `scripts/testenv up` is run once, here (and left running: `scripts/testenv down`
     or its watchdog stops it).

Servers are only started when a test asks for one of these fixtures; such tests get the
`integration` marker automatically, so `pytest -m "not integration"` needs no server.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# Scenarios shared by the sources' test modules: their asserts explain themselves too.
pytest.register_assert_rewrite("snapshot_cases", "snapshot_support", "support", "pg_support")
# PostgreSQL test cases (the fixture pg_case) and hosts in network namespaces (the fixture
# netns_hosts), for tests of any folder.
pytest_plugins = ("pg_support", "netns")

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".testenv" / "env"
TESTENV = ROOT / "scripts" / "testenv"
REQUIRED = ("CDCD_TEST_PG_DSN", "CDCD_TEST_MYSQL_URL", "CDCD_TEST_KAFKA_BOOTSTRAP")
# Servers that may be missing (their tests skip), and what an environment of
# scripts/testenv offers over TLS (an older one, or CI's own servers, may not).
OPTIONAL_SERVERS = ("CDCD_TEST_MYSQL8_URL",)
MYSQL_REPLICA = ("CDCD_TEST_MYSQL_REPLICA_URL",)
SCHEMA_REGISTRY = ("CDCD_TEST_SCHEMA_REGISTRY_URL",)
KAFKA_SASL_SSL = (
    "CDCD_TEST_KAFKA_SASL_SSL_BOOTSTRAP",
    "CDCD_TEST_KAFKA_SASL_USER",
    "CDCD_TEST_KAFKA_SASL_PASSWORD",
    "CDCD_TEST_TLS_CA",
    "CDCD_TEST_TLS_OTHER_CA",
)
PG_TLS = (
    "CDCD_TEST_PG_TLS_DSN",
    "CDCD_TEST_PG_CERT_DSN",
    "CDCD_TEST_PG_CLIENT_CERT",
    "CDCD_TEST_PG_CLIENT_KEY",
    "CDCD_TEST_TLS_CA",
    "CDCD_TEST_TLS_OTHER_CA",
)
OPTIONAL = OPTIONAL_SERVERS + MYSQL_REPLICA + SCHEMA_REGISTRY + KAFKA_SASL_SSL + PG_TLS
SERVER_FIXTURES = {
    "testenv",
    "pg_dsn",
    "mysql_url",
    "mysql8_url",
    "mysql_replica_url",
    "schema_registry_url",
    "kafka_bootstrap",
    "kafka_sasl_ssl",
    "pg_tls",
}


def _parse_exports(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            words = words[1:]
        for word in words:
            key, sep, value = word.partition("=")
            if sep and key.startswith("CDCD_TEST"):
                env[key] = value
    return env


def _answers(address: str) -> bool:
    """True if the host:port of a URL or of a host:port string accepts TCP connections."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


def _from_file() -> dict[str, str] | None:
    if not ENV_FILE.exists():
        return None
    env = _parse_exports(ENV_FILE.read_text())
    servers = [env[k] for k in (*REQUIRED, *OPTIONAL_SERVERS) if k in env]
    if all(k in env for k in REQUIRED) and all(_answers(v) for v in servers):
        return env
    return None


def _start() -> dict[str, str]:
    print("\nconftest: starting the test servers: scripts/testenv up", file=sys.stderr)
    p = subprocess.run([str(TESTENV), "up"], capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        pytest.fail(
            f"scripts/testenv up failed ({p.returncode}):\n{p.stderr}{p.stdout}", pytrace=False
        )
    return _parse_exports(p.stdout)


@pytest.fixture(scope="session")
def testenv() -> dict[str, str]:
    """All CDCD_TEST_* connection strings of the running test environment."""
    if all(os.environ.get(k) for k in REQUIRED):
        return {k: os.environ[k] for k in REQUIRED + OPTIONAL if os.environ.get(k)}
    env = _from_file() or _start()
    missing = [k for k in REQUIRED if not env.get(k)]
    if missing:
        pytest.fail(f"test environment lacks {', '.join(missing)}", pytrace=False)
    return env


@pytest.fixture(scope="session")
def pg_dsn(testenv: dict[str, str]) -> str:
    """postgresql://postgres:postgres@127.0.0.1:25432/cdcd_test (superuser, wal_level=logical)."""
    return testenv["CDCD_TEST_PG_DSN"]


@pytest.fixture(scope="session")
def mysql_url(testenv: dict[str, str]) -> str:
    """mysql://root:root@127.0.0.1:23306/ (MariaDB, ROW binlog, GTID strict mode)."""
    return testenv["CDCD_TEST_MYSQL_URL"]


@pytest.fixture(scope="session")
def mysql8_url(testenv: dict[str, str]) -> str | None:
    """mysql://root:root@127.0.0.1:23307/ (real MySQL 8.0.15), or None if not available."""
    return testenv.get("CDCD_TEST_MYSQL8_URL") or None


@pytest.fixture(scope="session")
def kafka_bootstrap(testenv: dict[str, str]) -> str:
    """127.0.0.1:29092 (single KRaft node; transactions, compaction, groups work)."""
    return testenv["CDCD_TEST_KAFKA_BOOTSTRAP"]


@dataclass(frozen=True)
class KafkaSaslSsl:
    """The broker's SASL_SSL listener: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for one user,
    a certificate for 127.0.0.1 and localhost signed by ``ca`` (``other_ca`` signed none)."""

    bootstrap: str
    username: str
    password: str
    ca: str
    other_ca: str


@dataclass(frozen=True)
class PgTls:
    """PostgreSQL with ``ssl = on``: ``dsn`` logs in a superuser allowed over TLS only (with
    a password), ``cert_dsn`` one that logs in with ``client_cert``/``client_key``."""

    dsn: str
    cert_dsn: str
    client_cert: str
    client_key: str
    ca: str
    other_ca: str


def _tls_settings(testenv: dict[str, str], keys: tuple[str, ...], what: str) -> list[str]:
    missing = [k for k in keys if not testenv.get(k)]
    if missing:
        why = (
            f"the test environment has no {what} ({', '.join(missing)} unset): one started by "
            "an older scripts/testenv; scripts/testenv down, then up, makes it"
        )
        if os.environ.get("CI"):  # CI's environment is made fresh: it must have them
            pytest.fail(why)
        pytest.skip(why)
    return [testenv[k] for k in keys]


@pytest.fixture(scope="session")
def mysql_replica_url(testenv: dict[str, str]) -> str:
    """mysql://root:root@127.0.0.1:23308/: a GTID replica of mysql_url (read_only)."""
    return _tls_settings(testenv, MYSQL_REPLICA, "MariaDB replica")[0]


@pytest.fixture(scope="session")
def schema_registry_url(testenv: dict[str, str]) -> str:
    """http://127.0.0.1:28081: Karapace, a Confluent-compatible schema registry (optional in
    scripts/testenv: the test is skipped without it)."""
    url = testenv.get("CDCD_TEST_SCHEMA_REGISTRY_URL")
    if not url:
        pytest.skip("no schema registry in the test environment (scripts/testenv: Karapace)")
    return url


@pytest.fixture(scope="session")
def kafka_sasl_ssl(testenv: dict[str, str]) -> KafkaSaslSsl:
    return KafkaSaslSsl(*_tls_settings(testenv, KAFKA_SASL_SSL, "Kafka SASL_SSL listener"))


@pytest.fixture(scope="session")
def pg_tls(testenv: dict[str, str]) -> PgTls:
    return PgTls(*_tls_settings(testenv, PG_TLS, "PostgreSQL over TLS"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
