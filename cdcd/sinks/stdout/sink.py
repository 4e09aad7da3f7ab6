"""Writes every record as one JSON line: ``{"topic": ..., "key": ..., "value": ...}``.

Lets the daemon run with no Kafka at all (demos, debugging, piping into jq). It stores no
offsets, so it guarantees no delivery: a start resumes where the source's own bookkeeping
says (a PostgreSQL slot's confirmed position, MySQL's ``source.initial_position``).
"""

from __future__ import annotations

import asyncio
import sys
from typing import IO

import orjson

from cdcd.offsets import StoredOffset
from cdcd.serialization import Record
from cdcd.sinks.base import Delivery


async def _done() -> None:
    return None


class StdoutSink:
    keeps_offsets = False  # the daemon then logs delivery "none" and stores no start position

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self.bytes_written = 0

    async def connect(self) -> None:
        return None  # nothing to reach

    async def activate(self) -> None:
        return None  # nothing to claim

    async def start(self) -> None:
        return None

    async def read_offset(self) -> StoredOffset | None:
        return None  # standard output keeps no offsets: the source's own bookkeeping rules

    async def write(self, records: list[Record], offset: StoredOffset | None = None) -> Delivery:
        parts = []
        for record in records:
            parts.append(b'{"topic":')
            parts.append(orjson.dumps(record.topic))
            parts.append(b',"key":')
            parts.append(record.key if record.key is not None else b"null")
            parts.append(b',"value":')
            parts.append(record.value if record.value is not None else b"null")
            parts.append(b"}\n")
        lines = b"".join(parts)
        self._stream.write(lines)
        self.bytes_written += len(lines)
        self._stream.flush()
        return asyncio.ensure_future(_done())

    async def close(self) -> None:
        self._stream.flush()
