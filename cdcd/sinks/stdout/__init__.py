"""Standard output sink: a JSON line per record, no Kafka."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build"]

if TYPE_CHECKING:  # the package stays light: importing its config.py loads no driver
    from cdcd.config import Config
    from cdcd.sinks.stdout.sink import StdoutSink


def build(config: Config, **_: Any) -> StdoutSink:
    from cdcd.sinks.stdout.sink import StdoutSink

    return StdoutSink()
