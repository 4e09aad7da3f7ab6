"""The outbox router: Debezium's EventRouter in the daemon.

A row inserted into an outbox table becomes one message: on the topic
``route_topic_replacement`` names (``${routedByValue}``: the ``route_by_field`` column),
keyed by the ``table_field_event_key`` column, with the ``table_field_event_payload``
column as its value (parsed when ``expand_json_payload``), the ``table_field_event_id``
column as header ``id`` and the ``additional_placement`` columns as headers or fields
beside ``payload`` in the value. DELETEs (an outbox's usual clean-up) publish nothing;
an UPDATE of an outbox row publishes nothing either and is warned about, once a table.

A missing column is found at the first row of each outbox table (the sources know the
columns only once a row is decoded): the daemon stops there, before anything of that
row's transaction is acknowledged, with one line naming the option and the column.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import structlog

from cdcd.envelope import Message
from cdcd.errors import ConfigError
from cdcd.events import OP_CREATE, OP_READ, OP_UPDATE, ChangeEvent
from cdcd.topics import kafka_topic_name
from cdcd.transforms import Item
from cdcd.transforms.config import OutboxConfig


def header_bytes(value: Any) -> bytes:
    """A header's value as Kafka Connect's SimpleHeaderConverter writes it: a string as
    its UTF-8 bytes, anything else as JSON."""
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


class OutboxRouter:
    def __init__(self, config: OutboxConfig) -> None:
        self.config = config
        self.tables = frozenset(tuple(name.split(".", 1)) for name in config.tables)
        self.dropped = 0  # deletes and updates of outbox rows (counted as filtered)
        self._checked: set[tuple[str, str]] = set()
        self._warned: set[tuple[str, str]] = set()
        placements = config.placements()
        self._headers = [(column, name) for column, where, name in placements if where == "header"]
        self._fields = [(column, name) for column, where, name in placements if where == "envelope"]
        self._log = structlog.get_logger("cdcd")

    def apply(self, items: list[Item]) -> list[Item]:
        tables = self.tables
        out: list[Item] = []
        append = out.append
        dropped = 0
        for item in items:
            if type(item) is Message:
                event = item.event
                if type(event) is ChangeEvent and (event.namespace, event.table) in tables:
                    routed = self._route(item, event)
                    if routed is None:
                        dropped += item.value is not None  # a delete's tombstone is no event
                        continue
                    item = routed
            append(item)
        self.dropped = dropped
        return out

    def _route(self, item: Message, event: ChangeEvent) -> Message | None:
        if item.value is None or (event.op != OP_CREATE and event.op != OP_READ):
            if event.op == OP_UPDATE and item.value is not None:
                self._warn_update(event)
            return None  # deletes, their tombstones, truncates, updates
        row = event.after
        assert row is not None
        table = (event.namespace, event.table)
        if table not in self._checked:
            self._check_columns(table, row)
            self._checked.add(table)
        config = self.config
        routed_by = row[config.route_by_field]
        topic = kafka_topic_name(
            config.route_topic_replacement.replace("${routedByValue}", str(routed_by))
        )
        payload = row[config.table_field_event_payload]
        if config.expand_json_payload and isinstance(payload, str):
            # As Debezium: a payload that is not JSON is published as it is.
            with contextlib.suppress(orjson.JSONDecodeError):
                payload = orjson.loads(payload)
        if self._fields:
            payload = {"payload": payload, **{name: row[col] for col, name in self._fields}}
        headers = [("id", header_bytes(row[config.table_field_event_id]))]
        headers += [(name, header_bytes(row[col])) for col, name in self._headers]
        # No ``event``: what follows sees a business message, not a row change.
        return Message(topic, row[config.table_field_event_key], payload, headers, None)

    def _check_columns(self, table: tuple[str, str], row: dict[str, Any]) -> None:
        config = self.config
        wanted = [
            ("route_by_field", config.route_by_field),
            ("table_field_event_id", config.table_field_event_id),
            ("table_field_event_key", config.table_field_event_key),
            ("table_field_event_payload", config.table_field_event_payload),
        ] + [("additional_placement", column) for column, _, _ in config.placements()]
        for option, column in wanted:
            if column not in row:
                columns = ", ".join(row)
                raise ConfigError(
                    f"outbox.{option}: outbox table {table[0]}.{table[1]} has no column "
                    f"{column!r} (its columns: {columns}); name an existing column or add it"
                )

    def _warn_update(self, event: ChangeEvent) -> None:
        table = (event.namespace, event.table)
        if table in self._warned:
            return
        self._warned.add(table)
        self._log.warning(
            f"an UPDATE of outbox table {table[0]}.{table[1]} is not published (outbox rows "
            "are inserted, then deleted; warned once a table)",
            table=f"{table[0]}.{table[1]}",
        )
