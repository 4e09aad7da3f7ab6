"""Logging through structlog: JSON lines when not on a terminal, readable on one.

cdcd's own lines go through structlog; the libraries' (aiokafka, psycopg, asyncio...) go
through the standard ``logging`` module, whose one handler renders them with the same
processors, so every line on standard error has the same shape: one JSON object with
``event``, ``level``, ``timestamp`` (and ``logger``, the library logger's name).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class OncePerInterval(logging.Filter):
    """Lets each distinct library message through once per interval.

    While a broker is down aiokafka logs every reconnection attempt (thousands of lines a
    minute); one of each kind every 30 s says the same.
    """

    def __init__(self, interval_s: float = 30.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, Any], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self._last.get(key, -self.interval_s) < self.interval_s:
            return False
        self._last[key] = now
        if len(self._last) > 1000:
            self._last.clear()
        return True


def _renderer(use_console: bool) -> list[Any]:
    # A traceback shows no local variables: structlog's (and rich's) would, and a frame of
    # a connection holds the password, the SASL options, a key's passphrase.
    if use_console:
        formatter = structlog.dev.RichTracebackFormatter(show_locals=False)
        return [structlog.dev.ConsoleRenderer(exception_formatter=formatter)]
    return [
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        ),
        structlog.processors.JSONRenderer(serializer=_orjson_dumps),
    ]


def setup_logging(level: str = "info", fmt: str = "auto") -> Any:
    """Configure structlog and the standard ``logging`` module (both to stderr, one
    format) and return the root cdcd logger."""
    use_console = sys.stderr.isatty() if fmt == "auto" else fmt == "console"
    common: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *common, *_renderer(use_console)],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *common],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *_renderer(use_console),
            ],
        )
    )
    handler.addFilter(OncePerInterval())  # on the handler: every library logger, also later ones
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries: keep their warnings, quiet their chatter.
    root.setLevel(logging.WARNING)
    # aiokafka logs each retry of a group-coordinator lookup as an ERROR, e.g. while a
    # fresh broker creates __consumer_offsets; a lasting failure surfaces as an exception.
    logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.CRITICAL)
    return structlog.get_logger("cdcd")


def _orjson_dumps(obj: Any, **_: Any) -> str:
    import orjson

    return orjson.dumps(obj, default=str).decode()
