"""Debezium's signals and notifications, as cdcd reads and writes them.

A signal (Kafka channel: key = the daemon's ``topic_prefix``, value
``{"id"?, "type", "data"}``; source channel: a row ``id, type, data`` inserted in
``signals.data_collection``):

- ``execute-snapshot``: ``data-collections`` (regular expressions over ``schema.table``),
  ``type`` ``incremental`` (default) or ``blocking``, ``additional-conditions``
  (``[{"data-collection": ..., "filter": "<SQL condition>"}]``);
- ``stop-snapshot`` (``data-collections`` optional: those tables, else the whole
  snapshot), ``pause-snapshot``, ``resume-snapshot``; ``log`` (``message``).

Notifications carry Debezium's fields: ``id`` (the snapshot's), ``aggregate_type``,
``type``, ``additional_data`` (strings), ``timestamp``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdcd.errors import CdcdError
from cdcd.events import Notification

SIGNAL_TYPES = ("execute-snapshot", "stop-snapshot", "pause-snapshot", "resume-snapshot", "log")
INCREMENTAL = "Incremental Snapshot"
INITIAL = "Initial Snapshot"


class SignalError(CdcdError):
    """A signal that cannot be acted on; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Signal:
    id: str
    type: str
    collections: tuple[str, ...] = ()
    snapshot_type: str = "incremental"
    conditions: dict[str, str] = field(default_factory=dict)  # table pattern -> filter
    message: str = ""
    channel: str = "kafka"


def parse_signal(
    value: Any, *, signal_id: str | None = None, channel: str = "kafka"
) -> Signal:
    """A signal from its JSON (bytes, text or already a dict), ``data`` as an object or
    as JSON text (the signal table's column); ``SignalError`` says what is wrong."""
    try:
        body = orjson.loads(value) if isinstance(value, (bytes, str)) else value
    except orjson.JSONDecodeError as exc:
        raise SignalError(f"a signal is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise SignalError("a signal must be a JSON object with type and data")
    kind = body.get("type")
    if kind not in SIGNAL_TYPES:
        raise SignalError(f"signal type {kind!r} is not one of {', '.join(SIGNAL_TYPES)}")
    data = body.get("data") or {}
    if isinstance(data, (str, bytes)):
        try:
            data = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError as exc:
            raise SignalError(f"the data of a {kind} signal is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SignalError(f"the data of a {kind} signal must be a JSON object")
    ident = str(signal_id or body.get("id") or uuid.uuid4())
    collections = data.get("data-collections") or []
    if isinstance(collections, str):
        collections = [collections]
    if not isinstance(collections, list) or not all(isinstance(c, str) for c in collections):
        raise SignalError("data-collections must be a list of regular expressions over schema.table")
    if kind == "execute-snapshot" and not collections:
        raise SignalError("an execute-snapshot signal needs data-collections (which tables)")
    snapshot_type = str(data.get("type") or "incremental").lower()
    if snapshot_type not in ("incremental", "blocking"):
        raise SignalError(f"snapshot type {snapshot_type!r} is not incremental or blocking")
    return Signal(
        ident,
        kind,
        tuple(collections),
        snapshot_type,
        _conditions(data.get("additional-conditions")),
        str(data.get("message") or ""),
        channel,
    )


def _conditions(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if not isinstance(value, list):
        raise SignalError("additional-conditions must be a list of {data-collection, filter}")
    out = {}
    for entry in value:
        if not isinstance(entry, dict) or not entry.get("data-collection") or "filter" not in entry:
            raise SignalError(
                f"additional-conditions entry {entry!r} needs data-collection and filter"
            )
        out[str(entry["data-collection"])] = str(entry["filter"])
    return out


def signal_value(signal: Signal) -> bytes:
    """The Kafka record value that sends ``signal`` (what ``cdcd snapshot`` writes)."""
    data: dict[str, Any] = {}
    if signal.collections:
        data["data-collections"] = list(signal.collections)
    if signal.type == "execute-snapshot":
        data["type"] = signal.snapshot_type
    if signal.conditions:
        data["additional-conditions"] = [
            {"data-collection": table, "filter": condition}
            for table, condition in signal.conditions.items()
        ]
    if signal.message:
        data["message"] = signal.message
    return orjson.dumps({"id": signal.id, "type": signal.type, "data": data})


def notification(
    snapshot_id: str, kind: str, aggregate: str, connector_name: str, **data: Any
) -> Notification:
    """A notification with Debezium's fields; ``data`` values become strings."""
    additional = {"connector_name": connector_name}
    additional.update({k: _text(v) for k, v in data.items() if v is not None})
    return Notification(snapshot_id, aggregate, kind, additional, time.time_ns() // 1_000_000)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return orjson.dumps(value).decode()


class Notices:
    """The notifications of one snapshot, with Debezium's types and additional data."""

    def __init__(self, connector_name: str, aggregate: str) -> None:
        self.name = connector_name
        self.aggregate = aggregate

    def of(self, snapshot_id: str, kind: str, **data: Any) -> Notification:
        return notification(snapshot_id, kind, self.aggregate, self.name, **data)

    def chunk(
        self, progress: Any, table: Any, last_key: Any, rows_in_table: int, done: bool
    ) -> list[Notification]:
        """IN_PROGRESS after a chunk (with cdcd's row counts for progress bars), and
        TABLE_SCAN_COMPLETED once the table is read."""
        out = [
            self.of(
                progress.id,
                "IN_PROGRESS",
                data_collections=list(progress.pending) or [table.id],
                current_collection_in_progress=table.id,
                last_processed_key=last_key,
                rows_scanned=rows_in_table,
                rows_estimated=table.estimated_rows,
                total_rows_scanned=progress.rows,
            )
        ]
        if done:
            out.append(
                self.of(
                    progress.id,
                    "TABLE_SCAN_COMPLETED",
                    data_collection=table.id,
                    scanned_collection=table.id,
                    total_rows_scanned=rows_in_table,
                    status="SUCCEEDED" if rows_in_table else "EMPTY",
                )
            )
        return out
