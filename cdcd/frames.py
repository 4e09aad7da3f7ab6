"""How a reader process (``cdcd.worker``) hands its items to the daemon: frames on a pipe.

A frame is a 4-byte little-endian length, then a format byte and the payload: ``j`` for
a chunk of items as JSON (orjson both ways: about ten times cheaper than pickling the
objects, which cost more than decoding the rows did), ``p`` for a pickle (an exception,
or a chunk holding a value JSON cannot carry exactly).

In JSON a change is an array ``[op, namespace, table, key, before, after, source, txid]``;
a commit ``{"commit": position, "txid", "ts_ms", "event_count", "extra"}``; a schema
change ``{"ddl", "namespace", "source", "table_changes"}``. Every value of a change is
already what Debezium writes, so JSON gives back exactly what went in.
"""

from __future__ import annotations

import pickle
from typing import Any

import orjson

from cdcd.events import ChangeEvent, Commit, SchemaChange, SourceItem
from cdcd.positions import position_from_dict

JSON, PICKLE = b"j", b"p"


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
    assert isinstance(item, SchemaChange)
    return {
        "ddl": item.ddl,
        "namespace": item.namespace,
        "source": item.source,
        "table_changes": item.table_changes,
    }


def encode(message: list[SourceItem] | BaseException) -> bytes:
    """One frame for a chunk of items, or for an exception."""
    if not isinstance(message, BaseException):
        try:
            payload = JSON + orjson.dumps([_plain(item) for item in message])
        except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
            payload = PICKLE + pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    else:
        payload = PICKLE + pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
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
        else:
            append(
                SchemaChange(
                    entry["namespace"], entry["ddl"], entry["source"], entry["table_changes"]
                )
            )
    return items
