"""``[sink]`` with ``kind = "stdout"``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cdcd._config import SinkConfigBase


class StdoutSinkConfig(SinkConfigBase):
    kind: Literal["stdout"]
    topic_prefix: str = Field(default="", description="default: the daemon's name (see Config)")
    tombstones_on_delete: bool = True
    bootstrap_servers: str | None = Field(
        default=None,
        description="ignored; allowed so a kafka sink can be switched to stdout by kind alone",
    )


MODEL = StdoutSinkConfig
