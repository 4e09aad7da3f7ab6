"""``[snapshot]``: when the tables are read, and how, with Debezium's names."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cdcd._config import Strict

SnapshotMode = Literal["initial", "initial_only", "no_data", "when_needed", "always"]


class SnapshotConfig(Strict):
    mode: SnapshotMode = Field(
        default="initial",
        description="Debezium's snapshot.mode: initial (read the tables when no offset is "
        "stored, then stream), initial_only (read them, then stop), no_data (stream only), "
        "when_needed (also when the stored position is gone from the server), always (at "
        "every start)",
    )
    chunk_size: int = Field(
        default=1024,
        ge=1,
        description="rows a chunk (Debezium's incremental.snapshot.chunk.size): the progress "
        "stored with the offset moves a chunk at a time",
    )
    tables: list[str] | None = Field(
        default=None,
        description="Debezium's snapshot.include.collection.list: regular expressions over "
        "schema.table choosing which captured tables the initial snapshot reads (default: all)",
    )
    max_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="tables read at once in an initial snapshot (snapshot.max.threads)",
    )
