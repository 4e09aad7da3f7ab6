"""MySQL/MariaDB source: the binlog, read and decoded in a worker process (or thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cdcd.sources.mysql.source import MysqlSource

__all__ = ["MysqlSource", "build"]

if TYPE_CHECKING:  # not at run time: the reader process does without pydantic
    from cdcd.config import Config


def build(config: Config, log: Any = None, **_: Any) -> MysqlSource:
    from cdcd.config import MysqlSourceConfig
    from cdcd.sources.mysql.types import EncodingOptions

    assert isinstance(config.source, MysqlSourceConfig)
    return MysqlSource(
        config.source,
        name=config.name,
        log=log,
        split_after_events=config.transactions.split_after_events,
        options=EncodingOptions(decimal_mode=config.encoding.decimal_handling_mode),
    )
