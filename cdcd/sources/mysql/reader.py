"""The binlog reader process of ``source.reader = "process"``.

Started by the daemon as ``python -m cdcd.sources.mysql.reader <fd> <daemon pid>``: it
reads its setup (``source.*`` as plain values, server facts, where to cut huge transactions, where to
start) pickled on stdin, then reads and decodes the binlog and writes what it decodes to
the pipe ``fd``, chunk by chunk, as frames (``frames``), and an error as its last frame.

A full pipe blocks the write, and the daemon stops reading the pipe while its own buffer
is full: memory stays bounded on both sides. When the daemon goes, this process gets
SIGTERM (PR_SET_PDEATHSIG), or the next write fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
from typing import Any, cast

from cdcd.sources.mysql import frames
from cdcd.sources.mysql.source import MysqlSource, _Stopped


def main(fd: int, daemon_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the daemon decides, and stops it
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != daemon_pid:
        return  # the daemon went before the death signal was asked for
    config, info, connector, server_id, split_after_events, start = pickle.load(sys.stdin.buffer)
    # A _ReaderConfig: the part of source.* that reading needs, without pydantic.
    source = MysqlSource(cast(Any, config), name="reader", split_after_events=split_after_events)
    source.info, source.connector, source.server_id = info, connector, server_id
    out = os.fdopen(fd, "wb")

    def send(message: Any) -> None:
        try:
            out.write(frames.encode(message))
            out.flush()
        except BrokenPipeError:
            raise _Stopped from None  # the daemon is gone

    with contextlib.suppress(_Stopped, OSError):
        send(source._read_to_end(start, send))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
