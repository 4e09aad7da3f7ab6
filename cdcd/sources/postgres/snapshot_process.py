"""A table's scan in an exported snapshot, read in a process of its own
(``source.snapshot_reader = "process"``): the second core fetches and converts the rows
while the daemon encodes them and writes them to Kafka.

The daemon starts ``python -m cdcd.sources.postgres.snapshot_process <fd> <daemon pid>``
through ``cdcd.worker`` with its setup: the source's configuration (``PlainConfig``,
the password read by the daemon), the sessions' application name, the exported
snapshot's name and consistent point, the table, the key to continue after, the chunk
size, the condition and ``decimal.handling.mode``. The process joins the snapshot
(``SET TRANSACTION SNAPSHOT``: the daemon's view holds it open), runs the very scan the
daemon runs inline (``snapshot_rows.scan_view``) and writes each chunk to the pipe ``fd``
as a frame (``frames.encode_chunk``: the chunk's source block once), an error as its
last frame; it exits after the table's last chunk.

Memory stays bounded on both sides: the process fetches its next rows only once the pipe
took the last chunk, and the daemon reads the pipe only as its snapshot queue empties.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from cdcd import frames
from cdcd.errors import SourceError
from cdcd.selection import PlainConfig
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.worker import Worker, close_frames, frames_writer, worker_main

if TYPE_CHECKING:
    from cdcd.encoding import Encoding
    from cdcd.sources.postgres.connection import Connector

MODULE = "cdcd.sources.postgres.snapshot_process"


async def process_scan(
    connector: Connector,
    snapshot: str,
    lsn: int,
    table: SnapshotTable,
    after: list[Any] | None,
    chunk_size: int,
    where: str | None,
    encoding: Encoding,
) -> AsyncIterator[Chunk]:
    """``snapshot_rows.scan_view``'s chunks, read by a scan process; its error raised as it
    came. The process ends with the table's last chunk, or when this iterator is closed."""
    worker = Worker(MODULE, f"the snapshot scan process of {table.id}")
    config = connector.config
    plain = config if isinstance(config, PlainConfig) else PlainConfig.of(config)
    setup = (plain, connector.application_name, snapshot, lsn, table, after, chunk_size,
             where, encoding)  # fmt: skip
    await worker.start(setup)
    try:
        async for payload in worker.payloads(lambda: False):
            chunk = frames.decode_chunk(payload)
            if isinstance(chunk, BaseException):
                raise chunk
            chunk.table = table
            yield chunk
            if chunk.done:
                return
    finally:
        await worker.stop(grace_s=1.0)


async def _run(fd: int, setup: Any) -> None:
    from cdcd.sources.postgres.connection import Connector
    from cdcd.sources.postgres.snapshot_rows import scan_view

    config, application_name, snapshot, lsn, table, after, chunk_size, where, encoding = setup
    connector = Connector(cast(Any, config), application_name)
    out = await frames_writer(fd)
    try:
        scan = scan_view(connector, snapshot, lsn, table, after, chunk_size, where, encoding)
        async for chunk in scan:
            out.write(frames.encode_chunk(chunk))
            await out.drain()
    except ConnectionError:
        return  # the daemon stopped reading: it is stopping
    except Exception as exc:  # noqa: BLE001 - every failure goes to the daemon
        error = (
            exc
            if isinstance(exc, SourceError)
            else SourceError(f"PostgreSQL snapshot scan of {table.id} failed: "
                             f"{exc.__class__.__name__}: {exc}")
        )  # fmt: skip
        with contextlib.suppress(ConnectionError):
            out.write(frames.encode(error))
            await out.drain()
    finally:
        await close_frames(out)


def main() -> None:
    worker_main(_run)


if __name__ == "__main__":
    main()
