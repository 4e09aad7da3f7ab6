"""MySQL/MariaDB source: the binlog, read and decoded in a worker process (or thread)."""

from __future__ import annotations

from typing import Any

from cdcd.config import Config, MysqlSourceConfig
from cdcd.sources.mysql.source import MysqlSource

__all__ = ["MysqlSource", "build"]


def build(config: Config, log: Any = None, **_: Any) -> MysqlSource:
    assert isinstance(config.source, MysqlSourceConfig)
    return MysqlSource(
        config.source,
        name=config.name,
        log=log,
        split_after_events=config.transactions.split_after_events,
    )
