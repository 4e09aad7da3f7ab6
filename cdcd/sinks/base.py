"""What every sink offers the pipeline."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from cdcd.errors import SinkError
from cdcd.offsets import StoredOffset
from cdcd.serialization import Record

# Completes when every record of one ``write`` (and its offset, if any) is durably
# stored; raises if any is not.
Delivery = Awaitable[None]


class Sink(Protocol):
    async def connect(self) -> None:
        """Reach the sink without claiming the right to write (an instance may connect and
        wait while another writes); raise ``SinkError`` saying what to fix."""

    async def activate(self) -> None:
        """Claim the right to write (Kafka: the transactional producer starts, fencing an
        older instance); after it, ``read_offset`` gives the last committed offset."""

    async def read_offset(self) -> StoredOffset | None:
        """The daemon's last stored offset (None: never stored, or the sink keeps none)."""
        ...

    async def write(self, records: list[Record], offset: StoredOffset | None) -> Delivery:
        """Hand over records, in order; waits while the sink is full (backpressure).

        ``offset`` is the resume position after these records, when they end at one (a
        commit of the source); it is stored with them: in the same Kafka transaction with
        exactly-once delivery, right after them otherwise. Without an offset, the records
        are part of a source transaction whose end comes in a later ``write``.

        Returns a ``Delivery`` that completes once all of them, and the offset, are
        durably stored (committed).
        """
        ...

    async def close(self) -> None:
        """Flush what was handed over and disconnect."""


# Optional: ``keeps_offsets = False`` for a sink that stores no offsets (stdout): the
# daemon then claims no delivery guarantee and stores no start position.
#
# Optional: ``async def ready(self) -> None`` waits until a write would go out at once (the
# Kafka sink with exactly-once delivery: until the last transaction committed), so that the
# pipeline joins into the next write everything that arrived meanwhile.


class SinkUnavailableError(SinkError):
    """The sink failed in a way that may pass (a Kafka broker restarting, a leader moving).

    While streaming, the daemon then starts over from its last committed offset.
    """
