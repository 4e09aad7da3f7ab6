"""Messages -> Kafka records: Debezium's envelope as JSON without schema, with orjson."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from cdcd.envelope import Message


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes.

    orjson (3.12 and later) keeps its whole growth buffer, 4 KiB at least, behind every
    result; records wait in batches, so a compact copy keeps memory to what they hold.
    """
    return bytes(memoryview(orjson.dumps(value)))


@dataclass(slots=True)
class Record:
    """One Kafka record, ready to send (``value`` None: a tombstone)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None


class JsonSerializer:
    """JSON without schema (Kafka Connect's JsonConverter with ``schemas.enable=false``)."""

    def serialize(self, message: Message, out: list[Record]) -> None:
        key = message.key
        value = message.value
        out.append(
            Record(
                message.topic,
                None if key is None else dumps(key),
                None if value is None else dumps(value),
                message.headers,
            )
        )
