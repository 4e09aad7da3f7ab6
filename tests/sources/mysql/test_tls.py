"""TLS to MariaDB: a server that refuses plaintext, a user created REQUIRE X509.

The daemon streams over TLS (the binlog connection's cipher is read from the server's
performance_schema), ``cdcd check`` works over it, and a CA that did not sign the
server's certificate is one line on stderr naming ``source.ssl_ca``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pymysql
import pytest
from support import assert_one_line_error, consume, daemon, run_cli, unique_name, write_config
from throwaway import Server, TlsFiles, make_tls_files, mariadb

pytestmark = pytest.mark.integration


@dataclass
class TlsServer:
    server: Server
    tls: TlsFiles

    @property
    def cdc_url(self) -> str:
        return f"mysql://cdc:cdcpw@127.0.0.1:{self.server.port}/"


@pytest.fixture(scope="module")
def tls_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    tls = make_tls_files(tmp_path_factory.mktemp("tls"))
    with mariadb(
        f"--ssl-ca={tls.ca}",
        f"--ssl-cert={tls.server_cert}",
        f"--ssl-key={tls.server_key}",
        "--require-secure-transport=ON",
        "--performance-schema=ON",  # status_by_thread: each session's Ssl_cipher
        setup=(
            "CREATE USER cdc@'127.0.0.1' IDENTIFIED BY 'cdcpw' REQUIRE X509",
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO cdc@'127.0.0.1'",
            "CREATE DATABASE shop",
            "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(20))",
        ),
    ) as server:
        yield TlsServer(server, tls)


def tls_config(tls_server: TlsServer, bootstrap: str, **source: object) -> dict:
    name = unique_name()
    tls = tls_server.tls
    return {
        "name": name,
        "source": {
            "kind": "mysql",
            "dsn": tls_server.cdc_url,
            "tables": ["shop.orders"],
            "ssl_ca": str(tls.ca),
            "ssl_cert": str(tls.client_cert),
            "ssl_key": str(tls.client_key),
            "ssl_verify_identity": True,
            **source,
        },
        "sink": {"kind": "kafka", "bootstrap_servers": bootstrap, "topic_prefix": name},
        "log": {"level": "debug", "format": "json"},
    }


def test_the_server_refuses_plaintext_and_users_without_a_client_certificate(tls_mariadb):
    port = tls_mariadb.server.port
    with pytest.raises(pymysql.err.OperationalError) as plaintext:
        pymysql.connect(
            host="127.0.0.1", port=port, user="root", password="root", ssl_disabled=True
        )
    print(f"\nplaintext refused: {plaintext.value.args}")
    # The same login over TLS is let in: what was refused is the plaintext transport.
    conn = pymysql.connect(
        host="127.0.0.1", port=port, user="root", password="root", ssl_ca=str(tls_mariadb.tls.ca)
    )
    with conn.cursor() as cursor:
        cursor.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        assert cursor.fetchone()[1]
    conn.close()
    with pytest.raises(pymysql.err.OperationalError) as no_cert:
        pymysql.connect(
            host="127.0.0.1",
            port=port,
            user="cdc",
            password="cdcpw",
            ssl_ca=str(tls_mariadb.tls.ca),
        )
    assert no_cert.value.args[0] == 1045, no_cert.value.args  # REQUIRE X509


def binlog_dump_ciphers(server: Server, user: str) -> list[tuple[int, str]]:
    """(session id, TLS cipher) of every Binlog Dump session of ``user``."""
    return [
        (int(session), str(cipher))
        for session, cipher in server.sql(
            "SELECT p.ID, s.VARIABLE_VALUE FROM information_schema.PROCESSLIST p "
            "JOIN performance_schema.threads t ON t.PROCESSLIST_ID = p.ID "
            "JOIN performance_schema.status_by_thread s ON s.THREAD_ID = t.THREAD_ID "
            f"WHERE p.COMMAND LIKE 'Binlog Dump%' AND p.USER = '{user}' "
            "AND s.VARIABLE_NAME = 'Ssl_cipher'"
        )
    ]


def test_streams_over_tls_with_a_client_certificate(tls_mariadb, kafka_bootstrap, tmp_path):
    config = tls_config(tls_mariadb, kafka_bootstrap)
    topic = f"{config['name']}.shop.orders"
    with daemon(tmp_path, config) as d:
        tls_mariadb.server.sql(
            "INSERT INTO shop.orders VALUES (1, 'over'), (2, 'tls')",
            "UPDATE shop.orders SET note = 'TLS' WHERE id = 2",
        )
        messages = consume(kafka_bootstrap, [topic], expect=3)
        deadline = time.monotonic() + 10
        while not (ciphers := binlog_dump_ciphers(tls_mariadb.server, "cdc")):
            assert time.monotonic() < deadline, "no Binlog Dump session of cdc"
            time.sleep(0.2)
        assert d.terminate() == 0
    assert [(m.key, m.value["op"]) for m in messages] == [
        ({"id": 1}, "c"),
        ({"id": 2}, "c"),
        ({"id": 2}, "u"),
    ]
    assert messages[2].value["after"] == {"id": 2, "note": "TLS"}
    print(f"\nthe daemon's Binlog Dump sessions and their ciphers: {ciphers}")
    assert len(ciphers) == 1 and ciphers[0][1], ciphers  # a cipher: the session is TLS


def test_check_works_over_tls(tls_mariadb, kafka_bootstrap, tmp_path):
    config = tls_config(tls_mariadb, kafka_bootstrap)
    path = write_config(tmp_path / "check.toml", config)
    result = run_cli("check", "--config", str(path))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "mysql source: OK" in result.stdout and "ready to stream" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_wrong_ca_is_one_line_naming_ssl_ca(tls_mariadb, kafka_bootstrap, tmp_path, command):
    config = tls_config(tls_mariadb, kafka_bootstrap, ssl_ca=str(tls_mariadb.tls.other_ca))
    del config["log"]
    path = write_config(tmp_path / f"{command}.toml", config)
    result = run_cli(command, "--config", str(path))
    if command == "check":  # a finding, on standard output, among Kafka's
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        (line,) = [line for line in result.stdout.splitlines() if line.startswith("ERROR: ")]
        for needle in ("TLS", "certificate", "source.ssl_ca"):
            assert needle in line, line
    else:
        line = assert_one_line_error(result, "TLS", "certificate", "source.ssl_ca")
    print(f"\n{line}")


def test_a_missing_certificate_file_names_its_key(tls_mariadb, kafka_bootstrap, tmp_path):
    config = tls_config(tls_mariadb, kafka_bootstrap, ssl_cert=str(tmp_path / "nope.pem"))
    del config["log"]
    path = write_config(tmp_path / "c.toml", config)
    assert_one_line_error(run_cli("run", "--config", str(path)), "source.ssl_cert", "nope.pem")


def test_without_a_client_certificate_the_login_is_refused_with_a_hint(
    tls_mariadb, kafka_bootstrap, tmp_path
):
    config = tls_config(tls_mariadb, kafka_bootstrap)
    del config["source"]["ssl_cert"], config["source"]["ssl_key"], config["log"]
    path = write_config(tmp_path / "c.toml", config)
    assert_one_line_error(
        run_cli("run", "--config", str(path)), "Access denied", "REQUIRE X509", "source.ssl_cert"
    )
