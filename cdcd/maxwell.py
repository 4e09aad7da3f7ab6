"""``[sink] format = "maxwell"``: row changes as Maxwell's daemon writes them.

    {"database": "shop", "table": "orders", "type": "update", "ts": 1477053234,
     "xid": 23396, "commit": true, "position": "master.000006:800911",
     "gtid": "...", "server_id": 23042, "thread_id": 108,
     "data": {...the row after...}, "old": {...the changed columns before...}}

on Maxwell's default topic ``maxwell`` (``[sink] maxwell_topic``), keyed as Maxwell keys
(``kafka_key_format=hash``): ``{"database": ..., "table": ..., "pk.<column>": ...}``.
``commit: true`` marks the last row of a transaction (other rows have no ``commit``):
the last row seen is held until the next item says whether its transaction ended, so
its record may go out with the next chunk. ``type`` is insert, update, delete or, for a
snapshot's rows, bootstrap-insert; truncates and tombstones are not Maxwell's and are
not written. ``xid``: PostgreSQL's transaction id; MySQL/MariaDB's binlog rows carry no
InnoDB xid in cdcd's events, so it is the GTID's sequence number (none without GTIDs).
Messages that are not row changes (an outbox's, transaction metadata) stay JSON.
"""

from __future__ import annotations

from typing import Any

from cdcd.envelope import CommitMark, Message
from cdcd.events import ChangeEvent
from cdcd.serialization import Record, dumps

_TYPES = {"c": "insert", "u": "update", "d": "delete", "r": "bootstrap-insert"}


def maxwell_xid(event: ChangeEvent) -> int | None:
    """The transaction id Maxwell's ``xid`` field holds (see the module's docstring)."""
    txid = event.txid
    if txid is None:
        return None
    if "txId" in event.source:  # PostgreSQL: "<xid>:<final lsn>"
        return int(txid.split(":", 1)[0])
    tail = txid.rsplit(":", 1)[-1].rsplit("-", 1)[-1]  # MySQL uuid:gno, MariaDB d-s-seq
    return int(tail) if tail.isdigit() else None


def maxwell_value(event: ChangeEvent, commit: bool) -> dict[str, Any]:
    """The row change as Maxwell's JSON (``commit``: the last row of its transaction)."""
    source = event.source
    value: dict[str, Any] = {
        "database": event.namespace,
        "table": event.table,
        "type": _TYPES[event.op],
        "ts": int(source.get("ts_ms") or 0) // 1000,
    }
    xid = maxwell_xid(event)
    if xid is not None:
        value["xid"] = xid
    if commit:
        value["commit"] = True
    if source.get("file"):
        value["position"] = f"{source['file']}:{source.get('pos')}"
    elif source.get("lsn") is not None:
        value["position"] = str(source["lsn"])
    for field, name in (("gtid", "gtid"), ("server_id", "server_id"), ("thread", "thread_id")):
        if source.get(field) is not None:
            value[name] = source[field]
    if event.op == "d":
        value["data"] = event.before
    else:
        value["data"] = event.after
    if event.op == "u":
        before, after = event.before or {}, event.after or {}
        value["old"] = {k: before[k] for k in after if k in before and before[k] != after[k]}
    return value


def maxwell_key(event: ChangeEvent) -> dict[str, Any]:
    key: dict[str, Any] = {"database": event.namespace, "table": event.table}
    for column, part in (event.key or {}).items():
        key[f"pk.{column}"] = part
    return key


class MaxwellSerializer:
    def __init__(self, topic: str = "maxwell") -> None:
        self.topic = topic
        self._held: tuple[ChangeEvent, Message] | None = None  # the last row, commit unknown

    def _release(self, out: list[Record], commit: bool) -> None:
        if self._held is None:
            return
        event, message = self._held
        self._held = None
        value = maxwell_value(event, commit)
        out.append(Record(self.topic, dumps(maxwell_key(event)), dumps(value), message.headers))

    def serialize_all(self, messages: list[Any], out: list[Record], other: Any) -> None:
        """As ``JsonSerializer.serialize_all``, in Maxwell's format."""
        for message in messages:
            if type(message) is CommitMark:
                self._release(out, commit=not message.partial)
                other(message, len(out))
                continue
            event = message.event
            if type(event) is ChangeEvent and type(message.value) is dict and "op" in message.value:
                if event.op not in _TYPES:
                    continue  # a truncate
                self._release(out, commit=False)
                self._held = (event, message)
                continue
            if type(event) is ChangeEvent and message.value is None:
                continue  # a tombstone: Maxwell writes none
            key = None if message.key is None else dumps(message.key)
            value = None if message.value is None else dumps(message.value)
            out.append(Record(message.topic, key, value, message.headers))
