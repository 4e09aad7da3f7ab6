"""Sinks: one module per kind under ``cdcd/sinks/``, each exposing ``build(config, log)``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cdcd.sinks.base import Delivery, Sink

if TYPE_CHECKING:
    from cdcd.config import Config

__all__ = ["Delivery", "Sink", "build_sink"]


def build_sink(config: Config, **kwargs: Any) -> Sink:
    """Create the sink that ``config.sink.kind`` names."""
    module = importlib.import_module(f"cdcd.sinks.{config.sink.kind}")
    sink: Sink = module.build(config, **kwargs)
    return sink
