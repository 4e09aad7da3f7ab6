"""Sinks: one package per kind under ``cdcd/sinks/<kind>/``, each exposing
``build(config, log)`` and its configuration model in ``config.py`` (``MODEL``); what
``cdcd check`` verifies about a kind is in its ``check.py``, if anything. Adding a sink
means adding a folder."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import TYPE_CHECKING, Any

from cdcd.sinks.base import Delivery, Sink

if TYPE_CHECKING:
    from cdcd.config import Config
    from cdcd.sources.base import Problem

__all__ = ["Delivery", "Sink", "build_sink", "check_sink", "config_models", "kinds"]


def build_sink(config: Config, **kwargs: Any) -> Sink:
    """Create the sink that ``config.sink.kind`` names."""
    module = importlib.import_module(f"cdcd.sinks.{config.sink.kind}")
    sink: Sink = module.build(config, **kwargs)
    return sink


async def check_sink(config: Config) -> list[Problem] | None:
    """What would stop or spoil writing to the sink, with the fixes (``check(config)`` of
    ``cdcd.sinks.<kind>.check``); None when the kind has nothing to check (stdout)."""
    name = f"cdcd.sinks.{config.sink.kind}.check"
    if importlib.util.find_spec(name) is None:
        return None
    problems: list[Problem] = await importlib.import_module(name).check(config)
    return problems


def kinds() -> list[str]:
    """Every kind there is: each is a folder here (adding one adds a kind)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def config_models() -> list[Any]:
    """The configuration model of each kind (``MODEL`` of ``<kind>/config.py``)."""
    return [importlib.import_module(f"{__name__}.{kind}.config").MODEL for kind in kinds()]
