"""A TCP forwarder for tests/netns.py: ``python netns_forward.py LISTEN=TARGET ...``.

Each argument ``host:port=host:port`` listens on the first address and forwards every
connection to the second. It prints ``ready`` on stdout once every listener is bound, and
exits by itself when its parent (the test process) is gone, so that a crashed test leaves no
forwarder behind.

A partition must look like one: while the upstream connect fails or times out (the link is
down), the accepted client connection is held open and silent (its bytes wait in the
kernel's buffers) and the connect is tried again, as a SYN would be retransmitted; only a
refused connect (nothing listens upstream) closes it. An upstream reset is passed on as a
reset. Stdlib only: it runs under any Python 3.11+.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

CONNECT_TIMEOUT_S = 1.0  # one "SYN" attempt; then the connect is tried again
RETRY_PAUSE_S = 0.1
HIGH_WATER = 1 << 20  # bytes buffered towards one side before reading the other pauses


class _Side(asyncio.Protocol):
    """One end of a forwarded connection; ``peer`` is the other end's transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending: list[bytes] = []  # received before the peer was connected
        self.eof = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=HIGH_WATER)

    def attach(self, peer: _Side) -> None:
        self.peer = peer
        assert peer.transport is not None
        for data in self.pending:
            peer.transport.write(data)
        self.pending.clear()
        if self.eof and peer.transport.can_write_eof():
            peer.transport.write_eof()
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
            return
        self.pending.append(data)
        if sum(map(len, self.pending)) > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()  # flow control holds the rest in the kernel

    def eof_received(self) -> bool:
        self.eof = True
        if self.peer is not None and self.peer.transport is not None:
            if self.peer.transport.can_write_eof():
                self.peer.transport.write_eof()
            if self.peer.eof:
                self.peer.transport.close()
        return True  # half-close: the other direction may go on

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)
        if self.peer is not None and self.peer.transport is not None:
            if isinstance(exc, ConnectionResetError):
                self.peer.transport.abort()  # a reset stays a reset
            else:
                self.peer.transport.close()

    # Flow control: our transport's buffer is full, so stop reading the peer.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


async def _connect_upstream(client: _Side, target: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    while not client.closed.done():
        try:
            connect = loop.create_connection(_Side, *target)
            _, upstream = await asyncio.wait_for(connect, CONNECT_TIMEOUT_S)
        except ConnectionRefusedError:
            if client.transport is not None:
                client.transport.abort()
            return
        except (TimeoutError, OSError):
            await asyncio.sleep(RETRY_PAUSE_S)  # unreachable or no answer: the link is down
            continue
        if client.closed.done():
            assert upstream.transport is not None
            upstream.transport.close()
            return
        client.attach(upstream)
        upstream.attach(client)  # what the server said first (MySQL's greeting)
        if upstream.closed.done() and client.transport is not None:
            client.transport.close()  # the server hung up before we got here
        return


async def _serve(listen: tuple[str, int], target: tuple[str, int]) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def accepted() -> _Side:
        client = _Side()

        def start() -> None:
            task = loop.create_task(_connect_upstream(client, target))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.call_soon(start)
        return client

    return await loop.create_server(accepted, *listen, reuse_address=True, backlog=512)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main(pairs: list[str]) -> None:
    parent = os.getppid()
    servers = []
    for pair in pairs:
        listen, _, target = pair.partition("=")
        servers.append(await _serve(_address(listen), _address(target)))
    print("ready", flush=True)
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    for server in servers:
        server.close()


if __name__ == "__main__":
    if len(sys.argv) < 2 or any("=" not in a for a in sys.argv[1:]):
        sys.exit("usage: netns_forward.py LISTEN_HOST:PORT=TARGET_HOST:PORT ...")
    asyncio.run(main(sys.argv[1:]))
