"""What a reader process is given: ``source.*`` as plain values, without pydantic."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from cdcd.config import parse_config
from cdcd.selection import PlainConfig


def _source(kind: str, **keys):
    dsn = "mysql://cdc:pw@127.0.0.1:3306/" if kind == "mysql" else "postgresql://cdc@h/shop"
    return parse_config(
        {"name": "shop", "source": {"kind": kind, "dsn": dsn, **keys}, "sink": {"kind": "stdout"}}
    ).source


@pytest.mark.parametrize("module", ["cdcd.sources.mysql.reader", "cdcd.sources.postgres.reader"])
def test_a_reader_process_does_without_pydantic(module):
    # ~20 MB of the reader process's memory: it must not come back through an import.
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic' or m == 'cdcd.config'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["mysql", "postgres"])
def test_the_plain_values_select_the_same_tables_and_carry_the_secret(kind, monkeypatch):
    monkeypatch.setenv("CDCD_TEST_SECRET", "s3cret")
    config = _source(
        kind,
        databases=["shop", "crm"],
        tables=["shop\\..*", {"schema": "crm", "table": "people.v2"}, "CRM.People"],
        exclude_tables=["shop.secrets"],
        password_env="CDCD_TEST_SECRET",
    )
    plain = pickle.loads(pickle.dumps(PlainConfig.of(config)))
    names = [("shop", "orders"), ("shop", "secrets"), ("crm", "people"), ("crm", "people.v2")]
    names += [("crm", "peoplexv2"), ("hr", "x"), ("crm", "other")]
    for schema, table in names:
        assert plain.includes(schema, table) == config.includes(schema, table)
    assert [n for n in names if plain.includes(*n)] == names[:1] + names[2:4]
    assert plain.password().get_secret_value() == "s3cret"
    for key, value in config.model_dump().items():
        assert getattr(plain, key) == value


def test_without_a_password_key_none_is_carried():
    plain = PlainConfig.of(_source("mysql", ssl_ca="/etc/ca.pem", heartbeat_interval_s=2.5))
    assert plain.password() is None
    assert (plain.ssl_ca, plain.heartbeat_interval_s) == ("/etc/ca.pem", 2.5)


def test_postgres_key_passphrase_is_carried_too(tmp_path):
    secret = tmp_path / "passphrase"
    secret.write_text("key-passphrase\n")
    config = _source("postgres", sslpassword_file=str(secret))
    plain = pickle.loads(pickle.dumps(PlainConfig.of(config)))
    assert plain.sslpassword().get_secret_value() == "key-passphrase"
    assert plain.password() is None
    assert PlainConfig.of(_source("postgres")).sslpassword() is None
