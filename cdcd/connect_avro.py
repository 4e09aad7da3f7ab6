"""``[sink] format = "avro"``: keys and values in Avro, as Confluent's AvroConverter writes
them: the 5-byte header (magic byte 0, the schema's 4-byte big-endian registry id), then
the datum in Avro's binary encoding (fastavro).

Schemas are those of JSON with schema (``cdcd.connect_json.MessageSchemas``) translated
to Avro (``cdcd.schemas.avro``), registered in a Confluent-compatible schema registry
under ``<topic>-key`` and ``<topic>-value`` (TopicNameStrategy) on first use and kept.
Registering never blocks the event loop: a record whose schema has no id yet is written
with a placeholder header and kept aside (``pending``); the pipeline then awaits
``register_pending()``, which registers each new schema in a worker thread and patches
those records' headers before any of them reaches the sink.
a table's new version (DDL) registers a new version of the subject, which the registry
accepts if its compatibility rule does; a refusal stops the daemon with the subject and
the registry's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import urllib.error
import urllib.request
from typing import Any

import fastavro

from cdcd.connect_json import MessageSchemas
from cdcd.envelope import Message
from cdcd.errors import SinkError
from cdcd.events import TableSchema
from cdcd.schemas.avro import Convert, avro_schema, datum_converter
from cdcd.schemas.connect import Schema
from cdcd.serialization import Record

__all__ = ["AvroSerializer", "SchemaRegistry", "avro_header"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def avro_header(schema_id: int) -> bytes:
    """Confluent's wire-format header: magic byte 0 and the schema id."""
    return b"\0" + schema_id.to_bytes(4, "big")


class SchemaRegistry:
    """The calls of a Confluent-compatible registry's REST API that cdcd makes."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def register(self, subject: str, schema: Any) -> int:
        """The id of ``schema`` under ``subject``, registered as a new version if new."""
        body = json.dumps({"schema": json.dumps(schema, separators=(",", ":"))}).encode()
        answer = self._call("POST", f"/subjects/{subject}/versions", body, subject)
        return int(answer["id"])

    def schema(self, schema_id: int) -> Any:
        """The schema registered with ``schema_id`` (a JSON value)."""
        answer = self._call("GET", f"/schemas/ids/{schema_id}", None, f"id {schema_id}")
        return json.loads(answer["schema"])

    def _call(self, method: str, path: str, body: bytes | None, what: str) -> Any:
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers={"Content-Type": _CONTENT_TYPE}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("message", detail)
            raise SinkError(
                f"schema registry at {self.url} refused {what} ({exc.code}): {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SinkError(
                f"schema registry at {self.url} (sink.schema_registry_url) cannot be "
                f"reached: {reason}"
            ) from None


class _Written:
    """A Connect schema's Avro form, parsed for fastavro, its datum converter, and its
    registry id under each subject."""

    __slots__ = ("avro", "connect", "convert", "ids", "parsed")

    def __init__(self, schema: Schema) -> None:
        self.connect = schema
        self.avro = avro_schema(schema)
        self.parsed = fastavro.parse_schema(self.avro)
        self.convert: Convert | None = datum_converter(schema)
        self.ids: dict[str, bytes] = {}


_UNREGISTERED = avro_header(0)  # until register_pending() gives the schema's id


class AvroSerializer:
    def __init__(self, schemas: MessageSchemas, registry: SchemaRegistry | str) -> None:
        self.schemas = schemas
        self.registry = (
            registry if isinstance(registry, SchemaRegistry) else SchemaRegistry(registry)
        )
        self._written: dict[int, _Written] = {}
        # (record, "key" or "value", its schema, its subject): headers still to patch
        self.pending: list[tuple[Record, str, _Written, str]] = []
        self._unregistered: tuple[_Written, str] | None = None

    def _encode(self, schema: Schema, subject: str, value: Any) -> bytes:
        written = self._written.get(id(schema))
        if written is None or written.connect is not schema:
            if len(self._written) > 4096:
                self._written.clear()
            written = self._written[id(schema)] = _Written(schema)
        header = written.ids.get(subject)
        if header is None:
            header = _UNREGISTERED
            self._unregistered = (written, subject)
        buffer = io.BytesIO()
        buffer.write(header)
        datum = value if written.convert is None else written.convert(value)
        fastavro.schemaless_writer(buffer, written.parsed, datum)
        return buffer.getvalue()

    async def register_pending(self) -> None:
        """Register the schemas of the records kept aside (in a worker thread: the event
        loop never waits on the registry) and patch their headers. A refusal raises
        ``SinkError`` naming the subject and the registry's message; those records (and
        the chunk they are in) then never reach the sink."""
        pending, self.pending = self.pending, []
        for record, field, written, subject in pending:
            header = written.ids.get(subject)
            if header is None:
                schema_id = await asyncio.to_thread(self.registry.register, subject, written.avro)
                header = written.ids[subject] = avro_header(schema_id)
            data = getattr(record, field)
            setattr(record, field, header + data[5:])

    def serialize_all(self, messages: list[Any], out: list[Record], other: Any) -> None:
        """As ``JsonSerializer.serialize_all``, in Avro (a tombstone's value stays null)."""
        append, schemas = out.append, self.schemas
        for message in messages:
            kind = type(message)
            if kind is not Message:
                if kind is TableSchema:
                    schemas.add(message)
                else:
                    other(message, len(out))
                continue
            topic, key, value = message.topic, message.key, message.value
            key_pending = value_pending = None
            if key is not None:
                key = self._encode(schemas.key(message), f"{topic}-key", key)
                key_pending, self._unregistered = self._unregistered, None
            if value is not None:
                value = self._encode(schemas.value(message), f"{topic}-value", value)
                value_pending, self._unregistered = self._unregistered, None
            record = Record(topic, key, value, message.headers)
            if key_pending is not None:
                self.pending.append((record, "key", *key_pending))
            if value_pending is not None:
                self.pending.append((record, "value", *value_pending))
            append(record)
