"""Which pymysql errors pass by themselves (the daemon starts over) and which stop it, and
the TLS settings as the context they build."""

from __future__ import annotations

import ssl
from pathlib import Path

import pymysql
import pytest
from throwaway import make_tls_files

from cdcd.errors import ConfigError, SourceError, SourceUnavailableError
from cdcd.sources.mysql.config import MysqlSourceConfig
from cdcd.sources.mysql.errors import connect_error, stream_error
from cdcd.sources.mysql.tls import tls_context

WHERE = "db.example:3306"


def config(**keys: object) -> MysqlSourceConfig:
    return MysqlSourceConfig(kind="mysql", dsn="mysql://cdc@db.example:3306/", **keys)


def operational(code: int, message: str, original: BaseException | None = None) -> Exception:
    exc = pymysql.err.OperationalError(code, message)
    if original is not None:
        exc.original_exception = original  # as pymysql's connect() sets it
    return exc


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (2013, "Lost connection to MySQL server during query"),
        (2006, "MySQL server has gone away (BrokenPipeError(32, 'Broken pipe'))"),
        (2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)"),
        (1927, "Connection was killed"),
        (1053, "Server shutdown in progress"),
    ],
)
def test_a_lost_or_refused_connection_may_pass(code, message):
    for explain in (connect_error, stream_error):
        error = explain(operational(code, message), WHERE, config())
        assert isinstance(error, SourceUnavailableError), (explain, error)
        assert message in str(error)


@pytest.mark.parametrize(
    ("code", "message", "needle"),
    [
        (1236, "Could not find first log file name in binary log index file", "offsets reset"),
        (1227, "Access denied; you need the REPLICATION SLAVE privilege", "GRANT REPLICATION"),
        (1045, "Access denied for user 'cdc'@'10.0.0.1'", "source.password_env"),
        (1146, "Table 'x.y' doesn't exist", "binlog connection"),
    ],
)
def test_what_will_not_pass_stops_the_daemon(code, message, needle):
    error = stream_error(operational(code, message), WHERE, config())
    assert type(error) is SourceError and needle in str(error), error


def test_tls_failures_stop_the_daemon_and_name_the_key():
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_code, untrusted.verify_message = 19, "self-signed certificate in chain"
    exc = operational(
        2003, f"Can't connect to MySQL server on 'db.example' ({untrusted})", untrusted
    )
    for explain in (connect_error, stream_error):
        error = explain(exc, WHERE, config(ssl_ca="/etc/cdcd/ca.pem"))
        assert type(error) is SourceError  # not "unavailable": it does not pass by itself
        assert "TLS" in str(error) and "source.ssl_ca" in str(error)
        assert "self-signed certificate in chain" in str(error)

    mismatch = ssl.SSLCertVerificationError(1, "certificate verify failed")
    mismatch.verify_code = 64
    mismatch.verify_message = "IP address mismatch, certificate is not valid for '10.0.0.7'."
    error = connect_error(operational(2003, "...", mismatch), WHERE, config(ssl_ca="/ca.pem"))
    assert type(error) is SourceError and "source.ssl_verify_identity" in str(error), error

    rejected = operational(
        2013,
        "Lost connection to MySQL server during query ([SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] "
        "tlsv13 alert certificate required (_ssl.c:2580))",
    )
    error = stream_error(rejected, WHERE, config(ssl_ca="/ca.pem"))
    assert type(error) is SourceError and "source.ssl_cert" in str(error), error

    no_tls = operational(2026, "SSL is required but the server doesn't support it")
    error = connect_error(no_tls, WHERE, config(ssl_ca="/ca.pem"))
    assert type(error) is SourceError and "TLS" in str(error), error


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def test_no_tls_key_no_context():
    assert tls_context(config()) is None


def test_a_ca_verifies_the_certificate_and_the_name_only_when_asked(tls_files):
    verify_ca = tls_context(config(ssl_ca=str(tls_files.ca)))
    assert verify_ca is not None
    assert verify_ca.verify_mode == ssl.CERT_REQUIRED and not verify_ca.check_hostname
    identity = tls_context(config(ssl_ca=str(tls_files.ca), ssl_verify_identity=True))
    assert identity is not None
    assert identity.verify_mode == ssl.CERT_REQUIRED and identity.check_hostname


def test_a_client_certificate_alone_encrypts_without_verifying(tls_files):
    context = tls_context(
        config(ssl_cert=str(tls_files.client_cert), ssl_key=str(tls_files.client_key))
    )
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"ssl_ca": "/nonexistent/ca.pem"}, "source.ssl_ca: cannot read /nonexistent/ca.pem"),
        ({"ssl_cert": "/nonexistent/c.pem"}, "source.ssl_cert: cannot read"),
        ({"ssl_key": "KEY"}, "source.ssl_key: set source.ssl_cert too"),
    ],
)
def test_unusable_files_name_their_key(keys, needle):
    with pytest.raises(ConfigError) as raised:
        tls_context(config(**keys))
    assert needle in str(raised.value)


def test_a_key_that_is_not_the_certificates_names_a_key(tls_files, tmp_path: Path):
    with pytest.raises(ConfigError) as raised:
        tls_context(config(ssl_cert=str(tls_files.client_cert), ssl_key=str(tls_files.server_key)))
    assert "source.ssl_key" in str(raised.value) or "source.ssl_cert" in str(raised.value)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    with pytest.raises(ConfigError) as raised:
        tls_context(config(ssl_ca=str(not_pem)))
    assert "source.ssl_ca" in str(raised.value)
