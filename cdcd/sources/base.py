"""What every source offers the pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from cdcd.events import SourceItem
from cdcd.positions import Position


@dataclass(frozen=True, slots=True)
class Problem:
    """A finding of ``cdcd check``: what is wrong and the fix, in words a DBA can act on
    (no ``fix`` when ``what`` says it already, as an error's message does)."""

    what: str
    fix: str
    fatal: bool = True

    def __str__(self) -> str:
        return f"{self.what}\n    fix: {self.fix}" if self.fix else self.what


class Source(Protocol):
    """A database change stream.

    ``stream`` yields lists of items (events, then the ``Commit`` of their transaction),
    in commit order, resuming after ``resume`` (or where the source's own bookkeeping,
    e.g. a replication slot, says when None). ``ack`` tells the database that everything
    up to ``position`` is durably in Kafka; a source never treats anything as consumed
    before that.
    """

    connector: str  # Debezium's connector name for the source block: "postgresql", "mysql"

    async def check(self) -> list[Problem]: ...

    async def prepare(self, resume: Position | None = None) -> None:
        """Before streaming: raise ``SourceError`` on what makes streaming impossible,
        and create what the source needs (slot, publication) where allowed. With a
        stored offset ``resume``, raise ``PositionLostError`` unless the source can
        continue from it exactly (nothing it needs is gone)."""


    def stream(self, resume: Position | None) -> AsyncIterator[list[SourceItem]]: ...

    async def ack(self, position: Position) -> None: ...

    async def close(self) -> None: ...
