"""The transforms' configuration: ``[outbox]``, ``[rollup]``, ``[shaping]``, ``[flatten]``,
``[transforms]``.

Options keep Debezium's (and Kafka Connect's) names where they exist, written quoted in
TOML (``"route.by.field" = "aggregatetype"``) or, for the outbox router, in the issue's
underscore spelling (``route_by_field``). Options that carry a value in their name
(``column.mask.with.5.chars``, ``column.mask.hash.SHA-256.with.salt.<salt>``,
``column.truncate.to.20.chars``) are parsed here, once, into plain fields.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cdcd._config import Strict, check_topic_name

TOMBSTONE_MODES = ("tombstone", "drop", "rewrite", "rewrite-with-tombstone", "delete-to-tombstone")


def dotted(data: Any, prefix: str = "") -> Any:
    """Unquoted dotted TOML keys come as nested tables: flattened back to ``a.b.c``."""
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(dotted(value, f"{name}."))
        else:
            out[name] = value
    return out


def _renamed(data: Any, aliases: dict[str, str]) -> Any:
    """Debezium's spelling of a key as the field's name (both given: an error)."""
    data = dotted(data)
    if not isinstance(data, dict):
        return data
    for debezium, field in aliases.items():
        if debezium in data:
            if field in data:
                raise ValueError(f'{field} and "{debezium}" are the same setting: keep one')
            data[field] = data.pop(debezium)
    return data


def comma_list(value: Any) -> Any:
    """Debezium's comma-separated lists, or TOML lists."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def compile_regex(text: str) -> re.Pattern[str]:
    """A Debezium-style regular expression (case-insensitive, matched whole)."""
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{text!r} is not a regular expression: {exc}") from None


def _table_name(value: str) -> str:
    namespace, dot, table = value.partition(".")
    if not dot or not namespace or not table:
        raise ValueError(f"{value!r} is not schema.table (MySQL: database.table)")
    return value


_OUTBOX_ALIASES = {
    "route.by.field": "route_by_field",
    "route.topic.replacement": "route_topic_replacement",
    "table.field.event.id": "table_field_event_id",
    "table.field.event.key": "table_field_event_key",
    "table.field.event.payload": "table_field_event_payload",
    "table.expand.json.payload": "expand_json_payload",
    "table.fields.additional.placement": "additional_placement",
}


class OutboxConfig(Strict):
    """Debezium's outbox EventRouter, with its defaults."""

    tables: list[str] = Field(default_factory=list, description='"schema.table" of outboxes')
    route_by_field: str = "aggregatetype"
    route_topic_replacement: str = "outbox.event.${routedByValue}"
    table_field_event_id: str = "id"
    table_field_event_key: str = "aggregateid"
    table_field_event_payload: str = "payload"
    expand_json_payload: bool = False
    additional_placement: list[str] = Field(
        default_factory=list, description='"column:header|envelope[:alias]"'
    )

    @model_validator(mode="before")
    @classmethod
    def _debezium_names(cls, data: Any) -> Any:
        return _renamed(data, _OUTBOX_ALIASES)

    @field_validator("tables")
    @classmethod
    def _tables(cls, value: list[str]) -> list[str]:
        return [_table_name(name) for name in value]

    @field_validator("additional_placement", mode="before")
    @classmethod
    def _placements(cls, value: Any) -> Any:
        value = comma_list(value)
        for entry in value if isinstance(value, list) else []:
            parts = str(entry).split(":")
            if len(parts) not in (2, 3) or not parts[0] or parts[1] not in ("header", "envelope"):
                raise ValueError(
                    f"{entry!r} is not column:header or column:envelope (with an optional "
                    ':alias), e.g. "type:header:eventType"'
                )
        return value

    def placements(self) -> list[tuple[str, str, str]]:
        """(column, header|envelope, name) of each additional placement."""
        out = []
        for entry in self.additional_placement:
            parts = entry.split(":")
            out.append((parts[0], parts[1], parts[2] if len(parts) == 3 else parts[0]))
        return out


class RollupConfig(Strict):
    """The transaction roll-up: a source transaction's changes of these tables as one
    message (in parts of at most ``max_changes``)."""

    tables: list[str] = Field(default_factory=list, description='"schema.table" rolled up')
    topic: str | None = Field(
        default=None, description="default: <topic_prefix>.transactions.rollup"
    )
    max_changes: int = Field(default=1000, ge=1, description="changes in one message at most")
    keep_rows: bool = Field(
        default=False, description="the rolled-up tables keep their per-row messages too"
    )

    @field_validator("tables")
    @classmethod
    def _tables(cls, value: list[str]) -> list[str]:
        return [_table_name(name) for name in value]

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        return None if value is None else check_topic_name(value)


_MASK = re.compile(r"^column\.mask\.with\.(\d+)\.chars$")
_HASH = re.compile(r"^column\.mask\.hash\.(v2\.)?(.+)\.with\.salt\.(.+)$")
_TRUNCATE = re.compile(r"^column\.truncate\.to\.(\d+)\.chars$")
_SHAPING_KEYS = {
    "regex",
    "replacement",
    "message.key.columns",
    "column.include.list",
    "column.exclude.list",
    "filter.operations",
    "filter.tables",
    "filter.condition",
}


class ColumnRule(Strict):
    """One masking/hashing/truncation option: what, how, and the columns' regexes."""

    kind: Literal["mask", "hash", "truncate"]
    key: str  # the option as written, for messages
    columns: list[str]
    length: int = 0  # mask: that many '*'; truncate: at most that many characters
    algorithm: str = ""
    salt: str = ""
    v2: bool = False  # column.mask.hash.v2: the value's bytes alone (V1: Java-serialised)


class ShapingConfig(Strict):
    """Connector-level column options and the routing SMTs, by their Debezium names."""

    regex: str | None = None
    replacement: str | None = None
    message_key_columns: str | None = None
    column_include_list: list[str] | None = None
    column_exclude_list: list[str] | None = None
    column_rules: list[ColumnRule] = Field(default_factory=list)
    filter_operations: list[Literal["c", "u", "d", "r", "t"]] | None = None
    filter_tables: list[str] | None = None
    filter_condition: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _debezium_names(cls, data: Any) -> Any:
        data = dotted(data)
        if not isinstance(data, dict) or "column_rules" in data:
            return data
        out: dict[str, Any] = {"column_rules": []}
        for key, value in data.items():
            rule = _column_rule(key, value)
            if rule is not None:
                out["column_rules"].append(rule)
            elif key in _SHAPING_KEYS:
                out[key.replace(".", "_")] = value
            else:
                known = ", ".join(sorted(_SHAPING_KEYS))
                raise ValueError(
                    f'"{key}" is not a known option (known: {known}, column.mask.with.N.chars, '
                    "column.mask.hash.<algorithm>.with.salt.<salt>, "
                    "column.mask.hash.v2.<algorithm>.with.salt.<salt>, column.truncate.to.N.chars)"
                )
        return out

    @field_validator(
        "column_include_list",
        "column_exclude_list",
        "filter_tables",
        "filter_operations",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        value = comma_list(value)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
        if value is None or (isinstance(value, list) and not value):
            raise ValueError("an empty list: give entries or leave the option out")
        return value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            compile_regex(value)
        return value

    def shapes_columns(self) -> bool:
        """Whether a connector-level column option is set."""
        return bool(
            self.column_rules
            or self.column_include_list
            or self.column_exclude_list
            or self.message_key_columns
        )

    @model_validator(mode="after")
    def _consistent(self) -> ShapingConfig:
        if (self.regex is None) != (self.replacement is None):
            raise ValueError("regex and replacement go together (Kafka Connect's RegexRouter)")
        if self.column_include_list and self.column_exclude_list:
            raise ValueError("set column.include.list or column.exclude.list, not both")
        for entry in (self.column_include_list or []) + (self.column_exclude_list or []):
            compile_regex(entry)
        for entry in self.filter_tables or []:
            compile_regex(entry)
        if self.filter_tables and not (self.filter_condition or self.filter_operations):
            raise ValueError("filter.tables: set filter.condition or filter.operations too")
        if self.filter_condition is not None:
            from cdcd.transforms.predicate import parse_condition

            parse_condition(self.filter_condition)  # a ValueError says what is wrong
        if self.message_key_columns is not None:
            from cdcd.transforms.columns import parse_key_columns

            parse_key_columns(self.message_key_columns)
        return self


def _column_rule(key: str, value: Any) -> dict[str, Any] | None:
    columns = comma_list(value)
    if (mask := _MASK.match(key)) is not None:
        rule: dict[str, Any] = {"kind": "mask", "length": int(mask[1])}
    elif (truncate := _TRUNCATE.match(key)) is not None:
        rule = {"kind": "truncate", "length": int(truncate[1])}
    elif (hashed := _HASH.match(key)) is not None:
        algorithm = hashed[2]
        if _hashlib_name(algorithm) not in hashlib.algorithms_available:
            raise ValueError(
                f'"{key}": {algorithm!r} is not a hash algorithm (e.g. SHA-256, SHA-512, MD5)'
            )
        rule = {"kind": "hash", "algorithm": algorithm, "salt": hashed[3], "v2": bool(hashed[1])}
    else:
        return None
    if not isinstance(columns, list) or not columns:
        raise ValueError(
            f'"{key}": give the columns, as regular expressions over schema.table.column'
        )
    for entry in columns:
        compile_regex(str(entry))
    return {**rule, "key": key, "columns": columns}


def _hashlib_name(algorithm: str) -> str:
    """Java's MessageDigest name (SHA-256) as hashlib's (sha256)."""
    return algorithm.lower().replace("-", "").replace("sha3", "sha3_")


_FLATTEN_ALIASES = {
    "delete.tombstone.handling.mode": "delete_tombstone_handling_mode",
    "add.fields": "add_fields",
    "add.headers": "add_headers",
    "add.fields.prefix": "add_fields_prefix",
    "add.headers.prefix": "add_headers_prefix",
}
# The envelope's fields and source fields that add.fields/add.headers may name.
ENVELOPE_FIELDS = ("op", "ts_ms", "ts_us", "ts_ns", "table", "db", "schema", "lsn", "txId")


class FlattenConfig(Strict):
    """Debezium's ExtractNewRecordState (``after`` only)."""

    delete_tombstone_handling_mode: Literal[
        "tombstone", "drop", "rewrite", "rewrite-with-tombstone", "delete-to-tombstone"
    ] = "tombstone"
    add_fields: list[str] = Field(default_factory=list)
    add_headers: list[str] = Field(default_factory=list)
    add_fields_prefix: str = "__"
    add_headers_prefix: str = "__"

    @model_validator(mode="before")
    @classmethod
    def _debezium_names(cls, data: Any) -> Any:
        return _renamed(data, _FLATTEN_ALIASES)

    @field_validator("add_fields", "add_headers", mode="before")
    @classmethod
    def _fields(cls, value: Any) -> Any:
        return comma_list(value)

    @field_validator("delete_tombstone_handling_mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if value not in TOMBSTONE_MODES:
            raise ValueError(f"{value!r} is not one of {', '.join(TOMBSTONE_MODES)}")
        return value


_HOOK = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class TransformsConfig(Strict):
    hook: str | None = Field(
        default=None, description='"package.module:function", f(event) -> list of events'
    )

    @field_validator("hook")
    @classmethod
    def _hook(cls, value: str | None) -> str | None:
        if value is not None:
            if not _HOOK.match(value):
                raise ValueError(f"{value!r} is not package.module:function")
            from cdcd.transforms.hook import load_hook

            load_hook(value)  # a ValueError says what cannot be imported
        return value
