"""What every part's configuration model is built on: strict, frozen models; secrets
read from the environment or a file; the source options every database shares.

The models of a source or sink live beside its code (``cdcd/sources/<kind>/config.py``,
``cdcd/sinks/<kind>/config.py``, each exposing ``MODEL``); ``cdcd.config`` assembles
them. No database driver and no Kafka client here: the reader processes import it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cdcd.encoding import TIME_PRECISION_MODES, TimePrecisionMode
from cdcd.errors import ConfigError
from cdcd.selection import TableSelection, parse_entries

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_topic_name(value: str) -> str:
    """A validator's body: a name Kafka accepts as a topic (prefix)."""
    if not NAME.match(value):
        raise ValueError("may hold only letters, digits, '.', '_' and '-'")
    return value


class Strict(BaseModel):
    """Unknown keys are errors; values never change once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def read_secrets(self) -> None:
        """Read every secret the model names (none by default)."""


def read_secret(env: str | None, file: str | None, what: str) -> SecretStr | None:
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


class SinkConfigBase(Strict):
    """What the core reads of any sink's configuration."""

    kind: str
    topic_prefix: str
    tombstones_on_delete: bool = True
    format: Literal["json", "maxwell", "avro"] = Field(
        default="json",
        description="json: Debezium's envelope; maxwell: Maxwell's daemon's JSON (cdcd.maxwell); "
        "avro: Avro with a Confluent-compatible schema registry (cdcd.connect_avro)",
    )
    maxwell_topic: str = Field(default="maxwell", description="format maxwell: the topic")
    schemas_enable: bool = Field(
        default=False,
        description="format json: keys and values as JsonConverter writes them with "
        "schemas.enable=true, {schema, payload}",
    )
    key_schemas_enable: bool | None = Field(
        default=None,
        description='keys only ("key.converter.schemas.enable"); default: schemas_enable',
    )
    value_schemas_enable: bool | None = Field(
        default=None,
        description='values only ("value.converter.schemas.enable"); default: schemas_enable',
    )
    schema_registry_url: str | None = Field(
        default=None,
        description="format avro: the registry's Confluent-compatible API "
        '("schema.registry.url"), e.g. http://127.0.0.1:8081',
    )

    @model_validator(mode="before")
    @classmethod
    def _converter_spellings(cls, data: Any) -> Any:
        # Kafka Connect's keys, quoted in TOML: "value.converter.schemas.enable" = true.
        if not isinstance(data, dict):
            return data
        for nested in ("key", "value", "schemas", "schema"):
            if isinstance(data.get(nested), dict):
                raise ValueError(
                    f'write Kafka Connect\'s dotted keys quoted ("{nested}.…." = ...), or as '
                    "schemas_enable, key_schemas_enable, value_schemas_enable, "
                    "schema_registry_url"
                )
        data = dict(data)
        for spelling, key in _CONNECT_SPELLINGS.items():
            if spelling in data:
                if key in data and data[key] != data[spelling]:
                    raise ValueError(f'{key} and "{spelling}" are the same setting: keep one')
                data[key] = data.pop(spelling)
        return data

    @model_validator(mode="after")
    def _format_options(self) -> SinkConfigBase:
        if self.format == "avro" and not self.schema_registry_url:
            raise ValueError(
                'sink.format = "avro" needs sink.schema_registry_url (the registry\'s '
                "Confluent-compatible API, e.g. http://127.0.0.1:8081)"
            )
        if self.schema_registry_url and self.format != "avro":
            raise ValueError('sink.schema_registry_url is used only with sink.format = "avro"')
        wants = self.schemas_enable or self.key_schemas_enable or self.value_schemas_enable
        if wants and self.format != "json":
            raise ValueError(
                f'sink.schemas_enable is for sink.format = "json" (it is "{self.format}"; '
                "avro always has its schemas)"
            )
        return self

    def schemas_for(self) -> tuple[bool, bool]:
        """(keys, values): which are written with their schema (format json)."""
        key = self.schemas_enable if self.key_schemas_enable is None else self.key_schemas_enable
        value = (
            self.schemas_enable if self.value_schemas_enable is None else self.value_schemas_enable
        )
        return key, value

    def address(self) -> str | None:
        """Where the sink is reached (Kafka's bootstrap servers); None: nowhere."""
        return None

    def where(self) -> str:
        """The sink, as messages name it (``Kafka at host:9092``)."""
        return self.kind


_CONNECT_SPELLINGS = {
    "schemas.enable": "schemas_enable",
    "key.converter.schemas.enable": "key_schemas_enable",
    "value.converter.schemas.enable": "value_schemas_enable",
    "schema.registry.url": "schema_registry_url",
    "key.converter.schema.registry.url": "schema_registry_url",
    "value.converter.schema.registry.url": "schema_registry_url",
}


class SourceConfigBase(Strict, TableSelection):
    #: the time.precision.mode values the kind's Debezium connector takes, its default first
    time_precision_modes: ClassVar[tuple[TimePrecisionMode, ...]] = TIME_PRECISION_MODES
    kind: str
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
        return read_secret(self.password_env, self.password_file, "source.password")

    def secrets(self) -> dict[str, SecretStr | None]:
        """Every secret, by the name of the method that reads it (a reader process is
        given them read: ``PlainConfig``)."""
        return {"password": self.password()}

    def read_secrets(self) -> None:
        """Read every secret now, so that a missing one stops the daemon before it connects."""
        self.secrets()
