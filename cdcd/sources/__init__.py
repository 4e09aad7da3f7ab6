"""Sources: one package per database under ``cdcd/sources/<kind>/``.

Each package exposes ``build(config, log) -> Source``; ``build_source`` finds it by the
configured ``kind``, so adding a source means adding a folder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cdcd.sources.base import Problem, Source

if TYPE_CHECKING:
    from cdcd.config import Config

__all__ = ["Problem", "Source", "build_source"]


def build_source(config: Config, **kwargs: Any) -> Source:
    """Create the source that ``config.source.kind`` names."""
    module = importlib.import_module(f"cdcd.sources.{config.source.kind}")
    source: Source = module.build(config, **kwargs)
    return source
