"""The binlog reader process of ``source.reader = "process"``.

Started by the daemon through ``cdcd.worker`` as
``python -m cdcd.sources.mysql.reader <fd> <daemon pid>``. Its setup: ``source.*`` as
plain values, the server's facts, where to cut huge transactions, where to start, and
how to encode values (``Encoding``, from ``[encoding]``). It reads and decodes the
binlog and writes what it decodes to the pipe ``fd``, chunk by chunk, as frames
(``cdcd.frames``), an error as its last frame. It only reads: after its setup its stdin
only brings requests for a heartbeat Commit (``MysqlSource.heartbeat_soon``), and
stopping it is always safe.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, cast

from cdcd import frames
from cdcd.sources.mysql.decode import Stopped
from cdcd.sources.mysql.source import HEARTBEAT_REQUEST, MysqlSource
from cdcd.worker import worker_setup


def main() -> None:
    setup = worker_setup()
    if setup is None:
        return
    fd, (config, info, connector, server_id, index, split_after_events, start, options) = setup
    # A PlainConfig: source.* without pydantic; options: [encoding] as Encoding.
    source = MysqlSource(
        cast(Any, config),
        name="reader",
        split_after_events=split_after_events,
        options=options,
        server_index=index,
    )
    source.info, source.connector, source.server_id = info, connector, server_id
    out = os.fdopen(fd, "wb")
    threading.Thread(
        target=_heartbeat_requests, args=(source._heartbeat,), name="cdcd-requests", daemon=True
    ).start()

    def send(message: Any) -> None:
        try:
            out.write(frames.encode(message))
            out.flush()
        except BrokenPipeError:
            raise Stopped from None  # the daemon is gone

    with contextlib.suppress(Stopped, OSError):
        send(source._read_to_end(start, send))


def _heartbeat_requests(wanted: threading.Event) -> None:
    """Set ``wanted`` for each request on stdin, until the daemon closes it."""
    with contextlib.suppress(OSError):
        while True:
            data = os.read(0, 64)
            if not data:
                return
            if HEARTBEAT_REQUEST in data:
                wanted.set()


if __name__ == "__main__":
    main()
