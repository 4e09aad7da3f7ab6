"""The operations endpoint on a real socket, in this process: what each path answers, the
one clear error for an address that cannot be listened on, and the ``[http]`` section."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import free_port

from cdcd.config import load_config, parse_config
from cdcd.errors import ConfigError
from cdcd.runtime.context import Context, State
from cdcd.runtime.http import OperationsEndpoint, serve_operations
from cdcd.runtime.metrics import DaemonCollector, registry_of

CONFIG = {
    "name": "shop",
    "source": {"kind": "postgres", "dsn": "postgresql://cdc@127.0.0.1:5432/shop"},
    "sink": {"kind": "stdout"},
}
MINIMAL_TOML = """
name = "shop"
[source]
kind = "postgres"
dsn = "postgresql://cdc@127.0.0.1:5432/shop"
[sink]
kind = "kafka"
bootstrap_servers = "127.0.0.1:9092"
topic_prefix = "shop"
"""


async def ask(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw request bytes; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    assert int(headers["Content-Length"]) == len(body) or request.startswith(b"HEAD")
    return int(status_line.split(" ")[1]), headers, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n".encode()


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[Context, int]]:
    """A daemon's context and the port of its endpoint, serving for the block."""
    ctx = Context(parse_config(CONFIG), log=None)
    server = OperationsEndpoint(registry_of([DaemonCollector(ctx, lambda: None)]), ctx.health)
    _, port = await server.start("127.0.0.1", free_port())
    try:
        yield ctx, port
    finally:
        await server.close()


async def test_readyz_says_why_until_the_daemon_streams():
    async with serving() as (ctx, port):
        status, headers, body = await ask(port, get("/readyz"))
        assert (status, body) == (503, b"not ready: starting\n")
        assert headers["Content-Type"].startswith("text/plain")
        ctx.enter(State.STARTING, "source unavailable: waiting for PostgreSQL at db:5432")
        status, _, body = await ask(port, get("/readyz"))
        assert (status, body) == (
            503,
            b"not ready: source unavailable: waiting for PostgreSQL at db:5432\n",
        )
        ctx.enter(State.STREAMING, "streaming from 0/16B374D8#0")
        assert await ask(port, get("/readyz")) == (
            200,
            {
                "Content-Type": "text/plain; charset=utf-8",
                "Content-Length": "35",
                "Connection": "close",
            },
            b"ready: streaming from 0/16B374D8#0\n",
        )
        ctx.enter(State.STANDBY, "warm standby")  # a warm standby is ready too
        assert (await ask(port, get("/readyz")))[0] == 200
        ctx.enter(State.STOPPING)
        assert (await ask(port, get("/readyz")))[:3:2] == (503, b"not ready: stopping\n")


async def test_healthz_and_metrics():
    async with serving() as (ctx, port):
        assert (await ask(port, get("/healthz")))[::2] == (200, b"ok\n")
        ctx.stats.table_events[("shop", "orders", "c")] = 3
        status, headers, body = await ask(port, get("/metrics?x=1"))
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        [sample] = families["cdcd_events"].samples
        assert sample.labels == {"table": "shop.orders", "op": "c"} and sample.value == 3


async def test_other_requests_are_refused_with_the_right_status():
    async with serving() as (_, port):
        status, _, body = await ask(port, get("/readyz", "HEAD"))
        assert status == 503 and body == b""
        status, headers, _ = await ask(port, get("/metrics", "POST"))
        assert status == 405 and headers["Allow"] == "GET, HEAD"
        assert (await ask(port, get("/")))[0] == 404
        assert (await ask(port, b"hello\r\n\r\n"))[0] == 400


async def test_a_client_that_never_finishes_its_request_does_not_hold_others():
    async with serving() as (_, port):
        _, idle = await asyncio.open_connection("127.0.0.1", port)
        idle.write(b"GET /metr")  # and nothing more
        assert (await ask(port, get("/healthz")))[0] == 200
        idle.close()


async def test_a_port_in_use_is_one_clear_error():
    ctx = Context(parse_config(CONFIG), log=None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = OperationsEndpoint(registry_of([]), ctx.health)
        with pytest.raises(ConfigError) as raised:
            await server.start("127.0.0.1", port)
    assert str(raised.value) == (
        f"http.listen: 127.0.0.1:{port} is in use by another process: choose another port "
        "(or stop what listens there)"
    )


async def test_an_address_not_of_this_host_is_one_clear_error():
    ctx = Context(parse_config({**CONFIG, "http": {"listen": "192.0.2.1:9187"}}), log=None)
    with pytest.raises(ConfigError) as raised:
        await serve_operations(ctx, lambda: None)
    message = str(raised.value)
    assert message.startswith(
        "http.listen: cannot listen on 192.0.2.1:9187: Cannot assign requested address"
    )
    assert "\n" not in message


async def test_no_endpoint_unless_asked_for():
    ctx = Context(parse_config(CONFIG), log=None)
    assert await serve_operations(ctx, lambda: None) is None


def test_the_http_section_is_off_by_default_and_host_port_when_set(tmp_path):
    def http(**keys):
        data = {
            "name": "a",
            "source": {"kind": "mysql", "dsn": "mysql://h/"},
            "sink": {"kind": "stdout"},
        }
        return parse_config({**data, "http": keys}).http

    assert http().listen is None and http().address() is None
    assert http(listen="127.0.0.1:9187").address() == ("127.0.0.1", 9187)
    assert http(listen="0.0.0.0:9187").address() == ("0.0.0.0", 9187)
    assert http(listen="[::1]:9187").address() == ("::1", 9187)
    assert http(listen="metrics.local:65535").address() == ("metrics.local", 65535)
    for listen in (
        "9187",
        ":9187",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "::1:9187",
        "h:port",
    ):
        with pytest.raises(ConfigError) as info:
            http(listen=listen)
        assert str(info.value) == (
            f"config: http.listen: {listen!r} is not host:port with a port from 1 to 65535 "
            '(e.g. "127.0.0.1:9187", "0.0.0.0:9187" for every interface, "[::1]:9187")'
        )
    with pytest.raises(ConfigError, match="http.port: is not a known key"):
        http(port=9187)
    path = tmp_path / "cdcd.toml"
    path.write_text(MINIMAL_TOML + '[http]\nlisten = "127.0.0.1:9187"\n')
    assert load_config(path).http.address() == ("127.0.0.1", 9187)
