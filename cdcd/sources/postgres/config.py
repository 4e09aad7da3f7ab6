"""``[source]`` with ``kind = "postgres"``."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from cdcd._config import SourceConfigBase, read_secret

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgresSourceConfig(SourceConfigBase):
    kind: Literal["postgres"]
    slot_name: str | None = Field(default=None, description="default: cdcd_<name>")
    publication_name: str | None = Field(default=None, description="default: cdcd_<name>")
    create_slot: bool = True
    create_publication: bool = True
    status_interval_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="how often a heartbeat offset may confirm WAL that holds nothing for "
        "the daemon (the server's WAL end, once nothing is on its way to Kafka), "
        "heartbeat_action_query runs and the slot's lag is read",
    )
    heartbeat_action_query: str | None = Field(
        default=None,
        description="Debezium's heartbeat.action.query: SQL run in the slot's database every "
        "heartbeat_interval_s (e.g. an upsert into a heartbeat table), so that the slot has "
        "WAL of its own database to move over while that database is idle",
    )
    slot_lag_alarm_bytes: int | None = Field(
        default=None,
        ge=1,
        description="a warning naming the slot while its confirmed position is more than this "
        "behind the server's WAL end (once, then every minute; an info line when it is back)",
    )
    reader: Literal["inline", "process"] = Field(
        default="inline",
        description="where the replication stream is read and decoded: the daemon itself, "
        "or a worker process (a second core: faster catch-up, more memory)",
    )
    sslmode: SslMode | None = Field(
        default=None,
        description="libpq's sslmode; verify-full checks the server's certificate and name; "
        "default: the DSN's own, else libpq's (prefer)",
    )
    sslrootcert: str | None = Field(
        default=None, description="the CA certificate (PEM) that signed the server's, or 'system'"
    )
    sslcert: str | None = Field(default=None, description="a client certificate (PEM)")
    sslkey: str | None = Field(default=None, description="its private key (PEM, mode 0600)")
    sslpassword_env: str | None = Field(
        default=None, description="the environment variable holding sslkey's passphrase"
    )
    sslpassword_file: str | None = Field(default=None, description="a file holding it")
    snapshot_reader: Literal["inline", "process"] = Field(
        default="process",
        description="where an initial snapshot's tables are read and converted: a scan "
        "process per table being read, joined to the exported snapshot (a free second core: "
        "up to ~35 % more rows/s, ~55 MB more memory a process), or the daemon itself",
    )

    def sslpassword(self) -> SecretStr | None:
        """The passphrase of an encrypted ``sslkey``, if ``sslpassword_env``/``_file`` is set."""
        return read_secret(self.sslpassword_env, self.sslpassword_file, "source.sslpassword")

    def secrets(self) -> dict[str, SecretStr | None]:
        return {**super().secrets(), "sslpassword": self.sslpassword()}

    @field_validator("dsn")
    @classmethod
    def _pg_dsn(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a URL like postgresql://user@host:5432/dbname")
        if not urlsplit(value).path.strip("/"):
            raise ValueError("names no database: add it, as in postgresql://user@host:5432/dbname")
        return value


MODEL = PostgresSourceConfig
