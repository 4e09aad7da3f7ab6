"""TLS to PostgreSQL: the test environment's server has ``ssl = on`` and two users that
pg_hba.conf lets in over TLS only (``cdcd_tls`` with a password, ``cdcd_cert`` with a
client certificate), so any session of the daemon made without TLS fails.

The daemon snapshots (scan processes) and streams (a reader process, then inline) with
``sslmode = "verify-full"``; ``cdcd check`` works over it; a CA that did not sign the
server's certificate, a host name the certificate does not hold, a missing file and a
user that needs TLS are each one line naming the key to fix.
"""

from __future__ import annotations

from typing import Any

import pytest
from pg_support import PgCase
from support import assert_one_line_error, consume, daemon, run_cli, write_config
from throwaway import encrypt_key

pytestmark = pytest.mark.integration


def tls_config(pg_case: PgCase, pg_tls: Any, **source: Any) -> dict:
    config = pg_case.config(["orders"])
    tls = {"dsn": pg_tls.dsn, "sslmode": "verify-full", "sslrootcert": pg_tls.ca}
    config["source"].update({**tls, **source})
    return config


def orders(pg_case: PgCase, rows: int = 0) -> None:
    pg_case.execute(
        f"CREATE TABLE {pg_case.schema}.orders (id int PRIMARY KEY, note text)",
        *(f"INSERT INTO {pg_case.schema}.orders VALUES ({i}, 'before')" for i in range(rows)),
    )


def tls_sessions(pg_case: PgCase, user: str) -> list[tuple[str, bool]]:
    """(backend type, TLS?) of each session ``user`` has open."""
    rows = pg_case.conn.execute(
        "SELECT a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        "WHERE a.usename = %s ORDER BY 1",
        (user,),
    ).fetchall()
    return [(str(kind), bool(ssl)) for kind, ssl in rows]


def test_snapshot_and_stream_over_verify_full(pg_case: PgCase, pg_tls):
    orders(pg_case, rows=3)
    config = tls_config(pg_case, pg_tls, reader="process", snapshot_reader="process")
    config["snapshot"] = {"mode": "initial"}
    with daemon(pg_case.tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {pg_case.schema}.orders VALUES (10, 'streamed')")
        messages = consume(pg_case.bootstrap, [pg_case.topic("orders")], expect=4)
        sessions = tls_sessions(pg_case, "cdcd_tls")
        assert d.terminate() == 0
    assert sorted((m.key["id"], m.value["op"]) for m in messages) == [
        (0, "r"),
        (1, "r"),
        (2, "r"),
        (10, "c"),
    ]
    assert ("walsender", True) in sessions and all(ssl for _, ssl in sessions), sessions


def test_client_certificate_check_and_stream(pg_case: PgCase, pg_tls):
    orders(pg_case)
    config = tls_config(
        pg_case, pg_tls, dsn=pg_tls.cert_dsn, sslcert=pg_tls.client_cert, sslkey=pg_tls.client_key
    )
    path = write_config(pg_case.tmp_path / "check.toml", config)
    checked = run_cli("check", "--config", str(path))
    assert "postgres source: OK" in checked.stdout, (checked.stdout, checked.stderr)
    with daemon(pg_case.tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {pg_case.schema}.orders VALUES (1, 'by certificate')")
        messages = consume(pg_case.bootstrap, [pg_case.topic("orders")], expect=1)
        sessions = tls_sessions(pg_case, "cdcd_cert")
        assert d.terminate() == 0
    assert [m.value["after"] for m in messages] == [{"id": 1, "note": "by certificate"}]
    assert ("walsender", True) in sessions and all(ssl for _, ssl in sessions), sessions


def _failure(pg_tls: Any, tmp_path: Any, failure: str) -> tuple[dict[str, Any], list[str]]:
    """``[source]`` keys that make ``failure``, and what its line must say."""
    if failure == "untrusted CA":
        return {"sslrootcert": pg_tls.other_ca}, ["certificate verify failed", "source.sslrootcert"]
    if failure == "name mismatch":
        # libpq connects to hostaddr, and checks the certificate against the host name
        host, rest = pg_tls.dsn.split("@", 1)[1].split(":", 1)
        dsn = pg_tls.dsn.replace(f"@{host}:", "@cdcd-no-such-name.invalid:")
        dsn += f"?hostaddr={host}"
        return {"dsn": dsn}, ["does not match host name", "source.dsn", "verify-ca"]
    if failure == "missing file":
        return {"sslrootcert": str(tmp_path / "nope.pem")}, ["source.sslrootcert", "nope.pem"]
    return {"sslmode": "disable"}, ["no encryption", "source.sslmode"]


@pytest.mark.parametrize(
    "failure", ["untrusted CA", "name mismatch", "missing file", "user needs TLS"]
)
@pytest.mark.parametrize("command", ["run", "check"])
def test_each_failure_is_one_line_naming_the_key(pg_case: PgCase, pg_tls, failure, command):
    keys, needles = _failure(pg_tls, pg_case.tmp_path, failure)
    config = tls_config(pg_case, pg_tls, **keys)
    del config["log"]
    path = write_config(pg_case.tmp_path / "failing.toml", config)
    result = run_cli(command, "--config", str(path))
    if command == "check":  # a finding on standard output
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        [line] = [line for line in result.stdout.splitlines() if line.startswith("ERROR: ")]
        for needle in needles:
            assert needle in line, line
    else:
        line = assert_one_line_error(result, *needles)
    print(f"\n{line}")


def test_an_encrypted_client_key_and_its_passphrase(pg_case: PgCase, pg_tls):
    orders(pg_case)
    key, passphrase = encrypt_key(pg_tls.client_key, pg_case.tmp_path, "key-passphrase-4Qv")
    cert = {"dsn": pg_tls.cert_dsn, "sslcert": pg_tls.client_cert, "sslkey": str(key)}
    config = tls_config(pg_case, pg_tls, **cert, sslpassword_file=str(passphrase), reader="process")
    with daemon(pg_case.tmp_path, config) as d:  # the reader process is given the passphrase
        pg_case.execute(f"INSERT INTO {pg_case.schema}.orders VALUES (1, 'encrypted key')")
        messages = consume(pg_case.bootstrap, [pg_case.topic("orders")], expect=1)
        assert d.terminate() == 0
    assert [m.value["after"]["note"] for m in messages] == ["encrypted key"]
    wrong = pg_case.tmp_path / "wrong.passphrase"
    wrong.write_text("not-it\n")
    for keys, needles in (
        ({}, [f"{key} is encrypted", "source.sslpassword_env"]),
        ({"sslpassword_file": str(wrong)}, ["bad decrypt", "source.sslpassword_file"]),
    ):
        config = tls_config(pg_case, pg_tls, **cert, **keys)
        del config["log"]
        path = write_config(pg_case.tmp_path / "key.toml", config)
        print("\n" + assert_one_line_error(run_cli("run", "--config", str(path)), *needles))
