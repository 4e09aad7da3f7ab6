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
import struct
import threading
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql
from pymysqlreplication.row_event import TableMapEvent

from cdcd.errors import DecodeError, SourceError, SourceUnavailableError
from cdcd.events import (
    OP_CREATE,
    OP_DELETE,
    OP_UPDATE,
    ChangeEvent,
    Commit,
    SchemaChange,
    SourceItem,
)
from cdcd.positions import MysqlPosition, Position
from cdcd.selection import PlainConfig, dsn_parts
from cdcd.sources.base import Problem
from cdcd.sources.mysql import binlog as bl
from cdcd.sources.mysql.checks import (
    SYSTEM_SCHEMAS,
    ServerInfo,
    captured_tables,
    run_checks,
    server_info,
)
from cdcd.sources.mysql.errors import connect_error, stream_error
from cdcd.sources.mysql.gtid import MariadbGtidPosition, MysqlGtidSet
from cdcd.sources.mysql.history import check_position
from cdcd.sources.mysql.rows import RowImageDecoder, UnsupportedColumn
from cdcd.sources.mysql.tls import tls_context
from cdcd.sources.mysql.types import DEFAULT_OPTIONS, EncodingOptions, RowConverter
from cdcd.worker import Worker

if TYPE_CHECKING:
    from cdcd.sources.mysql.config import MysqlSourceConfig

_CHUNK_ITEMS = 2000
_YEAR = 13  # FIELD_TYPE.YEAR
_FILE_POS = re.compile(r"^[^:\s]+\.\d+:\d+$")
_QUEUE_CHUNKS = 4  # at most 4 x 2000 items wait for the pipeline
_ROWS_EVENTS = bl.WRITE_ROWS | bl.UPDATE_ROWS | bl.DELETE_ROWS

# Event types the library does not decode and that carry no row change: skipping them is
# safe. Any other undecoded event (compressed transactions, compressed MariaDB events,
# incidents) stops the stream: a position must never move past data not delivered.
_HARMLESS_EVENT_TYPES = frozenset(
    {
        0x03,  # STOP
        0x05,  # INTVAR
        0x0D,  # RAND
        0x0E,  # USER_VAR
        0x0F,  # FORMAT_DESCRIPTION
        0x1B,  # HEARTBEAT
        0x1C,  # IGNORABLE
        0x1D,  # ROWS_QUERY
        0x23,  # PREVIOUS_GTIDS
        0x24,  # TRANSACTION_CONTEXT (group replication)
        0x25,  # VIEW_CHANGE (group replication)
        # XA_PREPARE: the rows of an XA transaction come before it, between XA START and
        # XA END; they are emitted when its XA COMMIT (a query event) is read.
        0x26,
        0x29,  # HEARTBEAT_V2
        0xA0,  # MARIADB_ANNOTATE_ROWS
        0xA1,  # MARIADB_BINLOG_CHECKPOINT
        0xA3,  # MARIADB_GTID_LIST
        0xA4,  # MARIADB_START_ENCRYPTION
    }
)
_UNREADABLE_EVENT_TYPES = {
    0x1A: "an INCIDENT event (the server lost binlog events)",
    0x28: "a compressed transaction (binlog_transaction_compression = ON): set it OFF",
    0xA5: "a compressed MariaDB event (log_bin_compress = ON): set it OFF",
    **{
        event_type: "a compressed MariaDB event (log_bin_compress = ON): set it OFF"
        for event_type in range(0xA6, 0xAC)  # compressed WRITE/UPDATE/DELETE rows, v1 and v2
    },
}


_DDL_TABLE = re.compile(
    r"^\s*(?:CREATE|ALTER|DROP|RENAME|TRUNCATE)\s+(?:TEMPORARY\s+)?(?:TABLE|VIEW)\s+"
    r"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?`?([^`.\s]+)`?\.",
    re.IGNORECASE,
)
_DDL_DATABASE = re.compile(
    r"^\s*(?:CREATE|ALTER|DROP)\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?`?([^`\s;]+)`?",
    re.IGNORECASE,
)


def ddl_database(statement: str, default_schema: bytes | str | None) -> str:
    """The database a DDL statement is about: its qualifier, else the session's default."""
    match = _DDL_TABLE.match(statement) or _DDL_DATABASE.match(statement)
    if match:
        return match.group(1)
    if isinstance(default_schema, bytes):
        return default_schema.decode()
    return default_schema or ""


_LIBRARY_IS_NUMERIC = TableMapEvent._is_numeric_column


def _count_year_as_numeric(year_is_numeric: bool) -> None:
    """The TABLE_MAP's SIGNEDNESS metadata has a bit per numeric column; MariaDB counts
    YEAR among them, MySQL 8 does not. python-mysql-replication 1.0.17 always counts it,
    which shifts every signedness bit after a YEAR column on MySQL (or fails on the
    table map). Make the library count as the server does (one server per process)."""
    if year_is_numeric:
        TableMapEvent._is_numeric_column = staticmethod(_LIBRARY_IS_NUMERIC)
    else:
        TableMapEvent._is_numeric_column = staticmethod(
            lambda column_type: column_type != _YEAR and _LIBRARY_IS_NUMERIC(column_type)
        )


def derive_server_id(name: str) -> int:
    """A replica server id derived from the daemon's name (stable across restarts)."""
    return 100_000 + zlib.crc32(name.encode()) % 4_000_000_000


@dataclass(slots=True)
class _Table:
    schema: str
    name: str
    included: bool
    convert: RowConverter | None = None
    key_columns: tuple[str, ...] = ()
    decoder: RowImageDecoder | None = None  # the fast path; None: the library decodes
    full_bitmap: bytes = b""  # columns-present bitmap of a FULL row image
    map_body: bytes = b""  # the TABLE_MAP event's bytes after its header
    library_table: Any = None  # python-mysql-replication's Table, for its row decoding

    def key(self, row: dict[str, Any]) -> dict[str, Any] | None:
        if not self.key_columns:
            return None
        return {name: row[name] for name in self.key_columns}


@dataclass(slots=True)
class _Start:
    gtid_set: str | None  # resume after these transactions (auto_position), or None
    file: str | None
    pos: int | None
    skip_events: int = 0  # events of the first transaction already written


class _Stopped(Exception):
    pass


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
        options: EncodingOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.config = config
        self.log = log
        self.options = options  # how values are encoded ([encoding])
        # A larger transaction is cut (a Commit inside it, with the count of its events
        # written): Kafka transactions stay short, memory bounded, and a restart resumes
        # inside it.
        self.split_after_events = split_after_events
        self.server_id = config.server_id or derive_server_id(name)
        parts = dsn_parts(config.dsn)
        password = config.password()
        self._connection = {
            "host": parts["host"],
            "port": parts["port"] or 3306,
            "user": parts["user"] or "root",
            "password": password.get_secret_value() if password else (parts["password"] or ""),
        }
        tls = tls_context(config)
        if tls is not None:
            self._connection["ssl"] = tls
        self._where = f"{self._connection['host']}:{self._connection['port']}"
        self.info: ServerInfo | None = None
        self._stop = threading.Event()
        self._binlog: bl.BinlogStream | None = None
        self._worker: Worker | None = None  # source.reader = "process"
        self.checksum = True  # events end with a CRC32 (binlog_checksum = CRC32)
        self._thread: threading.Thread | None = None
        self.acked: MysqlPosition | None = None
        self.table_databases: set[str] = set()  # databases holding captured tables

    # -- connections and checks ------------------------------------------------------

    def _connect(self) -> pymysql.connections.Connection:
        try:
            return pymysql.connect(**self._connection, connect_timeout=10, autocommit=True)
        except pymysql.err.OperationalError as exc:
            raise connect_error(exc, self._where, self.config) from None

    def _check_sync(self) -> list[Problem]:
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                self.info = server_info(cursor)
                if self.info.flavor == "mariadb":
                    self.connector = "mariadb"
                return run_checks(cursor, self.config, self.info)
        finally:
            conn.close()

    async def check(self) -> list[Problem]:
        """What stops or spoils streaming, each with its fix (``cdcd check``)."""
        return await asyncio.to_thread(self._check_sync)

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
        """Refuse to start on a fatal problem (ROW format, FULL image and metadata,
        grants), or when the server cannot stream on exactly from the stored offset
        ``resume`` (``PositionLostError``: GTIDs it never executed, binlogs purged)."""
        problems = await self.check()
        fatal = [p for p in problems if p.fatal]
        if fatal:
            raise SourceError(f"{fatal[0].what}; fix: {fatal[0].fix}")
        if self.log is not None:
            for problem in problems:
                self.log.warning(problem.what, fix=problem.fix)
        if resume is not None:
            await asyncio.to_thread(self._check_position, resume, "the stored offset")

    async def check_position(self, position: Position) -> None:
        """Refuse a position to store (``cdcd offsets set``) that the server cannot stream
        from exactly, saying why."""
        if self.info is None:
            await asyncio.to_thread(self._check_sync)
        await asyncio.to_thread(self._check_position, position, "the position")

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

    def _start_point(self, resume: Position | None) -> _Start:
        assert self.info is not None
        if resume is not None:
            if not isinstance(resume, MysqlPosition):
                raise SourceError(f"cannot resume a MySQL stream from a {resume.kind} position")
            if resume.flavor != self.info.flavor:  # checked in prepare() as well
                raise SourceError(
                    f"the stored position is a {resume.flavor} position but the server is "
                    f"{self.info.flavor}: reset the offsets (cdcd offsets reset)"
                )
            if resume.gtid_set and self.info.gtid_enabled:
                return _Start(resume.gtid_set, None, None, resume.index)
            if resume.gtid_set is not None and resume.file:
                # An empty GTID set: from the beginning of the binlog, by file/pos.
                return _Start(resume.gtid_set, resume.file, resume.pos, resume.index)
            return self._by_file_pos(resume.file, resume.pos, resume.index)
        initial = self.config.initial_position.strip()
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                if initial == "latest":
                    return self._latest(cursor)
                if initial == "earliest":
                    return self._earliest(cursor)
        finally:
            conn.close()
        if _FILE_POS.match(initial):  # mariadb-bin.000001:4 (GTIDs have no ".")
            file, pos = initial.rsplit(":", 1)
            return self._by_file_pos(file, int(pos))
        gtids = self._parse_gtid(initial)
        position = MysqlPosition(self.info.flavor, gtids, "", 4)
        self._check_position(position, "source.initial_position")
        return _Start(gtids, None, None)

    def _by_file_pos(self, file: str, pos: int, skip_events: int = 0) -> _Start:
        """Start at a binlog file/pos, checked first, so that a wrong one is refused
        before it is stored. python-mysql-replication cannot ask MariaDB for a file/pos
        (it always dumps from the oldest binlog), so there the position is turned into
        the GTID position that starts at the same place."""
        assert self.info is not None
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                if self.info.flavor == "mariadb":
                    cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
                    gtid_position = cursor.fetchone()[0]  # NULL: no event starts there
                    found = gtid_position is not None
                else:
                    cursor.execute("SHOW BINARY LOGS")
                    found = file in {row[0] for row in cursor.fetchall()}
        finally:
            conn.close()
        if not found:
            raise SourceError(
                f"{file}:{pos} is not a position in the binlogs of {self._where} (purged, or "
                "never one): fix source.initial_position, or reset the offsets "
                "(cdcd offsets reset)"
            )
        if self.info.flavor != "mariadb":
            return _Start(None, file, pos, skip_events)
        return _Start(str(MariadbGtidPosition.parse(gtid_position)), file, pos, skip_events)

    def _earliest(self, cursor: Any) -> _Start:
        assert self.info is not None
        cursor.execute("SHOW BINARY LOGS")
        first = cursor.fetchone()
        if first is None:
            raise SourceError(f"{self._where} has no binary log: is log_bin on?")
        # From the first file kept, the GTID set grows from empty as transactions come.
        return _Start("" if self.info.gtid_enabled else None, first[0], 4)

    def _parse_gtid(self, text: str) -> str:
        assert self.info is not None
        try:
            if self.info.flavor == "mariadb":
                return str(MariadbGtidPosition.parse(text))
            return str(MysqlGtidSet.parse(text))
        except ValueError as exc:
            raise SourceError(f"source.initial_position: {exc}") from None

    def _latest(self, cursor: Any) -> _Start:
        assert self.info is not None
        try:
            cursor.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError:
            cursor.execute("SHOW BINARY LOG STATUS")  # MySQL 8.4 renamed it
        row = cursor.fetchone()
        if row is None:
            raise SourceError(f"{self._where} has no binary log position: is log_bin on?")
        file, pos = row[0], int(row[1])
        if not self.info.gtid_enabled:
            return _Start(None, file, pos)
        if self.info.flavor == "mariadb":
            cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos")
            return _Start(str(MariadbGtidPosition.parse(cursor.fetchone()[0] or "")), file, pos)
        return _Start(str(MysqlGtidSet.parse(row[4] or "")), file, pos)

    async def start_position(self) -> MysqlPosition:
        """Where streaming starts without a stored offset (``initial_position``), resolved
        now, so the core can store it before anything is read: a daemon killed before its
        first Kafka transaction then resumes there instead of at a later "latest"."""
        if self.info is None:
            await self.prepare()
        start = await asyncio.to_thread(self._start_point, None)
        return self._position(start)

    async def earliest_position(self) -> MysqlPosition:
        """The oldest binlog still on the server (``cdcd offsets reset --to earliest``)."""
        await asyncio.to_thread(self._check_sync)
        return self._position(await asyncio.to_thread(self._resolve, "earliest"))

    async def latest_position(self) -> MysqlPosition:
        """After everything committed so far (``cdcd offsets reset --to latest``)."""
        await asyncio.to_thread(self._check_sync)
        return self._position(await asyncio.to_thread(self._resolve, "latest"))

    def _resolve(self, where: str) -> _Start:
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                if where == "latest":
                    return self._latest(cursor)
                return self._earliest(cursor)
        finally:
            conn.close()

    def _position(self, start: _Start) -> MysqlPosition:
        assert self.info is not None
        return MysqlPosition(
            self.info.flavor,
            start.gtid_set,
            start.file or "",
            start.pos or 0,
            start.skip_events,
            self.info.identity,
        )

    # -- streaming -------------------------------------------------------------------

    async def stream(self, resume: Position | None) -> AsyncIterator[list[SourceItem]]:
        """Yield chunks of events and commits, after ``resume`` or from initial_position."""
        if self.info is None:
            await self.prepare()
        start = await asyncio.to_thread(self._start_point, resume)
        if self.log is not None:
            self.log.info(
                "streaming",
                flavor=self.connector,
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
        start: _Start,
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
            raise _Stopped

        with contextlib.suppress(_Stopped):
            hand_over(self._read_to_end(start, hand_over))

    def _read_to_end(self, start: _Start, hand_over: Any) -> Exception:
        """Read until the stream ends, and return the error that says why and what to fix
        (``_Stopped``, raised by ``hand_over`` when nobody takes the items, passes through)."""
        try:
            self._read(start, hand_over)
            return SourceUnavailableError(f"{self._where} ended the binlog stream")  # EOF
        except _Stopped:
            raise
        except SourceError as exc:  # DecodeError too
            return exc
        except pymysql.err.OperationalError as exc:
            return self._explain_stream_error(exc)
        except Exception as exc:  # a bug or an undecodable event: stop, never skip
            return SourceError(f"binlog reader failed: {exc.__class__.__name__}: {exc}")

    async def _stream_from_process(self, start: _Start) -> AsyncIterator[list[SourceItem]]:
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
                self.split_after_events,
                start,
                self.options,
            )
        )
        worker.close_input()
        try:
            async for chunk in worker.chunks(self._stop.is_set):
                yield chunk
        finally:
            await worker.stop()

    def _explain_stream_error(self, exc: pymysql.err.OperationalError) -> SourceError:
        return stream_error(exc, self._where, self.config)

    def _read(self, start: _Start, hand_over: Any) -> None:
        assert self.info is not None
        _count_year_as_numeric(self.info.flavor == "mariadb")
        by_gtid = bool(start.gtid_set)
        self._binlog = binlog = bl.BinlogStream(
            self._connect,
            server_id=self.server_id,
            flavor=self.info.flavor,
            gtid_set=start.gtid_set if by_gtid else None,
            file=None if by_gtid else start.file,
            pos=None if by_gtid else start.pos,
            heartbeat_s=self.config.heartbeat_interval_s,
        )
        if self.config.tables is not None:
            self.table_databases.update(db for db, _ in self._captured_tables_sync())
        try:
            binlog.open()
            self.checksum = binlog.checksum
            self.consume(binlog.packets(), start, hand_over)
        finally:
            binlog.close()

    def consume(self, packets: Iterable[bytes], start: _Start, hand_over: Any) -> None:
        """Turn binlog event packets into items, handed over in chunks.

        Separate from the connection so that binlog bytes built by tests can be fed in.
        A packet is the dump protocol's payload: the OK byte, the event header, the event.
        """
        assert self.info is not None
        flavor = self.info.flavor
        server = self.info.identity
        gtids: MysqlGtidSet | MariadbGtidPosition | None = None
        if start.gtid_set is not None:
            gtids = (
                MariadbGtidPosition.parse(start.gtid_set)
                if flavor == "mariadb"
                else MysqlGtidSet.parse(start.gtid_set)
            )
        file = start.file or ""
        tables: dict[int, _Table] = {}
        items: list[SourceItem] = []
        gtid: str | None = None
        thread: int | None = None
        in_transaction = False
        skip = start.skip_events
        tx_events = 0
        connector = self.connector
        crc = 4 if self.checksum else 0
        split = self.split_after_events
        tx_start: int | None = None  # where the open transaction's first event starts
        unpack_header = bl.HEADER.unpack_from
        sids: dict[bytes, str] = {}
        stop = self._stop

        def commit(next_pos: int, ts: int) -> None:
            """The transaction's Commit, and everything so far handed over."""
            nonlocal gtids, in_transaction, tx_events, skip, tx_start, items
            if gtid is not None and gtids is not None:
                gtids = (
                    gtids.advance_gtid(gtid)
                    if isinstance(gtids, MariadbGtidPosition)
                    else gtids.add_gtid(gtid)
                )
            position = MysqlPosition(
                flavor, str(gtids) if gtids is not None else None, file, next_pos, 0, server
            )
            items.append(Commit(position, txid=gtid, ts_ms=ts * 1000, event_count=tx_events))
            in_transaction, tx_events, skip = False, 0, 0
            tx_start = None
            hand_over(items)
            items = []

        for packet in packets:
            kind = packet[5]
            if kind in _ROWS_EVENTS:
                table_id = bl.table_id(packet)
                table = tables.get(table_id)
                if table is None:
                    ts, _, _, size, log_pos, _ = unpack_header(packet, 1)
                    raise DecodeError(
                        f"a rows event at {file}:{log_pos - size} names table id {table_id}, "
                        "which no TABLE_MAP event described; cdcd stops rather than skip it"
                    )
                if not table.included:
                    continue
                ts, _, server_id, size, log_pos, _ = unpack_header(packet, 1)
                source = {
                    "connector": connector,
                    "ts_ms": ts * 1000,
                    "ts_us": ts * 1_000_000,
                    "ts_ns": ts * 1_000_000_000,
                    "db": table.schema,
                    "sequence": None,
                    "table": table.name,
                    "server_id": server_id,
                    "gtid": gtid,
                    "file": file,
                    "pos": log_pos - size,
                    "row": 0,
                    "thread": thread,
                    "query": None,
                }
                images = self._row_images(kind, table, packet, 1 + size - crc)
                for row_index, (before, after) in enumerate(images):
                    row_source = source if row_index == 0 else {**source, "row": row_index}
                    for change in self._changes(table, before, after, row_source, gtid):
                        tx_events += 1
                        if skip >= tx_events:
                            continue  # already in Kafka before a restart
                        items.append(change)
                        if tx_events % split == 0 and tx_start is not None:
                            # Resume at the transaction's start, its first events skipped.
                            cut = MysqlPosition(
                                flavor,
                                str(gtids) if gtids is not None else None,
                                file,
                                tx_start,
                                tx_events,
                                server,
                            )
                            items.append(
                                Commit(cut, txid=gtid, ts_ms=ts * 1000, event_count=tx_events)
                            )
                if len(items) >= _CHUNK_ITEMS:
                    hand_over(items)
                    items = []
            elif kind == bl.TABLE_MAP:
                table_id = bl.table_id(packet)
                _, _, _, size, _, _ = unpack_header(packet, 1)
                body = packet[bl.BODY_AT : 1 + size - crc]
                known = tables.get(table_id)
                if known is None or known.map_body != body:
                    # A table id names one table until the server reuses it (after a
                    # restart or an ALTER): the map's bytes, not only its id, decide.
                    tables[table_id] = self._table(packet, body)
            elif kind == bl.XID:
                ts, _, _, _, log_pos, _ = unpack_header(packet, 1)
                commit(log_pos, ts)
            elif kind == bl.GTID:
                _, _, _, size, log_pos, _ = unpack_header(packet, 1)
                tx_start = log_pos - size
                sid = packet[21:37]
                text = sids.get(sid)
                if text is None:
                    text = sids[sid] = str(uuid.UUID(bytes=sid))
                gtid = f"{text}:{int.from_bytes(packet[37:45], 'little')}"
                thread = None
            elif kind == bl.MARIADB_GTID or kind == bl.ANONYMOUS_GTID:
                _, _, server_id, size, log_pos, _ = unpack_header(packet, 1)
                tx_start = log_pos - size
                if kind == bl.ANONYMOUS_GTID:  # MySQL without GTIDs: a transaction starts
                    gtid, thread = None, None
                    continue
                seq, domain, flags = struct.unpack_from("<QIB", packet, 20)
                gtid = f"{domain}-{server_id}-{seq}"
                thread = None
                # MariaDB writes no BEGIN: the GTID event opens a transaction unless it
                # is flagged standalone (a DDL statement, committed by itself).
                in_transaction = not (flags & 1)
            elif kind == bl.QUERY:
                ts, _, server_id, size, log_pos, _ = unpack_header(packet, 1)
                proxy_id, _, db_length, _, status_length = struct.unpack_from("<IIBHH", packet, 20)
                at = 33 + status_length
                schema = packet[at : at + db_length].decode("utf-8", "replace")
                statement = (
                    packet[at + db_length + 1 : 1 + size - crc].decode("utf-8", "replace").strip()
                )
                upper = statement[:16].upper()
                if upper == "BEGIN" or upper.startswith("XA START"):
                    in_transaction = True
                    thread = proxy_id
                    if tx_start is None:
                        tx_start = log_pos - size
                elif upper in ("COMMIT", "ROLLBACK") or upper.startswith("XA COMMIT"):
                    commit(log_pos, ts)
                elif not in_transaction:
                    # DDL: committed by itself; row events after it have the new shape.
                    database = ddl_database(statement, schema)
                    if self.config.schema_changes and self._captures_database(database):
                        items.append(
                            SchemaChange(
                                database or "",
                                statement,
                                {
                                    "connector": connector,
                                    "ts_ms": ts * 1000,
                                    "db": database,
                                    "table": None,
                                    "server_id": server_id,
                                    "gtid": gtid,
                                    "file": file,
                                    "pos": log_pos - size,
                                    "row": 0,
                                    "thread": proxy_id,
                                    "query": None,
                                },
                            )
                        )
                    commit(log_pos, ts)
            elif kind == bl.ROTATE:
                _, _, _, size, _, _ = unpack_header(packet, 1)
                file = packet[28 : 1 + size - crc].decode()
            elif kind == bl.HEARTBEAT or kind == bl.HEARTBEAT_V2:
                if items:
                    hand_over(items)
                    items = []
            elif kind not in _HARMLESS_EVENT_TYPES:
                _, _, _, size, log_pos, _ = unpack_header(packet, 1)
                what = _UNREADABLE_EVENT_TYPES.get(kind, f"an event of unknown type 0x{kind:02x}")
                raise DecodeError(
                    f"the binlog holds {what} at {file}:{log_pos - size}; "
                    "cdcd stops rather than skip it"
                )
            if stop.is_set():
                raise _Stopped
        if items:
            hand_over(items)

    def _captures_database(self, database: str) -> bool:
        """Whether DDL of ``database`` is published: the database filters let it through
        and, with a table include list, a table of it is captured (known from the catalog
        at stream start and from the table maps since)."""
        if database in SYSTEM_SCHEMAS or not self.config.selection.includes_database(database):
            return False
        return self.config.tables is None or database in self.table_databases

    def _table(self, packet: bytes, body: bytes) -> _Table:
        schema, name = bl.table_map_names(packet)
        if not self.config.includes(schema, name):
            return _Table(schema, name, included=False, map_body=body)
        self.table_databases.add(schema)
        assert self.info is not None
        event = bl.library_event(
            packet, flavor=self.info.flavor, version=self.version, checksum=self.checksum
        )
        try:
            convert = RowConverter.from_table_map(event, self.options)
        except ValueError as exc:
            raise SourceError(f"table {schema}.{name}: {exc}") from None
        key_columns = tuple(c.name for c in event.columns if getattr(c, "is_primary", False))
        try:
            decoder: RowImageDecoder | None = RowImageDecoder(
                event, self.info.flavor, self.options
            )
        except UnsupportedColumn as exc:
            decoder = None
            if self.log is not None:
                self.log.info("slow row decoding", table=f"{schema}.{name}", reason=str(exc))
        count = len(event.columns)
        full = ((1 << count) - 1).to_bytes((count + 7) // 8, "little")
        return _Table(
            schema, name, True, convert, key_columns, decoder, full, body, event.get_table()
        )

    def _row_images(
        self, kind: int, table: _Table, packet: bytes, end: int
    ) -> list[tuple[Any, Any]]:
        """(before, after) of every row of a rows event, values encoded as Debezium's."""
        decoder = table.decoder
        present, present_after, body = bl.rows_body(packet, kind, end)
        if decoder is not None and present == table.full_bitmap == present_after:
            if kind in bl.WRITE_ROWS:
                return [(None, after) for after in decoder.images(body)]
            if kind in bl.DELETE_ROWS:
                return [(before, None) for before in decoder.images(body)]
            return decoder.image_pairs(body)
        # A column type the fast decoder does not handle, or a partial row image: the
        # library decodes the event.
        assert self.info is not None and table.convert is not None
        table_id = bl.table_id(packet)
        event = bl.library_event(
            packet,
            flavor=self.info.flavor,
            version=self.version,
            checksum=self.checksum,
            table_map={table_id: table.library_table},
        )
        convert = table.convert
        if kind in bl.WRITE_ROWS:
            return [(None, convert(row["values"], row.get("none_sources"))) for row in event.rows]
        if kind in bl.DELETE_ROWS:
            return [(convert(row["values"], row.get("none_sources")), None) for row in event.rows]
        return [
            (
                convert(row["before_values"], row.get("before_none_sources")),
                convert(row["after_values"], row.get("after_none_sources")),
            )
            for row in event.rows
        ]

    @staticmethod
    def _changes(
        table: _Table,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        source: dict[str, Any],
        gtid: str | None,
    ) -> list[ChangeEvent]:
        schema, name = table.schema, table.name
        if before is None:
            assert after is not None
            return [
                ChangeEvent(OP_CREATE, schema, name, table.key(after), None, after, source, gtid)
            ]
        if after is None:
            return [
                ChangeEvent(OP_DELETE, schema, name, table.key(before), before, None, source, gtid)
            ]
        key, old_key = table.key(after), table.key(before)
        if old_key != key:
            # Like Debezium: a primary-key change is a delete of the old key (and its
            # tombstone) followed by a create of the new one.
            return [
                ChangeEvent(OP_DELETE, schema, name, old_key, before, None, source, gtid),
                ChangeEvent(OP_CREATE, schema, name, key, None, after, source, gtid),
            ]
        return [ChangeEvent(OP_UPDATE, schema, name, key, before, after, source, gtid)]

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
