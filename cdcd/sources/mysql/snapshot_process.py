"""A consistent view read in a process of its own (``source.snapshot_reader = "process"``).

Reading and encoding rows is most of a snapshot's work; in a worker process (``cdcd.
worker``) it runs on the second core while the daemon encodes envelopes and writes to
Kafka, as the binlog stream does. MariaDB cannot join a snapshot another session opened,
so the view's session is the worker's own: the worker opens the view
(``snapshot_view.open_view``, one connection) and tells its position, then scans table
after table as the daemon asks (``WorkerView.scan``), one at a time.

Started as ``python -m cdcd.sources.mysql.snapshot_process <fd> <daemon pid>``; its setup
is ``source.*`` as plain values, the server's facts, the connector and the encoding
options. The daemon then writes requests on its stdin (``Worker.send_message``: a
scan's table, key, chunk size and condition, or a stop of the scan the daemon left);
closing it ends the worker. The worker writes frames (``cdcd.frames``): pickles for its
log lines and the view (its position and time, or None), then each chunk as
``frames.encode_chunk`` writes it (the rows' source block once, as PostgreSQL's scan
process sends them); an error as its last frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from cdcd import frames
from cdcd.errors import SourceError
from cdcd.selection import PlainConfig
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.worker import Worker, read_message, worker_setup

if TYPE_CHECKING:
    from cdcd.sources.mysql.snapshot import MysqlSnapshotReader

MODULE = "cdcd.sources.mysql.snapshot_process"


class WorkerView:
    """A ``cdcd.snapshot.ConsistentSnapshot`` whose one session is a worker process's."""

    def __init__(self, worker: Worker, replies: AsyncIterator[Any], view: Any) -> None:
        self.worker = worker
        self._replies = replies
        self.position, self.ts_ms = view
        self._lock = asyncio.Lock()
        self._failed = False  # an error came instead of a chunk: no more scans

    @classmethod
    async def open(cls, reader: MysqlSnapshotReader) -> WorkerView | None:
        """The worker started and its view opened, or None (no view: logged by it)."""
        source = reader.source
        worker = Worker(MODULE, "the snapshot reader process")
        setup = (
            PlainConfig.of(source.config),
            source.info,
            source.connector,
            source.encoding,
            source.server_index,
        )
        closing = False
        replies = worker.payloads(lambda: closing)
        try:
            await worker.start(setup)
            while True:
                reply = _message(await anext(replies))
                if not (isinstance(reply, tuple) and reply and reply[0] == "log"):
                    break
                if source.log is not None:
                    _, level, message, fields = reply
                    getattr(source.log, level)(message, **fields)
        except BaseException:
            closing = True
            await worker.stop()
            raise
        if reply is None:
            closing = True
            await worker.stop(grace_s=5)
            return None
        return cls(worker, replies, reply)

    async def scan(
        self, table: SnapshotTable, after: list[Any] | None, chunk_size: int, where: str | None
    ) -> AsyncIterator[Chunk]:
        """The table in this view, in key order (scans wait for each other). A scan left
        before its end is stopped in the worker, and its chunks on the way read past."""
        async with self._lock:
            if self._failed:
                raise SourceError("the snapshot reader process failed in an earlier scan")
            self._request(("scan", table, after, chunk_size, where))
            left = True
            try:
                while left:
                    chunk = await self._reply()
                    left = not chunk.done
                    yield Chunk(table, chunk.rows, chunk.last_key, chunk.done, chunk.extra)
            finally:
                if left and not self._failed:
                    self._request(("stop",))
                    while type(reply := await self._reply()) is Chunk and not reply.done:
                        pass  # the chunks sent before the worker saw the stop, then "stopped"

    def _request(self, request: tuple[Any, ...]) -> None:
        self.worker.send_message(request)

    async def _reply(self) -> Any:
        """The worker's next frame: a chunk (``frames.decode_chunk``) or a pickle."""
        try:
            return _message(await anext(self._replies))
        except BaseException:
            self._failed = True
            raise

    async def close(self) -> None:
        """End the worker: its input closed, its transaction rolled back as it exits."""
        await self.worker.stop(grace_s=5)


def _message(data: bytes) -> Any:
    """A frame's payload: a chunk, or what the worker pickled (a log line, the view, a
    stop's answer); an error raised."""
    message: Any = frames.decode_chunk(data)
    if isinstance(message, BaseException):
        raise message
    return message


# -- the worker's side ---------------------------------------------------------------------


class _Log:
    """The worker's log: each line a frame, logged by the daemon."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def __getattr__(self, level: str) -> Any:
        def log(message: str, **fields: Any) -> None:
            _send(self.out, ("log", level, message, fields))

        return log


def _send(out: Any, message: Any) -> None:
    out.write(frames.pickled(message))
    out.flush()


def _requests(loop: asyncio.AbstractEventLoop, requests: asyncio.Queue[Any]) -> None:
    """The daemon's requests on stdin, put in ``requests``; None when it closed it."""
    request: Any = True
    while request is not None:
        try:
            request = read_message()
        except EOFError:
            request = None
        loop.call_soon_threadsafe(requests.put_nowait, request)


async def _serve(reader: MysqlSnapshotReader, out: Any) -> None:
    from cdcd.sources.mysql.snapshot_view import open_view

    view = await asyncio.to_thread(open_view, reader, reader._info(), 1)
    _send(out, None if view is None else (view.position, view.ts_ms))
    if view is None:
        return
    requests: asyncio.Queue[Any] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_requests, args=(loop, requests), daemon=True).start()
    try:
        while (request := await requests.get()) is not None:
            if request[0] != "scan":
                continue  # a stop for a scan that had ended
            async with contextlib.aclosing(view.scan(*request[1:])) as chunks:
                async for chunk in chunks:
                    out.write(frames.encode_chunk(chunk))
                    out.flush()
                    if not requests.empty():  # a stop (or the daemon gone): the scan left
                        _send(out, ("stopped",))
                        break
    finally:
        await view.close()


def main() -> None:
    from cdcd.sources.mysql.snapshot import MysqlSnapshotReader
    from cdcd.sources.mysql.source import MysqlSource

    setup = worker_setup()
    if setup is None:
        return
    fd, (config, info, connector, options, index) = setup
    out = os.fdopen(fd, "wb")
    source = MysqlSource(
        cast(Any, config), name="snapshot", options=options, log=_Log(out), server_index=index
    )
    source.info, source.connector = info, connector
    try:
        asyncio.run(_serve(MysqlSnapshotReader(source), out))
    except BrokenPipeError:
        return  # the daemon is gone
    except Exception as exc:  # noqa: BLE001 - the daemon raises it
        try:
            out.write(frames.encode(exc))
            out.flush()
        except OSError:
            return


if __name__ == "__main__":
    main()
