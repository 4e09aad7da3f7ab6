"""A source's reading and decoding in a process of its own (``source.reader = "process"``).

The GIL keeps a source's decoding and the daemon's encoding and Kafka writes on one core;
a worker process decodes on the second. The daemon starts it as
``python -m <module> <fd> <daemon pid>`` and writes its setup on its stdin (a 4-byte
little-endian length, then a pickle); the worker writes what it decodes to the pipe
``fd`` as frames (``cdcd.frames``), an error as its last frame. What else the daemon
writes on the worker's stdin is the worker's own business (PostgreSQL: acknowledged
positions); closing it asks the worker to finish.

The frames are read by the daemon's event loop itself (a thread would wait for the GIL at
every read of the pipe, and add that to every event's latency). A full pipe blocks the
worker's writes, and the daemon stops reading the pipe while its own buffer is full:
memory stays bounded on both sides. The worker gets SIGTERM when the daemon goes
(PR_SET_PDEATHSIG), or sees its pipe break.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from cdcd import frames
from cdcd.errors import SourceUnavailableError
from cdcd.events import SourceItem


class Worker:
    """The daemon's side of one worker process."""

    def __init__(self, module: str, description: str) -> None:
        self.module = module
        self.description = description  # "the binlog reader process", in errors
        self.process: asyncio.subprocess.Process | None = None
        self._pipe: asyncio.StreamReader | None = None
        self._transport: asyncio.ReadTransport | None = None

    async def start(self, setup: Any) -> None:
        loop = asyncio.get_running_loop()
        receive, send = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(send, fcntl.F_SETPIPE_SZ, 1 << 20)  # fewer, larger reads
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                str(send),
                str(os.getpid()),
                stdin=subprocess.PIPE,
                pass_fds=(send,),
            )
        finally:
            os.close(send)
        self._pipe = asyncio.StreamReader(limit=1 << 20)  # reading pauses beyond 2 MiB
        pipe = self._pipe
        self._transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(pipe), os.fdopen(receive, "rb", buffering=0)
        )
        self.send_message(setup)
        assert self.process.stdin is not None
        with contextlib.suppress(ConnectionError):
            await self.process.stdin.drain()

    def send_message(self, message: Any) -> None:
        """Write a message to the worker's stdin (``read_message`` reads it there): a
        4-byte little-endian length, then a pickle."""
        payload = pickle.dumps(message)
        self.send(len(payload).to_bytes(4, "little") + payload)

    def send(self, data: bytes) -> None:
        """Write to the worker's stdin (without waiting: meant for a few bytes at a time)."""
        stdin = self.process.stdin if self.process is not None else None
        if stdin is not None and not stdin.is_closing():
            stdin.write(data)

    def close_input(self) -> None:
        """Close the worker's stdin: it has everything it will get."""
        stdin = self.process.stdin if self.process is not None else None
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    async def chunks(self, stopping: Callable[[], bool]) -> AsyncIterator[list[SourceItem]]:
        """What the worker decodes, chunk by chunk; its error raised as it came.

        A worker gone without an error (killed, out of memory) raises
        ``SourceUnavailableError`` unless ``stopping()``: it acknowledged nothing that
        was not in Kafka, so starting over from the last committed offset is safe."""
        async for data in self.payloads(stopping):
            message = frames.decode(data)
            if isinstance(message, BaseException):
                raise message
            yield message

    async def payloads(self, stopping: Callable[[], bool]) -> AsyncIterator[bytes]:
        """The payloads of the worker's frames, as they come (``chunks``: decoded)."""
        assert self.process is not None and self._pipe is not None
        pipe = self._pipe
        while True:
            try:
                header = await pipe.readexactly(4)
                data = await pipe.readexactly(int.from_bytes(header, "little"))
            except asyncio.IncompleteReadError:
                if stopping():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.process.wait(), 5)
                raise SourceUnavailableError(
                    f"{self.description} stopped (exit code {self.process.returncode})"
                ) from None
            yield data

    def stop_reading(self) -> None:
        """Close the frames pipe: the worker's next write fails."""
        if self._transport is not None:
            self._transport.close()

    def terminate(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()

    async def stop(self, grace_s: float = 0.0) -> None:
        """Stop reading and let the worker end: wait ``grace_s`` for it to exit by
        itself (its input closed), then terminate it, and wait for it."""
        self.stop_reading()
        if self.process is None:
            return
        if grace_s:
            self.close_input()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace_s)
        self.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 5)


# -- the worker's side ---------------------------------------------------------------------


def worker_setup() -> tuple[int, Any] | None:
    """In the worker: the frames pipe's fd and the setup the daemon sent; None when the
    daemon is already gone. SIGINT is ignored (Ctrl-C reaches the whole process group;
    the daemon decides, and stops the worker)."""
    fd, daemon_pid = int(sys.argv[1]), int(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != daemon_pid:
        return None  # the daemon went before the death signal was asked for
    return fd, read_message()


def read_message() -> Any:
    """In the worker: the daemon's next message on stdin (``Worker.send_message``), read
    to its last byte and no further (no buffered reader: what follows is read later).
    ``EOFError`` when the daemon closed the input."""
    size = int.from_bytes(_read_exactly(0, 4), "little")
    return pickle.loads(_read_exactly(0, size))


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            raise EOFError("the daemon closed the worker's input")
        data += more
    return data


async def frames_writer(fd: int) -> asyncio.StreamWriter:
    """In the worker: the frames pipe ``fd`` as a stream writer of the running loop."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", buffering=0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


async def close_frames(out: asyncio.StreamWriter) -> None:
    """In the worker: every byte on the pipe, then close it. ``drain()`` waits only down
    to the buffer's low-water mark, and what ``close()`` leaves in the buffer is lost with
    the event loop (the last frame: the daemon would see the worker end early)."""
    with contextlib.suppress(ConnectionError):
        out.transport.set_write_buffer_limits(high=0)
        await out.drain()
    out.transport.close()


def worker_main(run: Callable[[int, Any], Awaitable[None]]) -> None:
    """A worker module's ``main``: its setup from the daemon, then ``run(fd, setup)``."""
    setup = worker_setup()
    if setup is None:
        return
    fd, payload = setup
    asyncio.run(run(fd, payload))  # type: ignore[arg-type]
