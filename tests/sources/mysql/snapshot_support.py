"""Helpers of the snapshot reader's tests: sources on the test servers, streams read to a
condition, a log that keeps what it was told."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cdcd.encoding import Encoding
from cdcd.events import ChangeEvent, Commit, SourceItem
from cdcd.positions import Position
from cdcd.sources.mysql.config import MysqlSourceConfig
from cdcd.sources.mysql.source import MysqlSource
from cdcd.sources.mysql.types import DEFAULT_OPTIONS


class Log:
    """A logger that keeps every line: ``(level, message, fields)``."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def _keep(self, level: str) -> Callable[..., None]:
        def keep(message: str, **fields: Any) -> None:
            self.lines.append((level, message, fields))

        return keep

    def __getattr__(self, level: str) -> Callable[..., None]:
        return self._keep(level)

    def find(self, text: str) -> list[dict[str, Any]]:
        return [fields for _, message, fields in self.lines if text in message]


def make_source(
    url: str,
    tables: list[str],
    *,
    options: Encoding = DEFAULT_OPTIONS,
    log: Any = None,
    reader: str = "thread",
    snapshot_reader: str = "thread",
    name: str = "snaptest",
) -> MysqlSource:
    config = MysqlSourceConfig(
        kind="mysql", dsn=url, tables=tables, reader=reader, snapshot_reader=snapshot_reader
    )
    return MysqlSource(config, name=name, options=options, log=log)


async def stream_until(
    source: MysqlSource,
    resume: Position | None,
    done: Callable[[list[SourceItem]], bool],
    timeout: float = 60,
    on_chunk: Callable[[], None] | None = None,
) -> list[SourceItem]:
    """The stream's items from ``resume`` until ``done(items)``."""
    items: list[SourceItem] = []
    stream = source.stream(resume)
    try:
        async with asyncio.timeout(timeout):
            async for chunk in stream:
                items.extend(chunk)
                if on_chunk is not None:
                    on_chunk()
                if done(items):
                    break
    finally:
        await stream.aclose()
        await source.close()
    return items


def changes(items: list[SourceItem]) -> list[ChangeEvent]:
    return [item for item in items if isinstance(item, ChangeEvent)]


def commits(items: list[SourceItem]) -> list[Commit]:
    return [item for item in items if isinstance(item, Commit)]


def key_of(event: ChangeEvent) -> tuple[Any, ...]:
    assert event.key is not None
    return tuple(sorted(event.key.items()))
