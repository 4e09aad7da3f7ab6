"""``[source]`` with ``kind = "mysql"`` (MySQL 8 and MariaDB alike)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from cdcd._config import SourceConfigBase
from cdcd.encoding import TimePrecisionMode


class MysqlSourceConfig(SourceConfigBase):
    # Debezium's binlog connectors refuse adaptive ("no longer supported")
    time_precision_modes: ClassVar[tuple[TimePrecisionMode, ...]] = (
        "adaptive_time_microseconds",
        "connect",
    )
    kind: Literal["mysql"]
    dsn: str | list[str] = Field(  # type: ignore[assignment]  # a list: servers to fail over to
        description="the server's URL, or a list of them (a primary and its replicas): each "
        "start streams from the first that can serve the position, by GTID"
    )
    server_id: int = Field(default=0, ge=0, description="replica server id; 0: derived from name")
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    ssl_verify_identity: bool = False
    initial_position: str = Field(
        default="latest",
        description="where to start when no offset is stored: 'latest' (the binlog's end), "
        "'earliest' (the oldest binlog kept), a GTID set, or 'file:pos'",
    )
    schema_changes: bool = Field(
        default=True, description="publish DDL to the <topic_prefix> topic"
    )
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    reader: Literal["process", "thread"] = Field(
        default="process",
        description="where the binlog is read and decoded: a worker process (uses a second "
        "core) or a thread of the daemon",
    )
    snapshot_reader: Literal["process", "thread"] = Field(
        default="process",
        description="where an initial snapshot's consistent view is read and converted: "
        "a worker process holding the view (a free second core: faster, ~35 MB more "
        "memory), or a thread of the daemon (also used with snapshot.max_threads > 1)",
    )

    @field_validator("dsn")
    @classmethod
    def _mysql_dsn(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("an empty list names no server: give at least one URL")
        for number, url in enumerate(urls, 1):
            if not url.startswith(("mysql://", "mariadb://")):
                which = f"entry {number} " if isinstance(value, list) else ""
                raise ValueError(f"{which}must be a URL like mysql://user@host:3306/")
        return value


MODEL = MysqlSourceConfig
