"""The configuration: the only place that reads it.

A TOML file, validated at start by pydantic; every error names the key and says what is
wrong. Secrets are read from the environment (``*_env`` keys) or a file (``*_file``
keys), never from the command line, and are kept out of ``repr`` so they are not logged.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cdcd.encoding import DECIMAL_MODES, DecimalMode
from cdcd.errors import ConfigError
from cdcd.selection import TableSelection, parse_entries

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(env: str | None, file: str | None, what: str) -> SecretStr | None:
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{what}_env: environment variable {env} is not set")
        return SecretStr(value)
    if file:
        try:
            return SecretStr(Path(file).read_text().rstrip("\r\n"))
        except OSError as exc:
            raise ConfigError(f"{what}_file: cannot read {file}: {exc.strerror}") from None
    return None


class _SourceCommon(_Strict, TableSelection):
    dsn: str
    password_env: str | None = None
    password_file: str | None = None
    tables: list[str | dict[str, str]] | None = Field(
        default=None,
        description="include list: regular expressions over 'schema.table' (or inline tables "
        "{schema, table} naming one literally); default: all tables",
    )
    exclude_tables: list[str | dict[str, str]] = Field(default_factory=list)
    databases: list[str | dict[str, str]] | None = Field(
        default=None,
        description="include list of databases (PostgreSQL: schemas), regular expressions; "
        "default: all",
    )
    exclude_databases: list[str | dict[str, str]] = Field(default_factory=list)

    @field_validator("tables", "exclude_tables", "databases", "exclude_databases", mode="before")
    @classmethod
    def _entries(cls, value: Any, info: ValidationInfo) -> Any:
        key = str(info.field_name)
        if isinstance(value, list):
            if not value and not key.startswith("exclude_"):
                what = "table" if key == "tables" else "database"
                raise ValueError(
                    f"an empty list captures nothing; leave the key out to capture every {what}"
                )
            parse_entries(key, value)  # a ValueError names the entry and what is wrong
        return value

    def password(self) -> SecretStr | None:
        """The source password from ``password_env`` or ``password_file``, if either is set."""
        return _read_secret(self.password_env, self.password_file, "source.password")


class PostgresSourceConfig(_SourceCommon):
    kind: Literal["postgres"]
    slot_name: str | None = Field(default=None, description="default: cdcd_<name>")
    publication_name: str | None = Field(default=None, description="default: cdcd_<name>")
    create_slot: bool = True
    create_publication: bool = True
    status_interval_s: float = Field(default=10.0, gt=0)
    reader: Literal["inline", "process"] = Field(
        default="inline",
        description="where the replication stream is read and decoded: the daemon itself, "
        "or a worker process (a second core: faster catch-up, more memory)",
    )

    @field_validator("dsn")
    @classmethod
    def _pg_dsn(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a URL like postgresql://user@host:5432/dbname")
        if not urlsplit(value).path.strip("/"):
            raise ValueError("names no database: add it, as in postgresql://user@host:5432/dbname")
        return value


class MysqlSourceConfig(_SourceCommon):
    kind: Literal["mysql"]
    server_id: int = Field(default=0, ge=0, description="replica server id; 0: derived from name")
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    ssl_verify_identity: bool = False
    initial_position: str = Field(
        default="latest",
        description="where to start when no offset is stored: 'latest' (the binlog's end), "
        "'earliest' (the oldest binlog kept), a GTID set, or 'file:pos'",
    )
    schema_changes: bool = Field(
        default=True, description="publish DDL to the <topic_prefix> topic"
    )
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    reader: Literal["process", "thread"] = Field(
        default="process",
        description="where the binlog is read and decoded: a worker process (uses a second "
        "core) or a thread of the daemon",
    )

    @field_validator("dsn")
    @classmethod
    def _mysql_dsn(cls, value: str) -> str:
        if not value.startswith(("mysql://", "mariadb://")):
            raise ValueError("must be a URL like mysql://user@host:3306/")
        return value


SourceConfig = Annotated[PostgresSourceConfig | MysqlSourceConfig, Field(discriminator="kind")]


class KafkaSinkConfig(_Strict):
    kind: Literal["kafka"]
    bootstrap_servers: str
    topic_prefix: str
    partitions: int = Field(default=1, ge=1)
    replication_factor: int | None = Field(
        default=None, ge=1, description="default: 3, or the number of brokers if fewer"
    )
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "lz4"
    linger_ms: int = Field(default=5, ge=0)
    transaction_interval_ms: int = Field(
        default=10,
        ge=0,
        description="exactly-once: the least time from one Kafka transaction's start to the "
        "next one's; what the source commits meanwhile joins the next transaction",
    )
    max_batch_bytes: int = Field(default=1_048_576, ge=1024)
    max_request_bytes: int = Field(default=4_194_304, ge=1024)
    tombstones_on_delete: bool = True
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password_env: str | None = None
    sasl_password_file: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @field_validator("topic_prefix")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("may hold only letters, digits, '.', '_' and '-'")
        return value

    def sasl_password(self) -> SecretStr | None:
        return _read_secret(self.sasl_password_env, self.sasl_password_file, "sink.sasl_password")


class StdoutSinkConfig(_Strict):
    kind: Literal["stdout"]
    topic_prefix: str = Field(description="default: the daemon's name (see Config)")
    tombstones_on_delete: bool = True
    bootstrap_servers: str | None = Field(
        default=None,
        description="ignored; allowed so a kafka sink can be switched to stdout by kind alone",
    )


SinkConfig = Annotated[KafkaSinkConfig | StdoutSinkConfig, Field(discriminator="kind")]


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class PipelineConfig(_Strict):
    max_batch_events: int = Field(default=5000, ge=1)
    max_in_flight_batches: int = Field(default=8, ge=1)
    skipped_operations: list[Literal["c", "u", "d", "t"]] = Field(default_factory=list)


class OffsetsConfig(_Strict):
    topic: str = Field(
        default="cdcd-offsets", description="compacted; shared by daemons, keyed by name"
    )
    partitions: int = Field(default=1, ge=1)
    replication_factor: int | None = Field(
        default=None, ge=1, description="default: 3, or the number of brokers if fewer"
    )

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("may hold only letters, digits, '.', '_' and '-'")
        return value


class TransactionsConfig(_Strict):
    metadata: bool = Field(
        default=False,
        description="Debezium's provide.transaction.metadata: the envelope's transaction "
        "block and BEGIN/END records on the transaction topic",
    )
    topic: str | None = Field(default=None, description="default: <topic_prefix>.transaction")
    split_after_events: int = Field(
        default=20_000,
        ge=1,
        description="a larger source transaction is written in several Kafka transactions",
    )


class EncodingConfig(_Strict):
    """How values are encoded, for the options Debezium's connectors share."""

    decimal_handling_mode: DecimalMode = Field(
        default="precise",
        description="Debezium's decimal.handling.mode: numeric/DECIMAL/money as a Kafka "
        "Connect Decimal (precise), a JSON number (double) or a plain string (string)",
    )

    @model_validator(mode="before")
    @classmethod
    def _debezium_spelling(cls, data: Any) -> Any:
        # Accept Debezium's own key, written quoted in TOML: "decimal.handling.mode" = "string".
        if isinstance(data, dict) and isinstance(data.get("decimal"), dict):
            # Unquoted, TOML reads it as nested tables.
            raise ValueError(
                f'write Debezium\'s key quoted, "{_DEBEZIUM_DECIMAL_KEY}" = ..., '
                "or as decimal_handling_mode = ..."
            )
        if isinstance(data, dict) and _DEBEZIUM_DECIMAL_KEY in data:
            if "decimal_handling_mode" in data:
                raise ValueError(
                    f'decimal_handling_mode and "{_DEBEZIUM_DECIMAL_KEY}" are the same '
                    "setting: keep one"
                )
            data = dict(data)
            data["decimal_handling_mode"] = data.pop(_DEBEZIUM_DECIMAL_KEY)
        return data

    @field_validator("decimal_handling_mode", mode="before")
    @classmethod
    def _known_mode(cls, value: Any) -> Any:
        if value not in DECIMAL_MODES:
            allowed = ", ".join(f'"{mode}"' for mode in DECIMAL_MODES)
            raise ValueError(f"{value!r} is not one of {allowed}")
        return value


_DEBEZIUM_DECIMAL_KEY = "decimal.handling.mode"


class Config(_Strict):
    name: str
    delivery: Literal["exactly-once", "at-least-once"] = "exactly-once"
    source: SourceConfig
    sink: SinkConfig
    offsets: OffsetsConfig = OffsetsConfig()
    transactions: TransactionsConfig = TransactionsConfig()
    pipeline: PipelineConfig = PipelineConfig()
    encoding: EncodingConfig = EncodingConfig()
    log: LogConfig = LogConfig()

    @model_validator(mode="before")
    @classmethod
    def _stdout_topic_prefix(cls, data: Any) -> Any:
        # The envelope's source.name is the topic prefix: by default the daemon's name, as
        # a Kafka sink's would be in most configurations, not a fixed "cdcd".
        sink = data.get("sink") if isinstance(data, dict) else None
        if isinstance(sink, dict) and sink.get("kind") == "stdout" and "topic_prefix" not in sink:
            return {**data, "sink": {**sink, "topic_prefix": str(data.get("name") or "")}}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "may hold only letters, digits, '.', '_' and '-', and not start with a sign"
            )
        return value


def _location(loc: tuple[Any, ...]) -> str:
    # pydantic puts the discriminator's value into the path ("source.postgres.dsn"): drop it.
    parts = [str(p) for p in loc if p not in ("postgres", "mysql", "kafka", "stdout")]
    return ".".join(parts) or "(top level)"


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = _location(err["loc"])
        kind = err["type"]
        if kind == "missing":
            msg = "is required"
        elif kind == "extra_forbidden":
            msg = "is not a known key (see conf/cdcd.example.toml)"
        elif kind == "union_tag_invalid":
            msg = f"{err['ctx']['tag']!r} is not one of {err['ctx']['expected_tags']}"
            key = f"{key}.kind"
        elif kind == "union_tag_not_found":
            msg = "is required (which kind?)"
            key = f"{key}.kind"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {msg}")
    return "; ".join(lines)


def parse_config(data: dict[str, Any], origin: str = "config") -> Config:
    """Validate a configuration already read into a dict."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_explain(exc)}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = parse_config(data, str(path))
    try:
        # Secrets are read at start, so a missing one stops the daemon before it connects.
        config.source.password()
        if isinstance(config.sink, KafkaSinkConfig):
            config.sink.sasl_password()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def redact_dsn(dsn: str) -> str:
    """The DSN with its password, if any, replaced by ``***`` (for logs and messages)."""
    url = urlsplit(dsn)
    if url.password is None:
        return dsn
    netloc = url.netloc.replace(f":{url.password}@", ":***@", 1)
    return url._replace(netloc=netloc).geturl()
