"""How a reader process (``cdcd.worker``) hands its items to the daemon: frames on a pipe.

A frame is a 4-byte little-endian length, then a format byte and the payload: ``j`` for
a chunk of items as JSON (orjson both ways: about ten times cheaper than pickling the
objects, which cost more than decoding the rows did), ``p`` for a pickle (an exception,
or a chunk holding a value JSON cannot carry exactly).

In JSON a change is an array ``[op, namespace, table, key, before, after, source, txid]``;
a commit ``{"commit": position, "txid", "ts_ms", "event_count", "extra"}``; a schema
change ``{"ddl", "namespace", "source", "table_changes"}``; a table's schema
``{"table_schema": [namespace, table, columns, key_columns]}``. Every value of a change is
already what Debezium writes, so JSON gives back exactly what went in.

A snapshot's chunk (``cdcd.snapshot.Chunk``, from a scan process) is a frame of its own,
``c``: ``(table, last_key, done, extra, op, source, rows)`` with ``table`` as
``(namespace, name, key_columns, estimated_rows)`` and each row ``(key, after)``, in
``marshal``'s format (the daemon and the process run the same Python; it carries every
value exactly, big integers too, and is read twice as fast as JSON): its rows share one
``op``, ``source`` dict and table, no ``before`` and no transaction (as a reader builds
them), so the source is sent once and given back shared. A chunk whose rows do not, or
holding a value marshal cannot carry, is pickled (``p``).
"""

from __future__ import annotations

import contextlib
import marshal
import pickle
from typing import Any

import orjson

from cdcd.events import ChangeEvent, Commit, SchemaChange, SourceItem, TableSchema
from cdcd.positions import position_from_dict
from cdcd.snapshot import Chunk, SnapshotTable

JSON, PICKLE, CHUNK = b"j", b"p", b"c"


def _plain(item: SourceItem) -> Any:
    if type(item) is ChangeEvent:
        return (
            item.op,
            item.namespace,
            item.table,
            item.key,
            item.before,
            item.after,
            item.source,
            item.txid,
        )
    if type(item) is Commit:
        return {
            "commit": item.position.to_dict(),
            "txid": item.txid,
            "ts_ms": item.ts_ms,
            "event_count": item.event_count,
            "extra": item.extra,
        }
    if type(item) is TableSchema:
        return {"table_schema": [item.namespace, item.table, item.columns, item.key_columns]}
    assert isinstance(item, SchemaChange)
    return {
        "ddl": item.ddl,
        "namespace": item.namespace,
        "source": item.source,
        "table_changes": item.table_changes,
    }


def pickled(message: Any) -> bytes:
    """One frame for anything, pickled (``p``): an exception, a worker's log line."""
    payload = PICKLE + pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return len(payload).to_bytes(4, "little") + payload


def encode(message: list[SourceItem] | BaseException) -> bytes:
    """One frame for a chunk of items, or for an exception."""
    if isinstance(message, BaseException):
        return pickled(message)
    try:
        payload = JSON + orjson.dumps([_plain(item) for item in message])
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
        return pickled(message)
    return len(payload).to_bytes(4, "little") + payload


def decode(payload: bytes) -> list[SourceItem] | BaseException:
    """The chunk (or exception) of a frame's payload (the bytes after its length)."""
    if payload[:1] == PICKLE:
        message: list[SourceItem] | BaseException = pickle.loads(payload[1:])
        return message
    items: list[SourceItem] = []
    append = items.append
    for entry in orjson.loads(payload[1:]):
        if type(entry) is list:
            append(ChangeEvent(*entry))
        elif "commit" in entry:
            append(
                Commit(
                    position_from_dict(entry["commit"]),
                    entry["txid"],
                    entry["ts_ms"],
                    entry["event_count"],
                    entry["extra"],
                )
            )
        elif "table_schema" in entry:
            namespace, table, columns, key_columns = entry["table_schema"]
            append(TableSchema(namespace, table, columns, tuple(key_columns)))
        else:
            append(
                SchemaChange(
                    entry["namespace"], entry["ddl"], entry["source"], entry["table_changes"]
                )
            )
    return items


def encode_chunk(chunk: Chunk) -> bytes:
    """One frame for a snapshot's chunk (``decode_chunk`` gives it back)."""
    rows = chunk.rows
    first = rows[0] if rows else None
    table = chunk.table
    shared = first is None or all(
        r.source is first.source and r.op == first.op and r.before is None and r.txid is None
        and r.table == table.name and r.namespace == table.namespace
        for r in rows
    )  # fmt: skip
    payload = None
    if shared and chunk.schema is None:  # (a table's first chunk, with its schema: pickled)
        head = (table.namespace, table.name, table.key_columns, table.estimated_rows)
        op, source = (first.op, first.source) if first is not None else (None, None)
        with contextlib.suppress(ValueError):  # a type marshal does not know
            payload = CHUNK + marshal.dumps(
                (head, chunk.last_key, chunk.done, chunk.extra, op, source,
                 [(r.key, r.after) for r in rows])
            )  # fmt: skip
    if payload is None:
        return pickled(chunk)
    return len(payload).to_bytes(4, "little") + payload


def decode_chunk(payload: bytes) -> Chunk | BaseException:
    """The chunk (or exception) of a frame's payload (the bytes after its length)."""
    if payload[:1] == PICKLE:
        message: Chunk | BaseException = pickle.loads(payload[1:])
        return message
    head, last_key, done, extra, op, source, rows = marshal.loads(payload[1:])
    namespace, name, key_columns, estimated = head
    table = SnapshotTable(namespace, name, tuple(key_columns), estimated)
    events = [ChangeEvent(op, namespace, name, key, None, after, source) for key, after in rows]
    return Chunk(table, events, last_key, done, extra)
