"""The configuration: the only place that reads it.

A TOML file, validated at start by pydantic; every error names the key and says what is
wrong. Secrets are read from the environment (``*_env`` keys) or a file (``*_file``
keys), never from the command line, and are kept out of ``repr`` so they are not logged.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from cdcd import sinks, sources
from cdcd._config import NAME, SinkConfigBase, SourceConfigBase, Strict, check_topic_name
from cdcd.encoding import (
    MODES,
    BigintUnsignedMode,
    BinaryMode,
    DecimalMode,
    Encoding,
    HstoreMode,
    IntervalMode,
    TimePrecisionMode,
)
from cdcd.errors import ConfigError
from cdcd.snapshot.config import NotificationsConfig, SignalsConfig, SnapshotConfig
from cdcd.transforms.config import (
    FlattenConfig,
    OutboxConfig,
    RollupConfig,
    ShapingConfig,
    TransformsConfig,
)


def _tagged(models: list[type[Strict]]) -> Any:
    """The models of every kind as one type, told apart by their ``kind`` key."""
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="kind")]  # noqa: UP007


# Each source and sink kind brings its model (cdcd/<sources|sinks>/<kind>/config.py).
_SOURCE_MODELS = sources.config_models()
_SINK_MODELS = sinks.config_models()
_KINDS = frozenset(sources.kinds()) | frozenset(sinks.kinds())
if TYPE_CHECKING:  # what the core may read of them
    SourceConfig = SourceConfigBase
    SinkConfig = SinkConfigBase
else:
    SourceConfig = _tagged(_SOURCE_MODELS)
    SinkConfig = _tagged(_SINK_MODELS)


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class HttpConfig(Strict):
    listen: str | None = Field(
        default=None,
        description='"host:port" serving /metrics, /healthz and /readyz; unset: none',
    )

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)  # a ValueError says what is wrong
        return value

    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on; None: no endpoint."""
        return split_listen(self.listen) if self.listen is not None else None


def split_listen(text: str) -> tuple[str, int]:
    """``host:port`` (an IPv6 host in brackets, ``[::1]:9187``) as (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if (
        not sep
        or not host
        or (":" in host and not bracketed)
        or not port.isdigit()
        or not 0 < int(port) < 65536
    ):
        raise ValueError(
            f"{text!r} is not host:port with a port from 1 to 65535 (e.g. "
            '"127.0.0.1:9187", "0.0.0.0:9187" for every interface, "[::1]:9187")'
        )
    return host, int(port)


class PipelineConfig(Strict):
    max_batch_events: int = Field(default=5000, ge=1)
    max_in_flight_batches: int = Field(default=8, ge=1)
    skipped_operations: list[Literal["c", "u", "d", "t"]] = Field(default_factory=list)


class OffsetsConfig(Strict):
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
        return check_topic_name(value)


class TransactionsConfig(Strict):
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


class HaConfig(Strict):
    """``[ha]``: instances with the same name on several hosts, one active, the others
    warm standbys; Kafka the only coordinator (docs/ha.md)."""

    enabled: bool = Field(
        default=True,
        description="with a Kafka sink: a second instance with the same name stands by "
        "instead of fencing the first; false: the newest instance fences the older one",
    )
    lease_ms: int = Field(
        default=5000,
        ge=500,
        description="a standby takes over when it has seen no heartbeat of the active "
        "instance for this long; the active one stops writing before that",
    )
    heartbeat_ms: int = Field(default=1000, ge=50, description="each instance's heartbeat")
    status_topic: str = Field(
        default="cdcd-status", description="the heartbeats of every instance (cdcd status)"
    )
    dedup_topic: str = Field(
        default="cdcd-dedup",
        description="compacted: the last position in Kafka per source identity, written "
        "with the data; a new leader drops every change at or below it",
    )
    source_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="an active instance that cannot read its source this long steps "
        "down, so that a standby with a working path takes over",
    )
    priority: int = Field(
        default=0, description="order of succession: a lower value takes over first"
    )

    @field_validator("status_topic", "dedup_topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        return check_topic_name(value)

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> HaConfig:
        if self.lease_ms < 3 * self.heartbeat_ms:
            raise ValueError(
                f"lease_ms ({self.lease_ms}) must be at least 3 heartbeat_ms "
                f"({self.heartbeat_ms}): a standby would take over from a working instance"
            )
        return self


# [encoding]'s keys that are a mode, and the Encoding field each sets
_MODE_FIELDS = {
    "decimal_handling_mode": "decimal_mode",
    "time_precision_mode": "time_precision_mode",
    "binary_handling_mode": "binary_mode",
    "bigint_unsigned_handling_mode": "bigint_unsigned_mode",
    "interval_handling_mode": "interval_mode",
    "hstore_handling_mode": "hstore_mode",
}
# Debezium's spelling of each key
_DEBEZIUM_KEYS = {
    field.replace("_", "."): field
    for field in (*_MODE_FIELDS, "money_fraction_digits", "column_propagate_source_type")
}


class EncodingConfig(Strict):
    """How values are encoded: Debezium's connector options, under its names (each also
    accepted in Debezium's own spelling, quoted: ``"decimal.handling.mode" = "string"``)."""

    decimal_handling_mode: DecimalMode = Field(
        default="precise",
        description="Debezium's decimal.handling.mode: numeric/DECIMAL/money as a Kafka "
        "Connect Decimal (precise), a JSON number (double) or a plain string (string)",
    )
    time_precision_mode: TimePrecisionMode | None = Field(
        default=None,
        description="Debezium's time.precision.mode: adaptive (PostgreSQL's default), "
        "adaptive_time_microseconds (MySQL's default), connect (Kafka Connect's Date, Time, "
        "Timestamp: milliseconds)",
    )
    binary_handling_mode: BinaryMode = Field(
        default="bytes",
        description="Debezium's binary.handling.mode: bytes, base64, base64-url-safe, hex",
    )
    bigint_unsigned_handling_mode: BigintUnsignedMode = Field(
        default="long",
        description="Debezium's bigint.unsigned.handling.mode (MySQL): long (wraps past "
        "2^63) or precise (a Kafka Connect Decimal)",
    )
    interval_handling_mode: IntervalMode = Field(
        default="numeric",
        description="Debezium's interval.handling.mode (PostgreSQL): numeric (microseconds) "
        "or string (ISO 8601, P1Y2M3DT4H5M6.78S)",
    )
    hstore_handling_mode: HstoreMode = Field(
        default="json",
        description="Debezium's hstore.handling.mode (PostgreSQL): json (a JSON string) or "
        "map (a JSON object)",
    )
    money_fraction_digits: int = Field(
        default=2, ge=0, description="Debezium's money.fraction.digits (PostgreSQL)"
    )
    column_propagate_source_type: list[str] = Field(
        default_factory=list,
        description="Debezium's column.propagate.source.type: regular expressions over "
        "'<schema or database>.<table>.<column>' whose type name, length and scale a "
        "schema carries",
    )

    @model_validator(mode="before")
    @classmethod
    def _debezium_spelling(cls, data: Any) -> Any:
        # Accept Debezium's own keys, written quoted in TOML: "decimal.handling.mode" = "string".
        if not isinstance(data, dict):
            return data
        for key, value in data.items():
            dotted = [d for d in _DEBEZIUM_KEYS if d.startswith(f"{key}.")]
            if dotted and isinstance(value, dict):  # unquoted: TOML reads nested tables
                raise ValueError(
                    f'write Debezium\'s key quoted, "{dotted[0]}" = ..., '
                    f"or as {_DEBEZIUM_KEYS[dotted[0]]} = ..."
                )
        data = dict(data)
        for spelled, field in _DEBEZIUM_KEYS.items():
            if spelled in data:
                if field in data:
                    raise ValueError(f'{field} and "{spelled}" are the same setting: keep one')
                data[field] = data.pop(spelled)
        return data

    @field_validator(*_MODE_FIELDS, mode="before")
    @classmethod
    def _known_mode(cls, value: Any, info: ValidationInfo) -> Any:
        allowed = MODES[_MODE_FIELDS[str(info.field_name)]]
        if value not in allowed and not (
            value is None and info.field_name == "time_precision_mode"
        ):
            listed = ", ".join(f'"{mode}"' for mode in allowed)
            raise ValueError(f"{value!r} is not one of {listed}")
        return value

    @field_validator("column_propagate_source_type", mode="before")
    @classmethod
    def _regexes(cls, value: Any) -> Any:
        if isinstance(value, str):  # Debezium's comma-separated list
            value = [part.strip() for part in value.split(",") if part.strip()]
        for pattern in value if isinstance(value, list) else ():
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value

    def modes(self, time_precision_modes: tuple[TimePrecisionMode, ...], kind: str) -> Encoding:
        """The modes a source of ``kind`` and its ``time_precision_modes`` (its default
        first) runs with; ValueError if ``time_precision_mode`` is not one of them."""
        time_mode = self.time_precision_mode or time_precision_modes[0]
        if time_mode not in time_precision_modes:
            listed = ", ".join(f'"{mode}"' for mode in time_precision_modes)
            raise ValueError(
                f"encoding.time_precision_mode: {time_mode!r} is not supported by the {kind} "
                f"source (nor by Debezium's connector for it): one of {listed}"
            )
        return Encoding(
            decimal_mode=self.decimal_handling_mode,
            time_precision_mode=time_mode,
            binary_mode=self.binary_handling_mode,
            bigint_unsigned_mode=self.bigint_unsigned_handling_mode,
            interval_mode=self.interval_handling_mode,
            hstore_mode=self.hstore_handling_mode,
            money_fraction_digits=self.money_fraction_digits,
            propagate_source_types=tuple(self.column_propagate_source_type),
        )


class Config(Strict):
    name: str
    delivery: Literal["exactly-once", "at-least-once"] = "exactly-once"
    source: SourceConfig
    sink: SinkConfig
    offsets: OffsetsConfig = OffsetsConfig()
    transactions: TransactionsConfig = TransactionsConfig()
    pipeline: PipelineConfig = PipelineConfig()
    encoding: EncodingConfig = EncodingConfig()
    snapshot: SnapshotConfig = SnapshotConfig()
    signals: SignalsConfig = SignalsConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    log: LogConfig = LogConfig()
    http: HttpConfig = HttpConfig()
    ha: HaConfig = HaConfig()
    outbox: OutboxConfig = OutboxConfig()
    rollup: RollupConfig = RollupConfig()
    shaping: ShapingConfig | None = None
    flatten: FlattenConfig | None = None
    transforms: TransformsConfig = TransformsConfig()

    @model_validator(mode="before")
    @classmethod
    def _default_topic_prefix(cls, data: Any) -> Any:
        # The envelope's source.name is the topic prefix: a sink that does not require one
        # (stdout) gets the daemon's name, as a Kafka sink's would be in most
        # configurations, not a fixed "cdcd".
        sink = data.get("sink") if isinstance(data, dict) else None
        if isinstance(sink, dict) and "topic_prefix" not in sink:
            model = next((m for m in _SINK_MODELS if _kind_of(m) == sink.get("kind")), None)
            field = model.model_fields.get("topic_prefix") if model is not None else None
            if field is not None and not field.is_required():
                return {**data, "sink": {**sink, "topic_prefix": str(data.get("name") or "")}}
        return data

    @model_validator(mode="after")
    def _time_precision_supported(self) -> Config:
        self.encoding_modes()  # a ValueError names its key
        return self

    def encoding_modes(self) -> Encoding:
        """The encoding modes of ``[encoding]`` for this source (its own defaults)."""
        return self.encoding.modes(self.source.time_precision_modes, self.source.kind)

    @model_validator(mode="after")
    def _transform_tables_captured(self) -> Config:
        for section, names in (("outbox", self.outbox.tables), ("rollup", self.rollup.tables)):
            for name in names:
                namespace, _, table = name.partition(".")
                if not self.source.includes(namespace, table):
                    raise ValueError(
                        f"{section}.tables: {name} is not captured (source.tables, "
                        "source.exclude_tables, source.databases leave it out)"
                    )
        both = sorted(set(self.outbox.tables) & set(self.rollup.tables))
        if both:
            raise ValueError(
                f"rollup.tables: {', '.join(both)} is an outbox (outbox.tables): its rows "
                "become business messages, there are no row changes left to roll up"
            )
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(
                "may hold only letters, digits, '.', '_' and '-', and not start with a sign"
            )
        return value


def _kind_of(model: type[Strict]) -> str | None:
    kind = model.model_fields["kind"].annotation
    return getattr(kind, "__args__", (None,))[0]


def _location(loc: tuple[Any, ...]) -> str:
    # pydantic puts the discriminator's value into the path ("source.postgres.dsn"): drop it.
    parts = [str(p) for p in loc if p not in _KINDS]
    return ".".join(parts) or "(top level)"


_NAMES_ITS_KEY = re.compile(r"^[a-z_]+\.[a-z_.]+: ")


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
        if not err["loc"] and _NAMES_ITS_KEY.match(msg):
            lines.append(msg)  # a check across sections names its own key
            continue
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
        config.source.read_secrets()
        config.sink.read_secrets()
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
