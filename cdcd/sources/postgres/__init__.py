"""PostgreSQL source: logical replication with pgoutput, streamed with psycopg 3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build"]

if TYPE_CHECKING:  # the package stays light: importing its config.py loads no driver
    from cdcd.config import Config
    from cdcd.sources.postgres.source import PostgresSource


def build(config: Config, log: Any = None, **_: Any) -> PostgresSource:
    from cdcd.sources.postgres.config import PostgresSourceConfig
    from cdcd.sources.postgres.source import PostgresSource

    assert isinstance(config.source, PostgresSourceConfig)
    return PostgresSource(
        config.source,
        name=config.name,
        log=log,
        split_after_events=config.transactions.split_after_events,
        log_settings=(config.log.level, config.log.format),
        encoding=config.encoding_modes(),
        take_over=config.ha.enabled and config.sink.kind == "kafka",
    )
