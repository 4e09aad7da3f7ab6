"""MySQL/MariaDB source: the binlog, read with python-mysql-replication in a worker thread."""

from __future__ import annotations

from typing import Any

from cdcd.config import Config, MysqlSourceConfig
from cdcd.sources.mysql.source import MysqlSource

__all__ = ["MysqlSource", "build"]


def build(config: Config, log: Any = None, **_: Any) -> MysqlSource:
    assert isinstance(config.source, MysqlSourceConfig)
    return MysqlSource(config.source, name=config.name, log=log)
