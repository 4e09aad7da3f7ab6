"""Streams the MySQL/MariaDB binlog with python-mysql-replication.

The library is blocking, so the binlog is read in a worker thread that hands chunks of
items (events, then their transaction's ``Commit``) to the event loop through a bounded
queue: the loop never blocks and memory stays bounded whatever the transaction size.
Column names come from the binlog's own table metadata (``binlog_row_metadata=FULL``),
so an event read long after an ALTER TABLE carries the names it was written with.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import threading
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import pymysql

from cdcd.encoding import Encoding
from cdcd.errors import SourceError, SourceUnavailableError
from cdcd.events import SourceItem
from cdcd.positions import MysqlPosition, Position
from cdcd.selection import PlainConfig
from cdcd.sources.base import Problem
from cdcd.sources.mysql import binlog as bl
from cdcd.sources.mysql.checks import ServerInfo, captured_tables, run_checks, server_info
from cdcd.sources.mysql.ddl import DatabaseFilter
from cdcd.sources.mysql.decode import BinlogDecoder, Stopped
from cdcd.sources.mysql.errors import connect_error, stream_error
from cdcd.sources.mysql.history import check_position
from cdcd.sources.mysql.servers import first_serving, servers
from cdcd.sources.mysql.snapshot import MysqlSnapshotReader
from cdcd.sources.mysql.start import Start, StartPoints
from cdcd.sources.mysql.tables import TableMaps, count_year_as_numeric
from cdcd.sources.mysql.tls import tls_context
from cdcd.sources.mysql.types import DEFAULT_OPTIONS
from cdcd.worker import Worker

if TYPE_CHECKING:
    from cdcd.sources.mysql.config import MysqlSourceConfig

_QUEUE_CHUNKS = 4  # at most 4 chunks (of up to 2000 items) wait for the pipeline
# The server sends a heartbeat after this much silence (or source.heartbeat_interval_s if
# shorter): heartbeat_soon() is answered within it. The connection still counts as lost
# after 4 heartbeat_interval_s of silence.
_HEARTBEAT_SOON_S = 1.0
HEARTBEAT_REQUEST = b"h"  # on the reader process's stdin: heartbeat_soon()


def derive_server_id(name: str) -> int:
    """A replica server id derived from the daemon's name (stable across restarts)."""
    return 100_000 + zlib.crc32(name.encode()) % 4_000_000_000


class MysqlSource:
    """One MySQL or MariaDB server's binlog."""

    connector = "mysql"

    def __init__(
        self,
        config: MysqlSourceConfig,
        *,
        name: str,
        log: Any = None,
        split_after_events: int = 20_000,
        options: Encoding = DEFAULT_OPTIONS,
        server_index: int = 0,
    ) -> None:
        self.config = config
        self.log = log
        self.encoding = options  # the encoding modes ([encoding]): cdcd.encoding.Encoding
        # A larger transaction is cut (a Commit inside it, with the count of its events
        # written): Kafka transactions stay short, memory bounded, and a restart resumes
        # inside it.
        self.split_after_events = split_after_events
        self.server_id = config.server_id or derive_server_id(name)
        password = config.password()
        secret = password.get_secret_value() if password else None
        self.servers = servers(config.dsn, secret, tls_context(config))
        # The server of source.dsn read from: chosen by prepare() (a reader process is
        # told it), the first one until then.
        self.server_index = server_index
        self.info: ServerInfo | None = None
        self._stop = threading.Event()
        self._heartbeat = threading.Event()  # heartbeat_soon() asked for a heartbeat Commit
        self._binlog: bl.BinlogStream | None = None
        self._worker: Worker | None = None  # source.reader = "process"
        self.checksum = True  # events end with a CRC32 (binlog_checksum = CRC32)
        self._thread: threading.Thread | None = None
        self.acked: MysqlPosition | None = None
        self.table_databases: set[str] = set()  # databases holding captured tables

    # -- connections and checks ------------------------------------------------------

    @property
    def _where(self) -> str:
        return self.servers[self.server_index].where

    def _connect(self) -> pymysql.connections.Connection:
        connection = self.servers[self.server_index].connection
        try:
            return pymysql.connect(**connection, connect_timeout=10, autocommit=True)
        except pymysql.err.OperationalError as exc:
            raise connect_error(exc, self._where, self.config) from None

    def _check_sync(self) -> list[Problem]:
        """The findings on the server read from (``server_index``); its facts in ``info``."""
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                self.info = server_info(cursor)
                if self.info.flavor == "mariadb":
                    self.connector = "mariadb"
                return run_checks(cursor, self.config, self.info)
        finally:
            conn.close()

    def _check_every_server(self) -> list[Problem]:
        if len(self.servers) == 1:
            return self._check_sync()
        problems: list[Problem] = []
        infos: dict[int, ServerInfo] = {}
        for index in range(len(self.servers)):
            self.server_index = index
            try:
                found = self._check_sync()
            except SourceError as exc:  # a finding about this server: check the others
                problems.append(Problem(f"source.dsn entry {index + 1}: {exc}", ""))
                continue
            assert self.info is not None
            infos[index] = self.info
            about = f"{self.description} (source.dsn entry {index + 1})"
            problems += [Problem(f"{about}: {p.what}", p.fix, p.fatal) for p in found]
        if len({info.flavor for info in infos.values()}) > 1:
            problems.append(
                Problem(
                    "source.dsn mixes MySQL and MariaDB servers: a position read on one "
                    "cannot be resumed on the other",
                    "list the servers of one replication topology only",
                )
            )
        self.server_index = min(infos, default=0)  # captured_tables() asks the first answering
        self.info = infos.get(self.server_index)
        return problems

    async def check(self) -> list[Problem]:
        """What stops or spoils streaming, each with its fix (``cdcd check``); with several
        servers in ``source.dsn``, every one's, each finding naming its server."""
        return await asyncio.to_thread(self._check_every_server)

    def _on_first_serving(self, action: Any, strict: bool = True) -> list[Problem]:
        """Read from the first server of ``source.dsn`` that passes the fatal checks
        (``strict=False``: that answers; a position is asked for before the tables exist)
        and on which ``action()`` raises no ``SourceError`` (``servers.first_serving``);
        its other findings returned."""
        problems: list[Problem] = []

        def try_server(index: int) -> None:
            self.server_index = index
            problems[:] = self._check_sync()
            fatal = [p for p in problems if p.fatal]
            if fatal and strict:
                raise SourceError(f"{fatal[0].what}; fix: {fatal[0].fix}")
            action()

        def skipped(index: int, exc: SourceError) -> None:
            if self.log is not None:
                where = self.servers[index].where
                self.log.warning("skipping a server of source.dsn", server=where, error=str(exc))

        self.server_index = first_serving(
            [server.where for server in self.servers], try_server, skipped
        )
        return problems

    def _captured_tables_sync(self) -> list[tuple[str, str]]:
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                return captured_tables(cursor, self.config)
        finally:
            conn.close()

    async def captured_tables(self) -> list[tuple[str, str]]:
        """The existing tables whose changes are captured, ``(database, table)``."""
        return await asyncio.to_thread(self._captured_tables_sync)

    async def prepare(self, resume: Position | None = None) -> None:
        """Choose the server to read (the first of ``source.dsn`` that can serve), refusing
        to start on a fatal problem (ROW format, FULL image and metadata, grants), or when
        no server can stream on exactly from the stored offset ``resume``
        (``PositionLostError``: GTIDs it never executed, binlogs purged)."""

        def can_resume() -> None:
            if resume is not None:
                self._check_position(resume, "the stored offset")

        problems = await asyncio.to_thread(self._on_first_serving, can_resume)
        if self.log is not None:
            for problem in problems:
                self.log.warning(problem.what, fix=problem.fix)

    @property
    def identity(self) -> str:
        """The stream, whatever server serves it (known once prepared)."""
        return self.info.stream_identity if self.info is not None else ""

    async def check_position(self, position: Position) -> None:
        """Refuse a position to store (``cdcd offsets set``) that the server cannot stream
        from exactly, saying why."""
        await asyncio.to_thread(
            self._on_first_serving, lambda: self._check_position(position, "the position")
        )

    def _check_position(self, position: Position, what: str) -> None:
        assert self.info is not None
        if not isinstance(position, MysqlPosition):
            raise SourceError(f"cannot resume a MySQL stream from a {position.kind} position")
        if position.flavor != self.info.flavor:
            raise SourceError(
                f"{what} is a {position.flavor} position but the server is "
                f"{self.info.flavor}: reset the offsets (cdcd offsets reset)"
            )
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                check_position(cursor, self.info, position, what, self._where)
        finally:
            conn.close()

    # -- where to start --------------------------------------------------------------

    def _start_points(self) -> StartPoints:
        assert self.info is not None
        return StartPoints(
            self.info,
            self.config,
            connect=self._connect,
            check_position=self._check_position,
            where=self._where,
        )

    async def start_position(self) -> MysqlPosition:
        """Where streaming starts without a stored offset (``initial_position``), resolved
        now, so the core can store it before anything is read: a daemon killed before its
        first Kafka transaction then resumes there instead of at a later "latest"."""
        if self.info is None:
            await self.prepare()
        starts = self._start_points()
        return starts.position(await asyncio.to_thread(starts.start_point, None))

    async def earliest_position(self) -> MysqlPosition:
        """The oldest binlog still on the server (``cdcd offsets reset --to earliest``)."""
        await asyncio.to_thread(self._on_first_serving, lambda: None, False)
        starts = self._start_points()
        return starts.position(await asyncio.to_thread(starts.resolve, "earliest"))

    async def latest_position(self) -> MysqlPosition:
        """After everything committed so far (``cdcd offsets reset --to latest``)."""
        await asyncio.to_thread(self._on_first_serving, lambda: None, False)
        starts = self._start_points()
        return starts.position(await asyncio.to_thread(starts.resolve, "latest"))

    # -- streaming -------------------------------------------------------------------

    async def stream(self, resume: Position | None) -> AsyncIterator[list[SourceItem]]:
        """Yield chunks of events and commits, after ``resume`` or from initial_position."""
        if self.info is None:
            await self.prepare()
        start = await asyncio.to_thread(self._start_points().start_point, resume)
        if self.log is not None:
            self.log.info(
                "streaming",
                flavor=self.connector,
                server=self._where,
                server_id=self.server_id,
                gtid_set=start.gtid_set,
                file=start.file,
                pos=start.pos,
                skip_events=start.skip_events,
            )
        self._stop.clear()
        if self.config.reader == "process":
            async for decoded in self._stream_from_process(start):
                yield decoded
            return
        loop = asyncio.get_running_loop()
        chunks: queue.Queue[list[SourceItem] | BaseException] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        wake = asyncio.Event()
        self._thread = threading.Thread(
            target=self._read_thread,
            args=(start, chunks, loop, wake),
            name="cdcd-binlog",
            daemon=True,
        )
        self._thread.start()
        try:
            while True:
                try:
                    chunk = chunks.get_nowait()
                except queue.Empty:
                    wake.clear()
                    if chunks.empty():
                        await wake.wait()
                    continue
                if isinstance(chunk, BaseException):
                    raise chunk
                yield chunk
        finally:
            self._stop.set()

    def _read_thread(
        self,
        start: Start,
        chunks: queue.Queue[list[SourceItem] | BaseException],
        loop: asyncio.AbstractEventLoop,
        wake: asyncio.Event,
    ) -> None:
        def hand_over(item: list[SourceItem] | BaseException) -> None:
            while not self._stop.is_set():
                try:
                    chunks.put(item, timeout=0.2)
                except queue.Full:
                    continue
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    loop.call_soon_threadsafe(wake.set)
                return
            raise Stopped

        with contextlib.suppress(Stopped):
            hand_over(self._read_to_end(start, hand_over))

    def _read_to_end(self, start: Start, hand_over: Any) -> Exception:
        """Read until the stream ends, and return the error that says why and what to fix
        (``Stopped``, raised by ``hand_over`` when nobody takes the items, passes through)."""
        try:
            self._read(start, hand_over)
            return SourceUnavailableError(f"{self._where} ended the binlog stream")  # EOF
        except Stopped:
            raise
        except SourceError as exc:  # DecodeError too
            return exc
        except pymysql.err.OperationalError as exc:
            return self._explain_stream_error(exc)
        except Exception as exc:  # a bug or an undecodable event: stop, never skip
            return SourceError(f"binlog reader failed: {exc.__class__.__name__}: {exc}")

    async def _stream_from_process(self, start: Start) -> AsyncIterator[list[SourceItem]]:
        """Read the binlog in a worker process (``cdcd.sources.mysql.reader``) and yield
        what it decodes: decoding rows is most of the work, and a process does it on the
        second core while this one encodes and writes to Kafka."""
        worker = self._worker = Worker("cdcd.sources.mysql.reader", "the binlog reader process")
        await worker.start(
            (
                PlainConfig.of(self.config),
                self.info,
                self.connector,
                self.server_id,
                self.server_index,
                self.split_after_events,
                start,
                self.encoding,
            )
        )
        try:
            async for chunk in worker.chunks(self._stop.is_set):
                yield chunk
        finally:
            await worker.stop()

    def _explain_stream_error(self, exc: pymysql.err.OperationalError) -> SourceError:
        return stream_error(exc, self._where, self.config)

    def _read(self, start: Start, hand_over: Any) -> None:
        assert self.info is not None
        count_year_as_numeric(self.info.flavor == "mariadb")
        by_gtid = bool(start.gtid_set)
        self._binlog = binlog = bl.BinlogStream(
            self._connect,
            server_id=self.server_id,
            flavor=self.info.flavor,
            gtid_set=start.gtid_set if by_gtid else None,
            file=None if by_gtid else start.file,
            pos=None if by_gtid else start.pos,
            heartbeat_s=self.config.heartbeat_interval_s,
            server_heartbeat_s=min(self.config.heartbeat_interval_s, _HEARTBEAT_SOON_S),
        )
        if self.config.tables is not None:
            self.table_databases.update(db for db, _ in self._captured_tables_sync())
        try:
            binlog.open()
            self.checksum = binlog.checksum
            self.consume(binlog.packets(), start, hand_over)
        finally:
            binlog.close()

    def consume(self, packets: Iterable[bytes], start: Start, hand_over: Any) -> None:
        """Turn binlog event packets into items, handed over in chunks.

        Separate from the connection so that binlog bytes built by tests can be fed in.
        A packet is the dump protocol's payload: the OK byte, the event header, the event.
        """
        assert self.info is not None
        config = self.config
        table_maps = TableMaps(
            config,
            flavor=self.info.flavor,
            version=self.version,
            checksum=self.checksum,
            options=self.encoding,
            table_databases=self.table_databases,
            log=self.log,
        )
        databases = DatabaseFilter(config, self.table_databases)
        decoder = BinlogDecoder(
            start,
            flavor=self.info.flavor,
            server=self.info.identity,
            connector=self.connector,
            split_after_events=self.split_after_events,
            checksum=self.checksum,
            table_maps=table_maps,
            captures_ddl=databases.captures if config.schema_changes else None,
            stop=self._stop,
            hand_over=hand_over,
            heartbeat=self._heartbeat,
        )
        decoder.consume(packets)

    # -- snapshots -------------------------------------------------------------------

    def snapshot_reader(self) -> MysqlSnapshotReader:
        """The reader of the captured tables for snapshots (``cdcd.snapshot``)."""
        return MysqlSnapshotReader(self)

    def heartbeat_soon(self) -> None:
        """Have the stream yield a heartbeat ``Commit`` (``extra=HEARTBEAT``) at the
        binlog's end at the server's next heartbeat, after every transaction committed
        before this call (``cdcd.snapshot.HeartbeatSource``). The server sends one after
        a second without events: an idle server answers within about a second; a busy
        one moves the stream's positions on with its own commits meanwhile."""
        if self._worker is not None:
            self._worker.send(HEARTBEAT_REQUEST)  # the reader process sets its own flag
        else:
            self._heartbeat.set()

    async def ack(self, position: Position) -> None:
        """MySQL keeps no replica state on the server: the offset store holds positions."""
        assert isinstance(position, MysqlPosition)
        self.acked = position

    @property
    def description(self) -> str:
        """The server, as messages name it: ``MariaDB at host:port``."""
        flavor = "MariaDB" if self.connector == "mariadb" else "MySQL"
        return f"{flavor} at {self._where}"

    @property
    def version(self) -> tuple[int, ...]:
        """The server's version as numbers (10.11.6-MariaDB-0+deb12u1: (10, 11, 6))."""
        assert self.info is not None
        match = re.match(r"(\d+)\.(\d+)\.(\d+)", self.info.version)
        return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)

    async def close(self) -> None:
        self._stop.set()
        binlog = self._binlog
        if binlog is not None:
            binlog.close()  # the reader thread blocks in recv(): this wakes it at once
        if self._worker is not None:
            self._worker.terminate()  # the stream then sees the pipe close
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
        if self.log is not None and (binlog is not None or self._worker is not None):
            self.log.info("source closed", position=str(self.acked) if self.acked else None)
