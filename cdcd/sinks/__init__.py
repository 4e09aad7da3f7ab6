"""Sinks: one module per kind under ``cdcd/sinks/``, each exposing ``build(config, log)``;
what ``cdcd check`` verifies about a kind is in ``<kind>_check.py`` beside it, if anything."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from cdcd.sinks.base import Delivery, Sink

if TYPE_CHECKING:
    from cdcd.config import Config
    from cdcd.sources.base import Problem

__all__ = ["Delivery", "Sink", "build_sink", "check_sink"]


def build_sink(config: Config, **kwargs: Any) -> Sink:
    """Create the sink that ``config.sink.kind`` names."""
    module = importlib.import_module(f"cdcd.sinks.{config.sink.kind}")
    sink: Sink = module.build(config, **kwargs)
    return sink


async def check_sink(config: Config) -> list[Problem] | None:
    """What would stop or spoil writing to the sink, with the fixes (``check(config)`` of
    ``cdcd.sinks.<kind>_check``); None when the kind has nothing to check (stdout)."""
    name = f"cdcd.sinks.{config.sink.kind}_check"
    if importlib.util.find_spec(name) is None:
        return None
    problems: list[Problem] = await importlib.import_module(name).check(config)
    return problems
