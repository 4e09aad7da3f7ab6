"""MySQL/MariaDB source: the binlog, read and decoded in a worker process (or thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build"]

if TYPE_CHECKING:  # the package stays light: importing its config.py loads no driver
    from cdcd.config import Config
    from cdcd.sources.mysql.source import MysqlSource


def build(config: Config, log: Any = None, **_: Any) -> MysqlSource:
    from cdcd.sources.mysql.config import MysqlSourceConfig
    from cdcd.sources.mysql.source import MysqlSource

    assert isinstance(config.source, MysqlSourceConfig)
    return MysqlSource(
        config.source,
        name=config.name,
        log=log,
        split_after_events=config.transactions.split_after_events,
        options=config.encoding_modes(),
    )
