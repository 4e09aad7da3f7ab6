"""Configuration: the minimal file works; every error names its key."""

from __future__ import annotations

import pytest

from cdcd.config import ConfigError, load_config, parse_config, redact_dsn

MINIMAL = """
name = "shop"
[source]
kind = "postgres"
dsn = "postgresql://cdc@127.0.0.1:5432/shop"
password_env = "CDCD_SOURCE_PASSWORD"
tables = ["public.orders"]
[sink]
kind = "kafka"
bootstrap_servers = "127.0.0.1:9092"
topic_prefix = "shop"
"""


def test_minimal_configuration_from_the_issue(tmp_path, monkeypatch):
    path = tmp_path / "cdcd.toml"
    path.write_text(MINIMAL)
    monkeypatch.delenv("CDCD_SOURCE_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="CDCD_SOURCE_PASSWORD is not set"):
        load_config(path)
    monkeypatch.setenv("CDCD_SOURCE_PASSWORD", "s3cret")
    config = load_config(path)
    assert config.name == "shop"
    assert config.source.kind == "postgres"
    assert config.source.includes("public", "orders")
    assert not config.source.includes("public", "other")
    assert config.source.password().get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config.source.password())


def test_mysql_and_stdout_variants():
    config = parse_config(
        {
            "name": "a",
            "source": {"kind": "mysql", "dsn": "mysql://cdc@127.0.0.1:3306/"},
            "sink": {"kind": "stdout"},
        }
    )
    assert config.source.kind == "mysql" and config.sink.kind == "stdout"
    # The envelope's source.name is the topic prefix: the daemon's name unless set.
    assert config.sink.topic_prefix == "a"
    sink = {"kind": "stdout", "topic_prefix": "shop"}
    assert parse_config({**config.model_dump(), "sink": sink}).sink.topic_prefix == "shop"


def test_example_configuration_is_valid(monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("CDCD_SOURCE_PASSWORD", "x")
    config = load_config(Path(__file__).parent.parent / "conf" / "cdcd.example.toml")
    assert config.sink.kind == "kafka"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": {}, "sink": {}}, "name: is required"),
        (
            {"name": "x", "source": {"kind": "oracle", "dsn": "x"}, "sink": {"kind": "stdout"}},
            "source.kind: 'oracle' is not one of",
        ),
        (
            {"name": "x", "source": {"dsn": "x"}, "sink": {"kind": "stdout"}},
            "source.kind: is required",
        ),
        (
            {
                "name": "x",
                "source": {
                    "kind": "postgres",
                    "dsn": "postgresql://h/db",
                    "tables": ["public.(orders"],
                },
                "sink": {"kind": "stdout"},
            },
            "source.tables: 'public.(orders' is not a valid regular expression",
        ),
        (
            {
                "name": "x",
                "source": {"kind": "postgres", "dsn": "postgresql://h/db", "tables": []},
                "sink": {"kind": "stdout"},
            },
            "source.tables: an empty list captures nothing; leave the key out to capture every table",
        ),
        (
            {
                "name": "x",
                "source": {"kind": "mysql", "dsn": "mysql://h/", "tables": []},
                "sink": {"kind": "stdout"},
            },
            "source.tables: an empty list captures nothing; leave the key out to capture every table",
        ),
        (
            {
                "name": "x",
                "source": {"kind": "mysql", "dsn": "mysql://h/", "databases": []},
                "sink": {"kind": "stdout"},
            },
            "source.databases: an empty list captures nothing",
        ),
        (
            {
                "name": "x",
                "source": {"kind": "mysql", "dsn": "mysql://h/", "exclude_databases": ["a", "b["]},
                "sink": {"kind": "stdout"},
            },
            "source.exclude_databases: 'b[' is not a valid regular expression",
        ),
        (
            {
                "name": "x",
                "source": {
                    "kind": "postgres",
                    "dsn": "postgresql://h/db",
                    "tables": [{"schema": "public"}],
                },
                "sink": {"kind": "stdout"},
            },
            "source.tables: {'schema': 'public'} must be written {schema = \"...\", table = \"...\"}",
        ),
        (
            {
                "name": "x",
                "source": {
                    "kind": "postgres",
                    "dsn": "postgresql://h/db",
                    "tables": [{"schema": "public", "table": "t", "column": "c"}],
                },
                "sink": {"kind": "stdout"},
            },
            "source.tables: {'schema': 'public', 'table': 't', 'column': 'c'} must be written",
        ),
        (
            {
                "name": "x",
                "source": {"kind": "postgres", "dsn": "postgresql://h/"},
                "sink": {"kind": "stdout"},
            },
            "source.dsn: names no database",
        ),
        (
            {
                "name": "x y",
                "source": {"kind": "postgres", "dsn": "postgresql://h/db"},
                "sink": {"kind": "stdout"},
            },
            "name: may hold only",
        ),
        (
            {
                "name": "x",
                "source": {"kind": "postgres", "dsn": "postgresql://h/db"},
                "sink": {"kind": "kafka", "topic_prefix": "p"},
            },
            "sink.bootstrap_servers: is required",
        ),
        (
            {
                "name": "x",
                "source": {"kind": "postgres", "dsn": "postgresql://h/db"},
                "sink": {"kind": "stdout"},
                "sinks": {},
            },
            "sinks: is not a known key",
        ),
    ],
)
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert message in str(info.value)


def test_secrets_are_redacted():
    assert redact_dsn("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_dsn("postgresql://u@h/db") == "postgresql://u@h/db"


def test_database_and_table_include_exclude_lists():
    def source(**keys):
        return parse_config(
            {
                "name": "a",
                "source": {"kind": "mysql", "dsn": "mysql://h/", **keys},
                "sink": {"kind": "stdout"},
            }
        ).source

    everything = source()
    assert everything.includes("shop", "orders")
    shop = source(databases=["shop"], exclude_tables=["shop.secrets"])
    assert shop.includes("shop", "orders") and not shop.includes("crm", "orders")
    assert not shop.includes("shop", "secrets")
    assert shop.selection.includes_database("shop") and not shop.selection.includes_database("crm")
    not_crm = source(exclude_databases=["crm"])
    assert not not_crm.includes("crm", "x") and not_crm.includes("shop", "x")
    listed = source(tables=["shop.orders", "crm.people"], exclude_databases=["crm"])
    assert listed.includes("shop", "orders") and not listed.includes("crm", "people")


def test_decimal_handling_mode_in_either_spelling():
    def encoding(toml: str):
        import tomllib

        data = {
            "name": "a",
            "source": {"kind": "mysql", "dsn": "mysql://h/"},
            "sink": {"kind": "stdout"},
        }
        return parse_config({**data, "encoding": tomllib.loads(toml)}).encoding

    assert encoding("").decimal_handling_mode == "precise"  # Debezium's default
    assert encoding('decimal_handling_mode = "string"').decimal_handling_mode == "string"
    assert encoding('"decimal.handling.mode" = "double"').decimal_handling_mode == "double"
    for toml, message in [
        (
            'decimal_handling_mode = "exact"',
            'encoding.decimal_handling_mode: \'exact\' is not one of "precise", "double", "string"',
        ),
        (
            '"decimal.handling.mode" = "DOUBLE"',
            "encoding.decimal_handling_mode: 'DOUBLE' is not one of",
        ),
        (
            'decimal.handling.mode = "string"',
            'encoding: write Debezium\'s key quoted, "decimal.handling.mode" = ...',
        ),
        (
            'decimal_handling_mode = "string"\n"decimal.handling.mode" = "string"',
            "are the same setting: keep one",
        ),
        ('decimal_mode = "string"', "encoding.decimal_mode: is not a known key"),
    ]:
        with pytest.raises(ConfigError) as info:
            encoding(toml)
        assert message in str(info.value), str(info.value)


def _modes(toml: str, kind: str = "mysql"):
    import tomllib

    dsn = "mysql://h/" if kind == "mysql" else "postgresql://h/db"
    data = {"name": "a", "source": {"kind": kind, "dsn": dsn}, "sink": {"kind": "stdout"}}
    return parse_config({**data, "encoding": tomllib.loads(toml)}).encoding_modes()


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("time.precision.mode", "connect", "time_precision_mode"),
        ("binary.handling.mode", "base64-url-safe", "binary_mode"),
        ("binary.handling.mode", "hex", "binary_mode"),
        ("bigint.unsigned.handling.mode", "precise", "bigint_unsigned_mode"),
        ("interval.handling.mode", "string", "interval_mode"),
        ("hstore.handling.mode", "map", "hstore_mode"),
    ],
)
def test_every_mode_in_either_spelling(key, value, field):
    ours = key.replace(".", "_")
    assert getattr(_modes(f'"{key}" = "{value}"'), field) == value
    assert getattr(_modes(f'{ours} = "{value}"'), field) == value
    with pytest.raises(ConfigError) as info:
        _modes(f'{ours} = "nope"')
    assert str(info.value).startswith(f"config: encoding.{ours}: 'nope' is not one of \"")
    with pytest.raises(ConfigError, match=f'write Debezium\'s key quoted, "{key}"'):
        _modes(f'{key} = "{value}"')


def test_defaults_are_debezium_s_for_each_source():
    mysql, postgres = _modes(""), _modes("", "postgres")
    assert mysql.time_precision_mode == "adaptive_time_microseconds"
    assert postgres.time_precision_mode == "adaptive"
    assert (postgres.binary_mode, postgres.interval_mode, postgres.hstore_mode) == (
        "bytes", "numeric", "json",
    )  # fmt: skip
    assert (mysql.bigint_unsigned_mode, mysql.money_fraction_digits) == ("long", 2)
    assert (
        _modes('"time.precision.mode" = "adaptive"', "postgres").time_precision_mode == "adaptive"
    )
    with pytest.raises(ConfigError) as info:
        _modes('time_precision_mode = "adaptive"')  # Debezium's binlog connectors refuse it
    assert str(info.value) == (
        "config: encoding.time_precision_mode: 'adaptive' is not supported by the mysql "
        'source (nor by Debezium\'s connector for it): one of "adaptive_time_microseconds", '
        '"connect"'
    )


def test_money_digits_and_propagated_columns():
    modes = _modes(
        '"money.fraction.digits" = 4\n"column.propagate.source.type" = "shop.orders.*, .*\\\\.id"'
    )
    assert modes.money_fraction_digits == 4
    assert modes.propagate_source_types == ("shop.orders.*", ".*\\.id")
    assert modes.propagates_source_type("shop", "orders", "amount")
    assert modes.propagates_source_type("crm", "People", "ID")  # case-insensitive
    assert not modes.propagates_source_type("crm", "people", "name")
    with pytest.raises(ConfigError, match="encoding.money_fraction_digits: "):
        _modes("money_fraction_digits = -1")
    with pytest.raises(ConfigError, match=r"encoding.column_propagate_source_type: '\(' is not"):
        _modes('column_propagate_source_type = ["("]')


def test_unusable_kafka_tls_files_name_their_key(tmp_path):
    from cdcd.errors import ConfigError
    from cdcd.sinks.kafka.client import client_options

    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    for keys, needle in (
        ({"ssl_cafile": str(tmp_path / "missing.pem")}, "sink.ssl_cafile: cannot use"),
        ({"ssl_certfile": str(not_pem)}, f"sink.ssl_certfile: cannot use {not_pem}"),
    ):
        sink = {"kind": "kafka", "bootstrap_servers": "k:9093", "topic_prefix": "shop"}
        config = parse_config(
            {
                "name": "shop",
                "source": {"kind": "postgres", "dsn": "postgresql://h/db"},
                "sink": {**sink, "security_protocol": "SSL", **keys},
            }
        )
        with pytest.raises(ConfigError, match=needle):
            client_options(config.sink)


def test_snapshot_defaults_are_debeziums_and_a_wrong_mode_is_named():
    base = {
        "name": "shop",
        "source": {"kind": "postgres", "dsn": "postgresql://cdc@127.0.0.1/shop"},
        "sink": {"kind": "stdout"},
    }
    config = parse_config(base)
    assert (config.snapshot.mode, config.snapshot.chunk_size, config.snapshot.max_threads) == (
        "initial",
        1024,
        1,
    )
    assert config.signals.kafka_topic == "cdcd-signals"
    assert config.notifications.topic == "cdcd-notifications"
    with pytest.raises(ConfigError, match=r"snapshot\.mode: .*'initial_only'"):
        parse_config({**base, "snapshot": {"mode": "never"}})


def test_kafka_security_keys_that_would_be_ignored_are_errors(tmp_path):
    sink = {"kind": "kafka", "bootstrap_servers": "k:9093", "topic_prefix": "shop"}
    sasl = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "cdcd",
        "sasl_password_env": "KAFKA_PASSWORD",
    }
    for keys, needle in (
        ({**sasl, "sasl_mechanism": None}, "security_protocol SASL_SSL needs sink.sasl_mechanism"),
        ({**sasl, "sasl_username": None}, "needs sink.sasl_mechanism"),
        ({**sasl, "sasl_password_env": None}, "set sink.sasl_password_env"),
        ({**sasl, "sasl_password_file": "/x"}, "set one of sink.sasl_password_env and"),
        ({"sasl_username": "cdcd"}, "sink.sasl_username is used only with security_protocol"),
        ({"security_protocol": "SSL", "sasl_mechanism": "PLAIN"}, "(it is SSL)"),
        ({"ssl_cafile": "/ca.pem"}, "sink.ssl_cafile is used only with security_protocol SSL"),
        (
            {**sasl, "security_protocol": "SASL_PLAINTEXT", "ssl_certfile": "/c.pem"},
            "(it is SASL_PLAINTEXT)",
        ),
        ({"security_protocol": "SSL", "ssl_keyfile": "/k.pem"}, "set sink.ssl_certfile too"),
    ):
        keys = {k: v for k, v in keys.items() if v is not None}
        with pytest.raises(ConfigError) as info:
            parse_config(
                {
                    "name": "shop",
                    "source": {"kind": "postgres", "dsn": "postgresql://h/db"},
                    "sink": {**sink, **keys},
                }
            )
        assert needle in str(info.value), (keys, str(info.value))
        assert str(info.value).startswith("config: sink: "), str(info.value)
    config = parse_config(
        {
            "name": "shop",
            "source": {"kind": "postgres", "dsn": "postgresql://h/db"},
            "sink": {**sink, **sasl, "ssl_cafile": "/ca.pem"},
        }
    )
    assert config.sink.security_protocol == "SASL_SSL"
