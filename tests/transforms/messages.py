"""Envelope messages for the transforms' unit tests, built by the real builder."""

from __future__ import annotations

from typing import Any

from cdcd.envelope import EnvelopeBuilder
from cdcd.events import ChangeEvent, Commit
from cdcd.positions import PgPosition
from cdcd.transforms import Item


def change(
    op: str,
    after: dict[str, Any] | None,
    before: dict[str, Any] | None = None,
    *,
    table: str = "orders",
    namespace: str = "shop",
    key: dict[str, Any] | None = None,
    txid: str | None = "7",
) -> ChangeEvent:
    row = after if after is not None else before
    if key is None and row is not None and "id" in row:
        key = {"id": row["id"]}
    source = {
        "ts_ms": 1_700_000_000_123,
        "db": "app",
        "schema": namespace,
        "table": table,
        "lsn": 1234,
        "txId": 7,
    }
    return ChangeEvent(op, namespace, table, key, before, after, source, txid)


def commit(lsn: int = 2000, txid: str | None = "7") -> Commit:
    return Commit(PgPosition(lsn), txid, 1_700_000_000_456, 1)


def messages(*items: Any, topic_prefix: str = "p") -> list[Item]:
    """The builder's messages, with topics as TableTopics sets them."""
    from cdcd.topics import TopicNaming
    from cdcd.transforms.builtin import TableTopics

    built = EnvelopeBuilder(topic_prefix, "postgresql").messages(
        list(items), 1_700_000_001_000_000_000
    )
    return TableTopics(TopicNaming(topic_prefix)).apply(built)
