"""What the reader process is given: ``source.*`` as plain values, without pydantic."""

from __future__ import annotations

import pickle
import subprocess
import sys

from cdcd.config import parse_config
from cdcd.sources.mysql.source import _ReaderConfig


def _source(**keys):
    return parse_config(
        {
            "name": "shop",
            "source": {"kind": "mysql", "dsn": "mysql://cdc:pw@127.0.0.1:3306/", **keys},
            "sink": {"kind": "stdout"},
        }
    ).source


def test_the_reader_process_does_without_pydantic():
    # ~20 MB of the reader process's memory: it must not come back through an import.
    code = (
        "import sys, cdcd.sources.mysql.reader; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic' or m == 'cdcd.config'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_plain_values_select_the_same_tables_and_carry_the_secret():
    config = _source(
        databases=["shop", "crm"],
        exclude_tables=["shop.secrets"],
        ssl_ca="/etc/ca.pem",
        heartbeat_interval_s=2.5,
    )
    plain = pickle.loads(pickle.dumps(_ReaderConfig.of(config, "s3cret")))
    for schema, table in [("shop", "orders"), ("shop", "secrets"), ("crm", "people"), ("hr", "x")]:
        assert plain.includes(schema, table) == config.includes(schema, table)
    assert plain.captured_databases() == config.captured_databases() == {"shop", "crm"}
    assert plain.password().get_secret_value() == "s3cret"
    assert (plain.ssl_ca, plain.heartbeat_interval_s, plain.dsn) == (
        "/etc/ca.pem",
        2.5,
        config.dsn,
    )
