"""What every source offers the pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from cdcd.events import SourceItem
from cdcd.positions import Position
from cdcd.selection import TableFilter


@dataclass(frozen=True, slots=True)
class Problem:
    """A finding of ``cdcd check``: what is wrong and the fix, in words a DBA can act on
    (no ``fix`` when ``what`` says it already, as an error's message does)."""

    what: str
    fix: str
    fatal: bool = True

    def __str__(self) -> str:
        return f"{self.what}\n    fix: {self.fix}" if self.fix else self.what


_ENTRY_FIX = (
    "fix the entry in source.{key} (a regular expression matched against the whole "
    "{what}, case-insensitive; write {literal} for a name with dots, spaces or quotes), "
    "or create the {thing}"
)


def selection_problems(
    selection: TableFilter,
    tables: Sequence[tuple[str, str]],
    namespaces: Sequence[str] | None,
    *,
    where: str,
    schema_word: str,
) -> list[Problem]:
    """An include entry that selects no existing table (``databases``: no schema or
    database) stops the daemon at start: a typo would otherwise capture nothing, silently.
    ``where`` says where cdcd looked (``in database 'shop'``, ``on the server``);
    ``schema_word`` is ``schema`` or ``database``."""
    problems = []
    for key, entry, left_out in selection.unmatched(tables, namespaces):
        if key == "tables":
            what = f"source.tables: {entry} matches no table {where}"
            if left_out:
                what = (
                    f"source.tables: {entry} matches only tables that source.exclude_tables or "
                    f"source.(exclude_)databases leave out: {', '.join(left_out[:5])}"
                )
            fix = _ENTRY_FIX.format(
                key=key,
                what=f"{schema_word}.table name",
                literal=f'{{{schema_word} = "...", table = "..."}}',
                thing="table",
            )
        else:
            what = f"source.databases: {entry} matches no {schema_word} {where}"
            fix = _ENTRY_FIX.format(
                key=key,
                what=f"{schema_word} name",
                literal=f'{{{schema_word} = "..."}}',
                thing=schema_word,
            )
        problems.append(Problem(what, fix))
    return problems


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


    async def captured_tables(self) -> list[tuple[str, str]]:
        """The existing tables whose changes are captured, ``(schema or database, table)``."""
        ...

    def stream(self, resume: Position | None) -> AsyncIterator[list[SourceItem]]: ...

    async def ack(self, position: Position) -> None: ...

    async def close(self) -> None: ...
