"""The servers of scripts/testenv are configured the way cdcd needs them."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import unquote, urlsplit

import psycopg
import pymysql
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

pytestmark = pytest.mark.integration


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _mysql_connect(url: str, **kw) -> pymysql.connections.Connection:
    u = urlsplit(url)
    return pymysql.connect(
        host=u.hostname,
        port=u.port or 3306,
        user=unquote(u.username or ""),
        password=unquote(u.password or ""),
        autocommit=True,
        connect_timeout=10,
        **kw,
    )


# --------------------------------------------------------------------------- PostgreSQL


def test_pg_logical_decoding_with_pgoutput(pg_dsn: str) -> None:
    slot = _name("testenv")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.info.dbname == "cdcd_test"
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert int(conn.execute("SHOW max_replication_slots").fetchone()[0]) >= 10
        assert int(conn.execute("SHOW max_wal_senders").fetchone()[0]) >= 10
        assert conn.execute(
            "SELECT current_setting('server_version_num')::int / 10000"
        ).fetchone() == (15,)
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            row = conn.execute(
                "SELECT plugin, slot_type, database FROM pg_replication_slots WHERE slot_name = %s",
                (slot,),
            ).fetchone()
            assert row == ("pgoutput", "logical", "cdcd_test")
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        assert conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone() == (0,)


def test_pg_replication_connection_over_tcp(pg_dsn: str) -> None:
    """pg_hba.conf lets a password-authenticated replication connection in from 127.0.0.1."""
    with psycopg.connect(pg_dsn, autocommit=True, replication="database") as conn:
        systemid, timeline, xlogpos, dbname = conn.execute("IDENTIFY_SYSTEM").fetchone()
        assert dbname == "cdcd_test"
        assert int(timeline) >= 1


def test_pg_wrong_password_is_refused(pg_dsn: str) -> None:
    u = urlsplit(pg_dsn)
    bad = u._replace(netloc=f"postgres:wrong@{u.hostname}:{u.port}").geturl()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad, connect_timeout=10)


# --------------------------------------------------------------------------- MariaDB


def test_mariadb_binlog_settings(mysql_url: str) -> None:
    with _mysql_connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        assert "MariaDB" in cur.fetchone()[0]
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', "
            "'binlog_row_image', 'binlog_row_metadata', 'gtid_strict_mode', "
            "'server_id', 'skip_name_resolve')"
        )
        variables = dict(cur.fetchall())
        assert variables == {
            "log_bin": "ON",
            "binlog_format": "ROW",
            "binlog_row_image": "FULL",
            "binlog_row_metadata": "FULL",
            "gtid_strict_mode": "ON",
            "server_id": "1",
            "skip_name_resolve": "ON",
        }


def test_mariadb_gtid_position_advances(mysql_url: str) -> None:
    db = _name("testenv")
    with _mysql_connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        try:
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.execute(f"INSERT INTO {db}.t VALUES (1, 'a')")
            cur.execute("SELECT @@gtid_binlog_pos, @@gtid_current_pos")
            binlog_pos, current_pos = cur.fetchone()
            domain, server, seq = binlog_pos.split("-")
            assert (domain, server) == ("0", "1") and int(seq) >= 3
            assert current_pos == binlog_pos
            cur.execute("SHOW MASTER STATUS")
            assert cur.fetchone()[0].startswith("mariadb-bin.")
        finally:
            cur.execute(f"DROP DATABASE {db}")


def test_mysql8_binlog_and_gtid(mysql8_url: str | None) -> None:
    if mysql8_url is None:
        pytest.skip("MySQL 8 is not part of this test environment (CDCD_TEST_MYSQL8_URL unset)")
    db = _name("testenv")
    with _mysql_connect(mysql8_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        major, minor, patch = (int(x) for x in cur.fetchone()[0].split("-")[0].split(".")[:3])
        assert (major, minor, patch) >= (8, 0, 14)
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', "
            "'binlog_row_image', 'binlog_row_metadata', 'gtid_mode', "
            "'enforce_gtid_consistency', 'server_id')"
        )
        assert dict(cur.fetchall()) == {
            "log_bin": "ON",
            "binlog_format": "ROW",
            "binlog_row_image": "FULL",
            "binlog_row_metadata": "FULL",
            "gtid_mode": "ON",
            "enforce_gtid_consistency": "ON",
            "server_id": "2",
        }
        cur.execute(f"CREATE DATABASE {db}")
        try:
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, doc JSON)")
            cur.execute(f"INSERT INTO {db}.t VALUES (1, '{{\"a\": [1, 2]}}')")
            cur.execute("SELECT @@server_uuid, @@gtid_executed")
            server_uuid, executed = cur.fetchone()
            assert executed.replace("\n", "").startswith(f"{server_uuid}:1-")
        finally:
            cur.execute(f"DROP DATABASE {db}")


# --------------------------------------------------------------------------- Kafka


async def test_kafka_idempotent_and_transactional_producers(kafka_bootstrap: str) -> None:
    topic = _name("testenv")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        idem = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
        await idem.start()
        try:
            await idem.send_and_wait(topic, b"idempotent", key=b"k0")
        finally:
            await idem.stop()

        txn = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=_name("testenv-txn")
        )
        await txn.start()
        try:
            async with txn.transaction():
                await txn.send(topic, b"committed-1", key=b"k1")
                await txn.send(topic, b"committed-2", key=b"k2")
            await txn.begin_transaction()
            await txn.send(topic, b"aborted", key=b"k3")
            await txn.abort_transaction()
            async with txn.transaction():
                await txn.send(topic, b"committed-3", key=b"k4")
        finally:
            await txn.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=_name("testenv-group"),
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            seen: list[bytes] = []

            async def read() -> None:
                while len(seen) < 4:
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        seen.extend(r.value for r in records)

            await asyncio.wait_for(read(), 60)
            assert seen == [b"idempotent", b"committed-1", b"committed-2", b"committed-3"]
            # the group coordinator (__consumer_offsets) works on one broker
            await consumer.commit()
            tp = TopicPartition(topic, 0)
            assert await consumer.committed(tp) == await consumer.position(tp)
        finally:
            await consumer.stop()
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def _describe(
    admin: AIOKafkaAdminClient, rtype: ConfigResourceType, name: str, key: str
) -> dict[str, str]:
    """describe_configs, retried while a just-created topic is not yet known to the broker."""
    for _ in range(50):
        [resp] = await admin.describe_configs([ConfigResource(rtype, name, {key: None})])
        error_code, _msg, _type, _name, entries = resp.resources[0]
        if error_code == 0:
            return {entry[0]: entry[1] for entry in entries}
        await asyncio.sleep(0.1)
    raise AssertionError(f"describe_configs {name}: {resp}")


async def test_kafka_compacted_topic_and_no_auto_create(kafka_bootstrap: str) -> None:
    topic = _name("testenv-compact")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"},
                )
            ]
        )
        configs = await _describe(admin, ConfigResourceType.TOPIC, topic, "cleanup.policy")
        assert configs["cleanup.policy"] == "compact"
        configs = await _describe(
            admin, ConfigResourceType.BROKER, "1", "auto.create.topics.enable"
        )
        assert configs["auto.create.topics.enable"] == "false"
        await admin.delete_topics([topic])
    finally:
        await admin.close()


# --------------------------------------------------------------------------- TLS and SASL


def test_pg_serves_tls_with_the_test_ca(pg_tls) -> None:
    verified = {"sslmode": "verify-full", "sslrootcert": pg_tls.ca}
    with psycopg.connect(pg_tls.dsn, autocommit=True, **verified) as conn:
        assert conn.execute(
            "SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone() == (True, "cdcd_tls")
    with psycopg.connect(pg_tls.dsn, replication="database", **verified) as conn:
        assert conn.execute("IDENTIFY_SYSTEM").fetchone()[3] == "cdcd_test"
    cert = {"sslcert": pg_tls.client_cert, "sslkey": pg_tls.client_key}
    with psycopg.connect(pg_tls.cert_dsn, **verified, **cert) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("cdcd_cert",)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(pg_tls.dsn, sslmode="verify-full", sslrootcert=pg_tls.other_ca)


def test_pg_tls_only_users_are_refused_without_tls(pg_tls, pg_dsn: str) -> None:
    for dsn in (pg_tls.dsn, pg_tls.cert_dsn):
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(dsn, sslmode="disable", connect_timeout=10)
    # no client certificate: the cert user has no other way in
    with pytest.raises(psycopg.OperationalError, match="certificate"):
        psycopg.connect(pg_tls.cert_dsn, sslmode="require", connect_timeout=10)
    # everyone else still gets in over plain TCP, as before
    with psycopg.connect(pg_dsn, sslmode="disable") as conn:
        assert conn.execute(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone() == (False,)


def _sasl_ssl_options(kafka_sasl_ssl, mechanism: str, password: str) -> dict:
    import ssl

    return {
        "bootstrap_servers": kafka_sasl_ssl.bootstrap,
        "security_protocol": "SASL_SSL",
        "ssl_context": ssl.create_default_context(cafile=kafka_sasl_ssl.ca),
        "sasl_mechanism": mechanism,
        "sasl_plain_username": kafka_sasl_ssl.username,
        "sasl_plain_password": password,
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_kafka_sasl_ssl_listener(
    kafka_sasl_ssl, kafka_bootstrap: str, mechanism: str
) -> None:
    from aiokafka.errors import KafkaConnectionError

    topic = _name("testenv-sasl")
    options = _sasl_ssl_options(kafka_sasl_ssl, mechanism, kafka_sasl_ssl.password)
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        producer = AIOKafkaProducer(**options, transactional_id=_name("testenv-txn"))
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send(topic, b"over SASL_SSL")
        finally:
            await producer.stop()
        # the same broker, through its PLAINTEXT listener
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 30)
            assert record.value == b"over SASL_SSL"
        finally:
            await consumer.stop()
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    wrong = AIOKafkaAdminClient(**_sasl_ssl_options(kafka_sasl_ssl, mechanism, "wrong"))
    try:
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(wrong.start(), 30)
    finally:
        await wrong.close()


# --------------------------------------------------------------------------- schema registry


def test_schema_registry_checks_compatibility(schema_registry_url: str) -> None:
    """The registry speaks Confluent's API: ids, versions, BACKWARD by default (a new
    optional field accepted, a changed type refused with 409)."""
    import json
    import urllib.error
    import urllib.request

    def call(method: str, path: str, body: object = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            schema_registry_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def record(*fields: dict) -> dict:
        return {"schema": json.dumps({"type": "record", "name": "r", "fields": list(fields)})}

    subject = _name("testenv") + "-value"
    status, first = call(
        "POST", f"/subjects/{subject}/versions", record({"name": "a", "type": "int"})
    )
    assert status == 200 and first["id"] > 0
    wider = record(
        {"name": "a", "type": "int"}, {"name": "b", "type": ["null", "string"], "default": None}
    )
    status, second = call("POST", f"/subjects/{subject}/versions", wider)
    assert status == 200 and second["id"] != first["id"]
    status, refused = call(
        "POST", f"/subjects/{subject}/versions", record({"name": "a", "type": "string"})
    )
    assert status == 409 and "compatib" in refused["message"].lower()
    assert call("GET", f"/subjects/{subject}/versions")[1] == [1, 2]
    status, fetched = call("GET", f"/schemas/ids/{first['id']}")
    assert json.loads(fetched["schema"])["fields"] == [{"name": "a", "type": "int"}]
