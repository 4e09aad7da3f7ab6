"""``[sink]`` with ``kind = "kafka"``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from cdcd._config import SinkConfigBase, check_topic_name, read_secret


class KafkaSinkConfig(SinkConfigBase):
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
        return check_topic_name(value)

    @model_validator(mode="after")
    def _security(self) -> KafkaSinkConfig:
        # Keys that would be ignored are errors: a setting that seems to secure the
        # connection but does not is worse than none.
        protocol = self.security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol.endswith("SSL")
        if sasl and not (self.sasl_mechanism and self.sasl_username):
            raise ValueError(
                f"security_protocol {protocol} needs sink.sasl_mechanism (PLAIN, SCRAM-SHA-256 "
                "or SCRAM-SHA-512), sink.sasl_username and sink.sasl_password_env or "
                "sink.sasl_password_file"
            )
        if sasl and not (self.sasl_password_env or self.sasl_password_file):
            raise ValueError(
                "the SASL password: set sink.sasl_password_env (an environment variable's "
                "name) or sink.sasl_password_file"
            )
        if self.sasl_password_env and self.sasl_password_file:
            raise ValueError("set one of sink.sasl_password_env and sink.sasl_password_file")
        for key in ("sasl_mechanism", "sasl_username", "sasl_password_env", "sasl_password_file"):
            if getattr(self, key) is not None and not sasl:
                raise ValueError(
                    f"sink.{key} is used only with security_protocol SASL_SSL or "
                    f"SASL_PLAINTEXT (it is {protocol})"
                )
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key) is not None and not tls:
                raise ValueError(
                    f"sink.{key} is used only with security_protocol SSL or SASL_SSL "
                    f"(it is {protocol})"
                )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("sink.ssl_keyfile: set sink.ssl_certfile too (the client certificate)")
        return self

    def sasl_password(self) -> SecretStr | None:
        return read_secret(self.sasl_password_env, self.sasl_password_file, "sink.sasl_password")

    def read_secrets(self) -> None:
        self.sasl_password()

    def address(self) -> str | None:
        return self.bootstrap_servers

    def where(self) -> str:
        return f"Kafka at {self.bootstrap_servers}"


MODEL = KafkaSinkConfig
