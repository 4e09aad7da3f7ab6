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

    def serialize_all(self, messages: list[Any], out: list[Record], other: Any) -> None:
        """Append the record of each message to ``out``, in order; anything else among
        them (a commit mark) goes to ``other(item, len(out))``. One loop a chunk, and a
        tombstone's key (the delete's, just before it) encoded once, and so is a source
        block that messages share (a snapshot chunk's rows: ``EnvelopeBuilder``), put in
        their values as JSON already written (this is the messages' last stage)."""
        append = out.append
        last_key: Any = None
        last_key_bytes: bytes | None = None
        last_block: Any = None
        written: orjson.Fragment | None = None
        for message in messages:
            if type(message) is not Message:
                other(message, len(out))
                continue
            key = message.key
            if key is None:
                key_bytes = None
            elif key is last_key:
                key_bytes = last_key_bytes
            else:
                key_bytes = last_key_bytes = dumps(key)
                last_key = key
            value = message.value
            if type(value) is dict and (block := value.get("source")) is not None:
                if block is last_block:
                    if written is None:
                        written = orjson.Fragment(orjson.dumps(block))
                    value["source"] = written
                elif type(block) is dict:
                    last_block, written = block, None
            append(
                Record(
                    message.topic,
                    key_bytes,
                    None if value is None else dumps(value),
                    message.headers,
                )
            )
