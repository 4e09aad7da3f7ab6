"""Sources: one package per database under ``cdcd/sources/<kind>/``.

Each package exposes ``build(config, log) -> Source`` and its configuration model in
``config.py`` (``MODEL``); ``build_source`` and ``cdcd.config`` find them by the kind, so
adding a source means adding a folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from cdcd.sources.base import Problem, Source

if TYPE_CHECKING:
    from cdcd.config import Config

__all__ = ["Problem", "Source", "build_source", "config_models", "kinds"]


def build_source(config: Config, **kwargs: Any) -> Source:
    """Create the source that ``config.source.kind`` names."""
    module = importlib.import_module(f"cdcd.sources.{config.source.kind}")
    source: Source = module.build(config, **kwargs)
    return source


def kinds() -> list[str]:
    """Every kind there is: each is a folder here (adding one adds a kind)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def config_models() -> list[Any]:
    """The configuration model of each kind (``MODEL`` of ``<kind>/config.py``)."""
    return [importlib.import_module(f"{__name__}.{kind}.config").MODEL for kind in kinds()]
