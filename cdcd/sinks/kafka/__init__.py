"""Kafka sink: transactions (exactly-once) or idempotent batches, offsets in a compacted topic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build"]

if TYPE_CHECKING:  # the package stays light: importing its config.py loads no driver
    from cdcd.config import Config
    from cdcd.sinks.kafka.sink import KafkaSink


def build(config: Config, log: Any = None, **_: Any) -> KafkaSink:
    from cdcd.sinks.kafka.config import KafkaSinkConfig
    from cdcd.sinks.kafka.sink import KafkaSink

    assert isinstance(config.sink, KafkaSinkConfig)
    return KafkaSink(
        config.sink,
        config.offsets,
        name=config.name,
        source_kind=config.source.kind,
        exactly_once=config.delivery == "exactly-once",
        ha=config.ha,
        log=log,
    )
