"""What travels with a batch of records from the source's commit to the ack.

A ``Checkpoint`` rides on each segment of records that ends at a source commit, through
batching (segments that join keep the later one's) to the acknowledgement: the position to resume from (stored as the offset, and
acknowledged to the source once Kafka holds everything before it), the source's commit
time of the last transaction (how far behind the source the daemon is), its id (GTID, or
PostgreSQL's ``<xid>:<commit LSN>``: the key a dedup layer needs), and the progress of
a snapshot when one runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdcd.offsets import StoredOffset
from cdcd.positions import Position


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """``transaction``: the open transaction's metadata counters when ``position`` cuts a
    huge transaction (stored with the offset, to continue it); ``snapshot``: snapshot
    progress to store with the offset (None: no snapshot running)."""

    position: Position
    ts_ms: int = 0
    txid: str | None = None
    transaction: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = None

    def stored_offset(self) -> StoredOffset:
        """The offset record that resumes after this checkpoint."""
        return StoredOffset(self.position, self.transaction, snapshot=self.snapshot)
