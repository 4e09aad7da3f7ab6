"""The replication reader process of PostgreSQL's ``source.reader = "process"``.

Started by the daemon through ``cdcd.worker`` as
``python -m cdcd.sources.postgres.reader <fd> <daemon pid>``. Its setup: the source's
configuration, the daemon's name, where to cut huge transactions, where to resume, how
to log, and the encoding modes (``[encoding]``). It runs the source's own stream (slot,
pgoutput decoding, rows) and writes each chunk to the pipe ``fd`` as a frame, an error as
its last frame.

On its stdin come messages of 9 bytes: ``a`` and the commit LSN (8 bytes,
little-endian) of a position the daemon acknowledged (Kafka holds everything before it),
which goes to the server in the source's status updates exactly as in the daemon; ``h``
(and 8 bytes of nothing) for a heartbeat asked for (``heartbeat_soon``). The end of its
stdin is the daemon's "stop": the reader then reports the last acknowledged position and exits. While the
daemon does not read (Kafka is slow), the reader waits without blocking its event loop,
so the status updates that keep the replication connection alive still go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any, cast

from cdcd import frames
from cdcd.errors import SourceError
from cdcd.positions import PgPosition
from cdcd.selection import PlainConfig
from cdcd.worker import close_frames, frames_writer, worker_main

if TYPE_CHECKING:
    from cdcd.sources.postgres.source import PostgresSource


ACK, HEARTBEAT_SOON = b"a", b"h"
_MESSAGE_SIZE = 9


def ack_message(lsn: int) -> bytes:
    """The daemon's message: everything before ``lsn`` is in Kafka."""
    return ACK + lsn.to_bytes(8, "little")


HEARTBEAT_MESSAGE = HEARTBEAT_SOON + bytes(8)


def reader_setup(source: PostgresSource, resume: PgPosition | None) -> tuple[Any, ...]:
    """The daemon's setup of the reader process of ``source``, to stream after ``resume``."""
    return (
        PlainConfig.of(source.config),
        source.name,
        source.split_after_events,
        resume,
        source._log_settings,
        source.encoding,
        source.take_over,
    )


async def _run(fd: int, setup: Any) -> None:
    from cdcd.sources.postgres.source import PostgresSource

    config, name, split_after_events, resume, log_settings, encoding, take_over = setup
    log = None
    if log_settings is not None:
        from cdcd.log import setup_logging

        level, fmt = log_settings
        log = setup_logging(level, fmt).bind(name=name)
    # A PlainConfig: source.* without pydantic.
    source = PostgresSource(
        cast(Any, config),
        name=name,
        log=log,
        split_after_events=split_after_events,
        reader="inline",
        encoding=encoding,
        take_over=take_over,
    )
    loop = asyncio.get_running_loop()
    out = await frames_writer(fd)
    acks = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(acks), os.fdopen(0, "rb", buffering=0)
    )

    async def pump() -> None:
        try:
            async for chunk in source.stream(resume):
                out.write(frames.encode(chunk))
                await out.drain()
        except ConnectionError:
            return  # the daemon stopped reading: it is stopping
        except Exception as exc:  # noqa: BLE001 - every failure goes to the daemon
            error = (
                exc
                if isinstance(exc, SourceError)
                else SourceError(f"PostgreSQL reader failed: {exc.__class__.__name__}: {exc}")
            )
            with contextlib.suppress(ConnectionError):
                out.write(frames.encode(error))
                await out.drain()

    async def acknowledge() -> None:
        while True:
            try:
                data = await acks.readexactly(_MESSAGE_SIZE)
            except asyncio.IncompleteReadError:
                return  # the daemon is stopping (or gone)
            if data[:1] == HEARTBEAT_SOON:
                source.heartbeat_soon()
                continue
            # A status update that fails (connection lost) is the stream's to report.
            with contextlib.suppress(SourceError):
                await source.ack(PgPosition(int.from_bytes(data[1:], "little")))

    streaming = asyncio.create_task(pump(), name="cdcd-pg-reader")
    try:
        await acknowledge()
    finally:
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming
        await source.close()  # the last acknowledged position goes to the server
        await close_frames(out)


def main() -> None:
    worker_main(_run)


if __name__ == "__main__":
    main()
