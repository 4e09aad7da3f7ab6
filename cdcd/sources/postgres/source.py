"""Streams a PostgreSQL logical replication slot (pgoutput) with psycopg 3.

The replication connection is read at the libpq level, as DESIGN.md describes:
``get_copy_data`` without blocking, waiting on the socket in the event loop, and
standby status updates written with ``put_copy_data``. The slot's flush position
moves only when the pipeline acknowledges a commit (the ack rule).

Here: the stream (replication started, the read loop, pgoutput messages made into
events, keepalives and heartbeats, acknowledgements) and the reader process. Elsewhere:
sessions (``connection``), what an error means (``errors``), the slot and publication
(``slot``), the rows of a relation (``rows``), type converters (``types``).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import psycopg

from cdcd.encoding import Encoding
from cdcd.errors import SourceError
from cdcd.events import (
    HEARTBEAT,
    OP_CREATE,
    OP_DELETE,
    OP_TRUNCATE,
    ChangeEvent,
    Commit,
    SourceItem,
)
from cdcd.positions import PgPosition, Position, lsn_to_str
from cdcd.sources.base import Problem
from cdcd.sources.common import TransactionAssembler, update_events
from cdcd.sources.postgres import pgoutput
from cdcd.sources.postgres.checks import captured_tables, run_checks
from cdcd.sources.postgres.connection import Connector, watch_socket
from cdcd.sources.postgres.errors import replication_lost, stream_ended, stream_error
from cdcd.sources.postgres.heartbeat import HeartbeatRequests, status_ticks, status_update
from cdcd.sources.postgres.monitor import SlotMonitor
from cdcd.sources.postgres.reader import HEARTBEAT_MESSAGE, ack_message, reader_setup
from cdcd.sources.postgres.rows import (
    UNAVAILABLE_VALUE,
    Table,
    described_table,
    source_block,
    type_name,
)
from cdcd.sources.postgres.slot import ReplicationSlot, default_object_name
from cdcd.worker import Worker

if TYPE_CHECKING:
    from cdcd.sources.postgres.config import PostgresSourceConfig
    from cdcd.sources.postgres.snapshot import PostgresSnapshotReader

_XLOG_HEADER = struct.Struct(">QQQ")  # after the 'w': start LSN, end LSN, server clock
_KEEPALIVE = struct.Struct(">QQB")  # after the 'k': server WAL end, clock, reply requested
_CHUNK_ITEMS = 2000  # items handed to the pipeline at once, whatever the transaction size


class PostgresSource:
    """One logical replication slot of one database."""

    connector = "postgresql"

    def __init__(
        self,
        config: PostgresSourceConfig,
        *,
        name: str,
        log: Any = None,
        split_after_events: int = 20_000,
        reader: str | None = None,
        log_settings: tuple[str, str] | None = None,
        encoding: Encoding | None = None,
        take_over: bool = False,  # [ha]: the leader ends a reader still holding the slot
    ) -> None:
        self.config = config
        self.log = log
        self.split_after_events = split_after_events
        self.encoding: Encoding = encoding or Encoding()  # the modes of [encoding]
        self.name = name
        # "process": the stream is read and decoded in a worker process (cdcd.worker);
        # "inline": here, in the daemon's event loop (and in that worker itself).
        self.reader = reader or config.reader
        self._log_settings = log_settings  # (level, format) for the worker's own logging
        self._worker: Worker | None = None
        self._stopping = False
        self.slot = config.slot_name or default_object_name(name)
        self.publication = config.publication_name or default_object_name(name)
        self._connector = Connector(config, f"cdcd-{self.slot}")
        self._replication_slot = ReplicationSlot(
            self._connector, config, self.slot, self.publication, log
        )
        self._replication_slot.take_over = self.take_over = take_over
        self.database = self._connector.database
        self._where = self._connector.where
        self._tables: dict[int, Table] = {}
        self._type_names: dict[int, str] = {}
        self._repl: psycopg.AsyncConnection[Any] | None = None
        self._meta: psycopg.AsyncConnection[Any] | None = None
        self._acked_lsn = 0
        self._sent_lsn = -1
        self._last_status = 0.0
        self._last_commit_lsn = 0  # last commit decoded (not necessarily acked)
        self._last_commit_lsn_text = "null"  # as Debezium's source.sequence writes it
        self._in_transaction = False
        self._xid = 0
        self._commit_ts_us = 0
        # The open transaction's changes; where a restart resumes inside a cut one.
        self._assembler = TransactionAssembler(split_after_events)
        self._heartbeat_due = False  # a heartbeat interval passed since the last heartbeat
        self._heartbeats = HeartbeatRequests(
            self._replication_slot.insert_position,
            lambda: self._send_status(force=True, reply=True),
            log,
        )
        self._monitor = SlotMonitor(self._connector, config, self.slot, log)

    # -- connections, checks and positions ------------------------------------------

    async def _connect(self, replication: bool = False) -> psycopg.AsyncConnection[Any]:
        return await self._connector.connect(replication)

    async def check(self) -> list[Problem]:
        """What stops or spoils streaming, each with its fix (``cdcd check``)."""
        conn = await self._connect()
        try:
            return await run_checks(conn, self.config, self.slot, self.publication)
        finally:
            await conn.close()

    async def captured_tables(self) -> list[tuple[str, str]]:
        """The existing tables whose changes are captured, ``(schema, table)``."""
        conn = await self._connect()
        try:
            return await captured_tables(conn, self.config)
        finally:
            await conn.close()

    async def prepare(self, resume: Position | None = None) -> None:
        """Checks, then the publication, and the slot created or checked to continue
        from ``resume`` (``ReplicationSlot.prepare``)."""
        await self._replication_slot.prepare(resume)
        self._monitor.start()  # the daemon's: a reader process streams without prepare()

    @property
    def slot_lag_bytes(self) -> int | None:
        """Bytes the slot's confirmed position was behind the WAL end (None: not known)."""
        return self._monitor.lag_bytes

    async def check_position(self, position: Position) -> None:
        """Refuse a position to store that the slot cannot stream from exactly."""
        await self._replication_slot.check_position(position)

    async def prepare_reset(self, position: Position) -> PgPosition:
        """The position to store for ``cdcd offsets reset``, the slot created if missing."""
        return await self._replication_slot.prepare_reset(position)

    async def earliest_position(self) -> PgPosition:
        """The slot's confirmed position (no slot yet: the current end of the WAL); also
        where streaming starts without a stored offset (``start_position``)."""
        return await self._replication_slot.earliest_position()

    start_position = earliest_position

    async def latest_position(self) -> PgPosition:
        """The current end of the WAL: every transaction committed so far lies before it."""
        return await self._replication_slot.latest_position()

    answers = latest_position  # [ha]: a quiet server that answers a query is not lost

    def snapshot_reader(self) -> PostgresSnapshotReader:
        """The reader of the captured tables' rows (``cdcd.snapshot.SnapshotReader``)."""
        from cdcd.sources.postgres.snapshot import PostgresSnapshotReader

        return PostgresSnapshotReader(
            self.config, self._connector, self._replication_slot, self.encoding, self.log
        )

    def heartbeat_soon(self) -> None:
        """A heartbeat ``Commit`` after what is committed now, within a second (``heartbeat``)."""
        if self._worker is not None:
            self._worker.send(HEARTBEAT_MESSAGE)
        else:
            self._heartbeats.request()

    # -- streaming ------------------------------------------------------------------

    async def stream(self, resume: Position | None) -> AsyncIterator[list[SourceItem]]:
        """Yield chunks of events and commits from the slot, after ``resume`` if given."""
        if resume is not None and not isinstance(resume, PgPosition):
            raise SourceError(f"cannot resume a PostgreSQL stream from a {resume.kind} position")
        if self.reader == "process":
            async for chunk in self._stream_from_process(resume):
                yield chunk
            return
        self._meta = await self._connect()
        self._repl = await self._connect(replication=True)
        confirmed = await self._replication_slot.confirmed_lsn(self._meta, resume)
        start = self._start_lsn(resume, confirmed)
        self._last_commit_lsn = start  # the next transaction's predecessor, for cut positions
        self._heartbeats.given(start)
        self._heartbeat_due = False  # the first heartbeat one interval from now
        self._last_commit_lsn_text = f'"{start}"'
        self._acked_lsn = max(self._acked_lsn, start, confirmed)
        await self._replication_slot.start_replication(self._repl, start)
        if self.log is not None:
            self.log.info(
                "streaming",
                slot=self.slot,
                publication=self.publication,
                start=lsn_to_str(start),
                skip_events=self._assembler.skip,
            )
        feedback = asyncio.create_task(self._feedback_loop(), name="cdcd-pg-feedback")
        try:
            async for chunk in self._read():
                yield chunk
        except psycopg.OperationalError as exc:
            # The metadata connection (primary keys of a new relation) or a status update.
            raise stream_error(exc, self._where) from None
        finally:
            feedback.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.OperationalError):
                await feedback

    async def _stream_from_process(
        self, resume: PgPosition | None
    ) -> AsyncIterator[list[SourceItem]]:
        """The same stream, read and decoded by a worker process: the daemon's core is
        left to encoding and Kafka. Acknowledged positions are passed on to it (its
        connection holds the slot and sends the status updates)."""
        worker = self._worker = Worker(
            "cdcd.sources.postgres.reader", "the replication reader process"
        )
        await worker.start(reader_setup(self, resume))
        try:
            async for chunk in worker.chunks(lambda: self._stopping):
                yield chunk
        finally:
            # Nothing more is read; the worker stays to pass on the acknowledgements of
            # what is being written, until close().
            worker.stop_reading()

    def _start_lsn(self, resume: PgPosition | None, confirmed: int) -> int:
        """Where to start: the stored offset, else the slot's confirmed position.

        PostgreSQL sends every transaction whose commit record starts at or after the
        requested LSN, but never from before the slot's confirmed position: a slot behind
        the stored offset (Kafka committed, the server not yet told) is fast-forwarded by
        asking for the offset's LSN; a slot ahead of it has lost changes (the slot only
        moves past what Kafka holds: ``ReplicationSlot.check_resumable``). A position that
        cuts a transaction resumes in it: PostgreSQL sends it whole again and its first
        ``index`` events, already in Kafka, are skipped.
        """
        skip = 0 if resume is None else resume.index
        self._assembler = TransactionAssembler(self.split_after_events, skip=skip)
        if resume is None:
            return confirmed
        if resume.commit_lsn > confirmed and self.log is not None:
            self.log.info(
                "fast-forwarding the slot past what Kafka already holds",
                slot=self.slot,
                slot_confirmed=lsn_to_str(confirmed),
                stored_offset=str(resume),
            )
        return resume.commit_lsn

    async def _read(self) -> AsyncIterator[list[SourceItem]]:
        assert self._repl is not None
        pgconn = self._repl.pgconn
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        watch_socket(loop, pgconn.socket, readable.set)
        decode = pgoutput.decode
        items: list[SourceItem] = []
        # Over TLS libpq reads a record (<= 16 kB) at a time: read on before the stream counts
        # as idle, or each turn of the loop hands on a few dozen events (4x the CPU an event).
        again = tls = pgconn.ssl_in_use
        try:
            while True:
                try:
                    size, data = pgconn.get_copy_data(1)
                    if size == 0 and again:
                        again = False
                        pgconn.consume_input()
                        continue
                except psycopg.OperationalError as exc:
                    raise replication_lost(exc, self._where) from None
                if size > 0:
                    again = tls
                    kind = data[0]
                    if kind == 0x77:  # 'w' XLogData
                        start_lsn = _XLOG_HEADER.unpack_from(data, 1)[0]
                        message = decode(memoryview(data)[25:])
                        if type(message) is pgoutput.Relation:
                            await self._on_relation(message, items)
                        else:
                            self._on_message(message, start_lsn, items)
                        if len(items) >= _CHUNK_ITEMS:
                            yield items
                            items = []
                    elif kind == 0x6B:  # 'k' primary keepalive
                        wal_end, _clock, reply = _KEEPALIVE.unpack_from(data, 1)
                        self._on_keepalive(wal_end, items)
                        if reply:
                            self._send_status(force=True)
                    continue
                if size == 0:
                    if items:
                        yield items
                        items = []
                    if self._meta is not None:
                        # Idle: no session of ours but the walsender's stays open, so that
                        # a smart shutdown of the server (it waits for client sessions to
                        # end) is not held up by cdcd.
                        await self._close_meta()
                    readable.clear()
                    await readable.wait()
                    try:
                        pgconn.consume_input()
                    except psycopg.OperationalError as exc:
                        raise replication_lost(exc, self._where) from None
                    continue
                raise stream_ended(pgconn, self.slot)
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(pgconn.socket)

    async def _on_relation(self, rel: pgoutput.Relation, items: list[SourceItem]) -> None:
        included = self.config.includes(rel.namespace, rel.name)
        if included and (self._meta is None or self._meta.closed):
            self._meta = await self._connect()
        table, schema = await described_table(
            self._meta if included else None, rel, self._type_names, self.encoding
        )
        self._tables[rel.oid] = table
        if schema is not None:  # before the table's changes, for a serializer with schemas
            items.append(schema)

    def _source_block(self, table: Table, lsn: int) -> dict[str, Any]:
        sequence = f'[{self._last_commit_lsn_text},"{lsn}"]'
        return source_block(
            self.database, table.namespace, table.name, self._commit_ts_us, sequence, self._xid, lsn
        )

    def _on_message(self, msg: Any, lsn: int, items: list[SourceItem]) -> None:
        kind = type(msg)
        if kind is pgoutput.Insert:
            table = self._tables[msg.relation_oid]
            if table.included:
                after = table.row(msg.new, lsn)
                event = self._event(OP_CREATE, table, lsn, table.key(after), None, after)
                self._assembler.add(event, items)
        elif kind is pgoutput.Update:
            table = self._tables[msg.relation_oid]
            if table.included:
                self._on_update(table, msg, lsn, items)
        elif kind is pgoutput.Delete:
            table = self._tables[msg.relation_oid]
            if table.included:
                before = table.row(msg.old, lsn)
                event = self._event(OP_DELETE, table, lsn, table.key(before), before, None)
                self._assembler.add(event, items)
        elif kind is pgoutput.Begin:
            self._in_transaction = True
            self._xid = msg.xid
            self._commit_ts_us = msg.commit_ts_us
            # The transaction's id in transaction metadata: "<xid>:<commit LSN>".
            txid = f"{msg.xid}:{msg.final_lsn}"
            self._assembler.begin(txid, msg.commit_ts_us // 1000, self._cut_position)
        elif kind is pgoutput.Commit:
            self._assembler.commit(PgPosition(msg.end_lsn), items, msg.commit_ts_us // 1000)
            self._heartbeats.given(msg.end_lsn)
            self._in_transaction = False
            self._last_commit_lsn = msg.end_lsn
            self._last_commit_lsn_text = f'"{msg.end_lsn}"'
        elif kind is pgoutput.Truncate:
            for oid in msg.relation_oids:
                table = self._tables[oid]
                if table.included:
                    event = self._event(OP_TRUNCATE, table, lsn, None, None, None)
                    self._assembler.add(event, items)
        elif kind is pgoutput.TypeMsg:
            self._type_names[msg.oid] = type_name(msg)
        # Origin and logical decoding messages carry no row change.

    def _cut_position(self, count: int) -> PgPosition:
        """Where a restart resumes with ``count`` changes of the open transaction in
        Kafka: PostgreSQL sends it again whole from the previous commit's end (or
        heartbeat), and those are skipped."""
        return PgPosition(self._last_commit_lsn, count)

    def _on_update(self, table: Table, msg: Any, lsn: int, items: list[SourceItem]) -> None:
        after = table.row(msg.new, lsn)
        before = table.row(msg.old, lsn) if msg.old is not None else None
        if before is not None and msg.old_kind == "O":
            # REPLICA IDENTITY FULL: the old row holds the TOASTed values the new one omits.
            for name, value in after.items():
                if value == UNAVAILABLE_VALUE and before[name] != UNAVAILABLE_VALUE:
                    after[name] = before[name]
        assembler = self._assembler
        source = self._source_block(table, lsn)
        for event in update_events(
            table.namespace, table.name, table.key, before, after, source, assembler.txid
        ):
            assembler.add(event, items)

    def _event(
        self,
        op: str,
        table: Table,
        lsn: int,
        key: dict[str, Any] | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> ChangeEvent:
        source = self._source_block(table, lsn)
        txid = self._assembler.txid
        return ChangeEvent(op, table.namespace, table.name, key, before, after, source, txid)

    # -- acknowledgements ------------------------------------------------------------

    def _on_keepalive(self, wal_end: int, items: list[SourceItem]) -> None:
        """Idle or filtered-out WAL: offer the server's WAL end as a position to store.

        With every commit decoded so far acknowledged and no transaction open, nothing
        before the WAL end is ours to deliver. The slot moves there only once Kafka holds
        an offset record for it (the ack rule): a heartbeat commit, without events, goes
        through the pipeline like any other, once a heartbeat interval (or at once when
        asked for). So a slot ahead of the stored offset is a sure sign of lost changes
        (``check_resumable``), while the server still recycles WAL that holds nothing for
        us. Not inside a cut transaction seen again: its position must stay readable."""
        if self._in_transaction or self._assembler.skipping or wal_end <= self._last_commit_lsn:
            return
        if self._acked_lsn < self._last_commit_lsn:
            return  # a commit (or heartbeat) is still on its way to Kafka
        if not (self._heartbeat_due or self._heartbeats.urgent(wal_end)):
            return
        self._heartbeat_due = False
        self._last_commit_lsn = wal_end
        self._last_commit_lsn_text = f'"{wal_end}"'
        items.append(Commit(PgPosition(wal_end), extra=HEARTBEAT))
        self._heartbeats.given(wal_end)

    async def ack(self, position: Position) -> None:
        """Everything up to ``position`` is in Kafka: let the slot move past it."""
        assert isinstance(position, PgPosition)
        if self._worker is not None:
            if position.commit_lsn > self._acked_lsn:
                self._acked_lsn = position.commit_lsn
                self._worker.send(ack_message(position.commit_lsn))
            return
        self._acked_lsn = max(self._acked_lsn, position.commit_lsn)
        if time.monotonic() - self._last_status >= 1.0:
            self._send_status()

    def _send_status(self, force: bool = False, reply: bool = False) -> None:
        """A standby status update; ``reply``: the server is to answer with a keepalive."""
        if self._repl is None or self._repl.closed:
            return
        if not force and self._acked_lsn == self._sent_lsn:
            return
        lsn = self._acked_lsn
        pgconn = self._repl.pgconn
        try:
            pgconn.put_copy_data(status_update(lsn, reply))
            pgconn.flush()
        except psycopg.OperationalError as exc:
            raise replication_lost(exc, self._where) from None
        self._sent_lsn = lsn
        self._last_status = time.monotonic()

    async def _feedback_loop(self) -> None:
        """Standby status updates; on a heartbeat tick, a keepalive asked for (``heartbeat``)."""
        async for beat in status_ticks(self.config):
            self._heartbeat_due |= beat
            self._send_status(force=True, reply=beat)

    async def _close_meta(self) -> None:
        meta, self._meta = self._meta, None
        if meta is not None:
            with contextlib.suppress(Exception):
                await meta.close()

    @property
    def description(self) -> str:
        """The server, as messages name it: ``PostgreSQL at host:port``."""
        return f"PostgreSQL at {self._where}"

    @property
    def identity(self) -> str:  # the database, whatever server serves it (once prepared)
        return self._replication_slot.identity

    @property
    def acked_position(self) -> PgPosition:
        return PgPosition(self._acked_lsn)

    async def close(self) -> None:
        """Report the final acknowledged position and disconnect."""
        await self._heartbeats.close()
        await self._monitor.close()
        if self._worker is not None:
            # The worker reports it, once it has every acknowledgement sent so far.
            self._stopping = True
            await self._worker.stop(grace_s=5.0)
        if self._repl is not None and not self._repl.closed:
            with contextlib.suppress(Exception):
                self._send_status(force=True)
            with contextlib.suppress(Exception):
                await self._repl.close()
        await self._close_meta()
        if self.log is not None and self._repl is not None:
            self.log.info("source closed", slot=self.slot, confirmed=lsn_to_str(self._acked_lsn))
