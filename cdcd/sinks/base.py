"""What every sink offers the pipeline."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from cdcd.envelope import Record

# Completes when every record of one ``write`` is durably stored; raises if any is not.
Delivery = Awaitable[None]


class Sink(Protocol):
    async def start(self) -> None:
        """Connect; raise ``SinkError`` saying what to fix when that is impossible."""

    async def write(self, records: list[Record]) -> Delivery:
        """Hand over records, in order; waits while the sink is full (backpressure).

        Returns a ``Delivery`` that completes once all of them are durably stored.
        """
        ...

    async def close(self) -> None:
        """Flush what was handed over and disconnect."""
