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


class SignalsConfig(Strict):
    """Debezium's signals (``execute-snapshot``, ``stop-snapshot``, ``pause-snapshot``,
    ``resume-snapshot``, ``log``), from a Kafka topic and/or a table of the source."""

    kafka_topic: str | None = Field(
        default="cdcd-signals",
        description="signal.kafka.topic: records keyed by the daemon's topic_prefix, value "
        '{"type": ..., "data": {...}} (cdcd snapshot writes them); "" turns the channel off',
    )
    data_collection: str | None = Field(
        default=None,
        description="signal.data.collection: a captured table (schema.table) with columns "
        "id, type, data whose inserted rows are signals (the source channel)",
    )


class NotificationsConfig(Strict):
    """Debezium's notifications (STARTED, IN_PROGRESS, TABLE_SCAN_COMPLETED, COMPLETED,
    ABORTED, PAUSED, RESUMED) on a Kafka topic, in the same transactions as the rows."""

    topic: str | None = Field(
        default="cdcd-notifications",
        description="notification.sink.topic.name, keyed by the daemon's topic_prefix; "
        '"" turns notifications off',
    )
