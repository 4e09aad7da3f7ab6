"""Offsets: where a daemon resumes, stored in Kafka beside the changes it wrote.

The offsets topic is compacted and may be shared by many daemons. Each daemon's record is
keyed like Kafka Connect's offsets, by the daemon's name and its source kind
(``["shop",{"source":"postgres"}]``); the value is the resume position as JSON
(``position.to_dict()``: commit LSN and index, or GTID set / file and pos) with the time it
was written and, inside a split transaction, the transaction-metadata counters and the
roll-up's next part needed to continue that transaction exactly where it was cut. With exactly-once delivery the record
is written in the same Kafka transaction as the changes up to that position.

This module knows no Kafka client: the sink reads and writes the records.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from cdcd.positions import MysqlPosition, PgPosition, Position, position_from_dict, str_to_lsn


def offset_key(name: str, source_kind: str) -> bytes:
    """The record key of a daemon's offset (compaction keeps the last value per key)."""
    return orjson.dumps([name, {"source": source_kind}])


def dedup_key(name: str, source_kind: str, identity: str) -> bytes:
    """The record key of a daemon's dedup record: the offset key with the source's
    identity (a standby reading another server of the same source finds it)."""
    return orjson.dumps([name, {"source": source_kind, "identity": identity}])


def inside_transaction(position: Position) -> bool:
    """Whether ``position`` cuts a source transaction (some of its events already written)."""
    return getattr(position, "index", 0) > 0


@dataclass(frozen=True, slots=True)
class StoredOffset:
    """A resume position as stored in the offsets topic.

    ``transaction`` holds the open transaction's metadata counters (``id``, ``ts_ms``,
    ``total_order``, ``data_collections``) when ``position`` is inside a split
    transaction and transaction metadata is on; None otherwise. ``snapshot`` holds a
    running snapshot's progress (None: none runs).
    """

    position: Position
    transaction: dict[str, Any] | None = None
    ts_ms: int = 0
    snapshot: dict[str, Any] | None = None  # a running snapshot's progress

    def to_json(self) -> bytes:
        value = self.position.to_dict()
        if self.transaction is not None:
            value["transaction"] = self.transaction
        if self.snapshot is not None:
            value["snapshot"] = self.snapshot
        value["ts_ms"] = self.ts_ms or time.time_ns() // 1_000_000
        return orjson.dumps(value)

    @classmethod
    def from_json(cls, data: bytes) -> StoredOffset:
        """Rebuild a stored offset; ``ValueError`` names what is wrong with it."""
        try:
            value = orjson.loads(data)
            position = position_from_dict(value)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a cdcd offset: {data[:200]!r} ({exc})") from None
        return cls(
            position,
            value.get("transaction"),
            int(value.get("ts_ms") or 0),
            value.get("snapshot"),
        )


class OffsetStore(Protocol):
    """Where offsets live (the Kafka sink's offsets topic)."""

    async def read_offset(self) -> StoredOffset | None:
        """The daemon's last committed offset, or None when it never wrote one."""
        ...


class PinnableSource(Protocol):
    """A source that can say where it would start without a stored offset.

    On a first start the core stores that position before streaming: a daemon killed
    before its first Kafka transaction then resumes there, instead of resolving a moving
    start point (MySQL's ``initial_position = "latest"``) again and skipping what was
    written in between.
    """

    async def start_position(self) -> Position:
        """Where ``stream(None)`` would start, resolved now."""
        ...


class SeekableSource(Protocol):
    """A source that can say where its stream begins and ends now (``cdcd offsets reset``)."""

    async def earliest_position(self) -> Position:
        """The oldest position the source can still stream from."""
        ...

    async def latest_position(self) -> Position:
        """The position after everything committed so far."""
        ...

    async def check_position(self, position: Position) -> None:
        """Raise ``PositionLostError`` (saying why) unless the source can stream from
        ``position`` exactly: the server has it, and everything after it."""
        ...


_PG_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}(#\d+)?$")
_MYSQL_GTID = re.compile(r"^[0-9a-fA-F-]{36}:\d")
_MARIADB_GTID = re.compile(r"^\d+-\d+-\d+(,\d+-\d+-\d+)*$")


def parse_position(text: str, source_kind: str) -> Position:
    """A position typed by a user: its JSON form, or a short form of the source's kind.

    PostgreSQL: ``16/B374D848`` or ``16/B374D848#120`` (LSN and index). MySQL: a GTID set
    (``3e11fa47-...:1-77``); MariaDB: a GTID position (``0-1-100``). A binlog file and
    position is given as JSON (``{"kind": "mysql", "flavor": ..., "file": ..., "pos": ...}``).
    """
    text = text.strip()
    position: Position
    if text.startswith("{"):
        try:
            position = position_from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a position: {text!r} ({exc})") from None
    elif source_kind == "postgres" and _PG_LSN.match(text):
        lsn, _, index = text.partition("#")
        position = PgPosition(str_to_lsn(lsn), int(index or 0))
    elif source_kind == "mysql" and _MYSQL_GTID.match(text):
        position = MysqlPosition("mysql", text, "", 4)
    elif source_kind == "mysql" and _MARIADB_GTID.match(text):
        position = MysqlPosition("mariadb", text, "", 4)
    else:
        raise ValueError(
            f"not a {source_kind} position: {text!r}; give its JSON form as `cdcd offsets show` "
            "prints it" + (", or an LSN such as 16/B374D848" if source_kind == "postgres" else "")
        )
    if position.kind != source_kind:
        raise ValueError(f"a {position.kind} position cannot be stored for a {source_kind} source")
    return position
