"""Secrets never reach the output: the source password, the SASL password, a client key's
passphrase and the key itself are absent from everything the daemon and the commands
write, at ``[log] level = "debug"``, over SASL_SSL and PostgreSQL TLS, in a good run (a
snapshot in scan processes, then the stream) and in runs that fail on a wrong secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pg_support import PgCase
from support import consume, daemon, run_cli, write_config
from throwaway import encrypt_key

pytestmark = pytest.mark.integration

PASSPHRASE = "key-passphrase-Vb71"
WRONG = {
    "kafka": "wrong-kafka-secret-9Zx",
    "postgres": "wrong-pg-secret-7Qm",
    "passphrase": "wrong-passphrase-3Kd",
}


def _pem_body(path: str | Path) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if not line.startswith("-----")]


def _config(
    pg_case: PgCase, pg_tls: Any, kafka_sasl_ssl: Any, key: Path, passphrase: Path
) -> dict[str, Any]:
    user_and_password, where = pg_tls.dsn.removeprefix("postgresql://").split("@", 1)
    config = pg_case.config(["orders"])
    config["source"].update(
        dsn=f"postgresql://{user_and_password.split(':')[0]}@{where}",
        password_env="CDCD_TEST_PG_SECRET",
        sslmode="verify-full",
        sslrootcert=pg_tls.ca,
        sslcert=pg_tls.client_cert,
        sslkey=str(key),
        sslpassword_file=str(passphrase),
    )
    config["sink"].update(
        bootstrap_servers=kafka_sasl_ssl.bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username=kafka_sasl_ssl.username,
        sasl_password_env="CDCD_TEST_KAFKA_SECRET",
        ssl_cafile=kafka_sasl_ssl.ca,
    )
    config["snapshot"] = {"mode": "initial"}
    return config


def _failing_runs(pg_case: PgCase, config: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The output of runs and checks that fail on each wrong secret (and the secret's own
    keys named in it)."""
    wrong_passphrase = pg_case.tmp_path / "wrong-passphrase"
    wrong_passphrase.write_text(WRONG["passphrase"] + "\n")
    dsn_with_password = config["source"]["dsn"].replace("@", f":{WRONG['postgres']}@", 1)
    source = {k: v for k, v in config["source"].items() if k != "password_env"}
    cases = [
        ("sink.sasl_", config, {**env, "CDCD_TEST_KAFKA_SECRET": WRONG["kafka"]}),
        ("password authentication failed", {**config, "source": {**source, "dsn": dsn_with_password}}, env),
        ("source.sslpassword", {**config, "source": {**source, "sslpassword_file": str(wrong_passphrase)}}, env),
    ]  # fmt: skip
    outputs = []
    for index, (needle, failing, failing_env) in enumerate(cases):
        path = write_config(pg_case.tmp_path / f"failing-{index}.toml", failing)
        for command in ("run", "check"):
            result = run_cli(command, "--config", str(path), env=failing_env)
            assert result.returncode == 1, (command, needle, result.stdout, result.stderr)
            assert needle in result.stdout + result.stderr, (needle, result.stdout, result.stderr)
            outputs.append(result.stdout + result.stderr)
    return outputs


def test_no_secret_in_any_output(pg_case: PgCase, pg_tls, kafka_sasl_ssl, monkeypatch):
    key, passphrase = encrypt_key(pg_tls.client_key, pg_case.tmp_path, PASSPHRASE)
    pg_password = pg_tls.dsn.removeprefix("postgresql://").split("@")[0].split(":")[1]
    env = {"CDCD_TEST_PG_SECRET": pg_password, "CDCD_TEST_KAFKA_SECRET": kafka_sasl_ssl.password}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pg_case.execute(
        f"CREATE TABLE {pg_case.schema}.orders (id int PRIMARY KEY, note text)",
        f"INSERT INTO {pg_case.schema}.orders VALUES (1, 'snapshot'), (2, 'snapshot')",
    )
    config = _config(pg_case, pg_tls, kafka_sasl_ssl, key, passphrase)
    config["log"] = {"level": "debug", "format": "json"}
    outputs = []
    with daemon(pg_case.tmp_path, config) as d:
        pg_case.execute(f"INSERT INTO {pg_case.schema}.orders VALUES (3, 'stream')")
        consume(pg_case.bootstrap, [pg_case.topic("orders")], expect=3, settle=0)
        for command in (["check"], ["offsets", "show"]):
            result = run_cli(*command, "--config", str(d.config_path))
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            outputs.append(result.stdout + result.stderr)
        assert d.terminate() == 0
    log = d.log_text() + d.out_path.read_text()
    assert '"level":"debug"' in log and '"event":"streaming"' in log, log[-3000:]
    outputs.append(log)
    outputs += _failing_runs(pg_case, config, env)
    config["log"] = {"level": "debug", "format": "console"}  # the other renderer
    outputs += _failing_runs(pg_case, config, env)
    secrets = {
        "the source password": pg_password,
        "the SASL password": kafka_sasl_ssl.password,
        "the key's passphrase": PASSPHRASE,
        **{f"the wrong {what}": value for what, value in WRONG.items()},
    }
    secrets |= {f"line {i} of the key": line for i, line in enumerate(_pem_body(key))}
    secrets |= {
        f"line {i} of the plain key": line for i, line in enumerate(_pem_body(pg_tls.client_key))
    }
    text = "\n".join(outputs)
    leaked = [what for what, secret in secrets.items() if secret in text]
    assert leaked == [], leaked
    print(f"\n{len(text.splitlines())} lines of output searched for {len(secrets)} secrets")
