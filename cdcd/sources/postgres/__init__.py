"""PostgreSQL source: logical replication with pgoutput, streamed with psycopg 3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cdcd.sources.postgres.source import PostgresSource

__all__ = ["PostgresSource", "build"]

if TYPE_CHECKING:  # not at run time: the reader process does without pydantic
    from cdcd.config import Config


def build(config: Config, log: Any = None, **_: Any) -> PostgresSource:
    from cdcd.config import PostgresSourceConfig

    assert isinstance(config.source, PostgresSourceConfig)
    return PostgresSource(
        config.source,
        name=config.name,
        log=log,
        split_after_events=config.transactions.split_after_events,
        log_settings=(config.log.level, config.log.format),
        decimal_mode=config.encoding.decimal_handling_mode,
    )
