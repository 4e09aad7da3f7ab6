"""The operations endpoint, ``[http] listen``: ``/metrics``, ``/healthz``, ``/readyz``.

A small HTTP/1.1 server on the daemon's own event loop (``asyncio.start_server``): a
probe that gets an answer knows the loop answers. One request per connection, GET or
HEAD, nothing else accepted:

- ``/metrics``: Prometheus's text format (``cdcd.runtime.metrics``);
- ``/healthz``: 200 whenever the loop answers;
- ``/readyz``: 200 while streaming, snapshotting or a warm standby, else 503; the body
  says why (``Health.reason``: "connecting", "source unavailable: waiting for ...").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from cdcd.errors import ConfigError
from cdcd.runtime.context import Context, Health
from cdcd.runtime.metrics import DaemonCollector, exposition, registry_of

if TYPE_CHECKING:
    from cdcd.runtime.coordinator import Coordinator

_READ_TIMEOUT_S = 10.0
_MAX_HEADER_BYTES = 16_384
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}
_TEXT = "text/plain; charset=utf-8"
# Prometheus's text format as every Prometheus version reads it (what generate_latest
# writes with its default escaping of names).
_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

Response = tuple[int, str, bytes]  # status, content type, body


async def serve_operations(
    ctx: Context, running: Callable[[], Coordinator | None]
) -> OperationsEndpoint | None:
    """The endpoint ``[http] listen`` asks for, listening (None when it is not set);
    ``running`` gives the coordinator of the current start."""
    address = ctx.config.http.address()
    if address is None:
        return None
    endpoint = OperationsEndpoint(registry_of([DaemonCollector(ctx, running)]), ctx.health)
    host, port = await endpoint.start(*address)
    ctx.log.info("http: serving /metrics, /healthz and /readyz", listen=f"{host}:{port}")
    return endpoint


class OperationsEndpoint:
    """Serves the three paths on ``host:port`` once ``start``ed, until ``close``."""

    def __init__(self, registry: CollectorRegistry, health: Health) -> None:
        self.registry = registry
        self.health = health
        self._server: asyncio.Server | None = None
        self._routes: dict[str, Callable[[], Response]] = {
            "/metrics": self._metrics,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
        }

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; the address bound. ``ConfigError`` naming ``http.listen`` when the
        address cannot be listened on (a port in use, an address not of this host)."""
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self._server = await asyncio.start_server(self._serve, host, port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"http.listen: {where} is in use by another process: choose another port "
                    "(or stop what listens there)"
                ) from None
            reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror
            raise ConfigError(
                f"http.listen: cannot listen on {where}: {reason or exc}: give an address "
                "of this host (e.g. 127.0.0.1:9187, or 0.0.0.0:9187 for every interface)"
            ) from None
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    # -- the paths ---------------------------------------------------------------------

    def _metrics(self) -> Response:
        return 200, _PROMETHEUS_TEXT, exposition(self.registry)

    def _healthz(self) -> Response:
        return 200, _TEXT, b"ok\n"

    def _readyz(self) -> Response:
        health = self.health
        if health.ready:
            return 200, _TEXT, f"ready: {health.reason}\n".encode()
        return 503, _TEXT, f"not ready: {health.reason}\n".encode()

    # -- HTTP ------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_head(reader), _READ_TIMEOUT_S)
            method, path = request if request is not None else ("", "")
            status, kind, body = self._respond(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                + ("Allow: GET, HEAD\r\n" if status == 405 else "")
                + "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # a client that went away or never asked: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _respond(self, method: str, path: str) -> Response:
        if not method:
            return 400, _TEXT, b"not an HTTP request\n"
        route = self._routes.get(path.split("?", 1)[0])
        if route is None:
            return 404, _TEXT, b"not found: /metrics, /healthz and /readyz are served\n"
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"only GET and HEAD\n"
        return route()


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """The method and path of a request (its headers read and ignored); None when it is
    not HTTP."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _MAX_HEADER_BYTES:
        return None
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    return parts[0], parts[1]
