"""Streams a PostgreSQL logical replication slot (pgoutput) with psycopg 3.

The replication connection is read at the libpq level, as DESIGN.md describes:
``get_copy_data`` without blocking, waiting on the socket in the event loop, and
standby status updates written with ``put_copy_data``. The slot's flush position
moves only when the pipeline acknowledges a commit (the ack rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq, sql

from cdcd.encoding import DecimalMode
from cdcd.errors import DecodeError, PositionLostError, SourceError, SourceUnavailableError
from cdcd.events import (
    HEARTBEAT,
    OP_CREATE,
    OP_DELETE,
    OP_TRUNCATE,
    OP_UPDATE,
    ChangeEvent,
    Commit,
    SourceItem,
)
from cdcd.positions import PgPosition, Position, lsn_to_str
from cdcd.selection import PlainConfig, dsn_parts
from cdcd.sources.base import Problem
from cdcd.sources.postgres import pgoutput
from cdcd.sources.postgres.checks import captured_tables, run_checks
from cdcd.sources.postgres.types import make_converter
from cdcd.worker import Worker

if TYPE_CHECKING:
    from cdcd.sources.postgres.config import PostgresSourceConfig

# Debezium's placeholder for a TOASTed value that an UPDATE left unchanged and the
# server therefore did not send (unavailable.value.placeholder).
UNAVAILABLE_VALUE = "__debezium_unavailable_value"

_PG_EPOCH_US = 946_684_800 * 1_000_000
_XLOG_HEADER = struct.Struct(">QQQ")  # after the 'w': start LSN, end LSN, server clock
_KEEPALIVE = struct.Struct(">QQB")  # after the 'k': server WAL end, clock, reply requested
_STATUS = struct.Struct(">cQQQqB")
_CHUNK_ITEMS = 2000  # items handed to the pipeline at once, whatever the transaction size
SLOT_BUSY_WAIT_S = 15.0
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


# SQLSTATEs of a connection that was cut, or refused for now: the same request on a new
# connection may succeed (admin_shutdown: pg_terminate_backend or a fast shutdown;
# crash_shutdown; cannot_connect_now: starting up; too_many_connections).
_LOST_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _lost_sqlstate(sqlstate: str | None) -> bool:
    if not sqlstate:
        return False
    return sqlstate in _LOST_SQLSTATES or sqlstate.startswith("08")  # 08: connection exception


# What libpq says of a connection that was cut or refused for now (it gives connection
# errors no SQLSTATE): the server going away, restarting, or full.
_LOST_SIGNS = (
    "Connection refused",
    "server closed the connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "timeout expired",
    "Connection reset",
    "No route to host",
    "Network is unreachable",
    "SSL connection has been closed unexpectedly",
    "consuming input failed",
    "receiving copy data failed",
    "sending copy data failed",
    "the connection is lost",
    "the connection is closed",
)


def connection_lost(exc: psycopg.Error) -> bool:
    """Whether ``exc`` is a lost or refused connection (which may pass), not a refusal
    that needs a fix (authentication, pg_hba.conf, a missing database or privilege)."""
    if exc.sqlstate is not None:
        return _lost_sqlstate(exc.sqlstate)
    text = str(exc)
    return any(sign in text for sign in _LOST_SIGNS)


def _other_value(convert: Callable[[str], Any], value: Any) -> Any:
    """A column value that is not text: NULL, an unchanged TOASTed value, or binary."""
    if value is None:
        return None
    if value is pgoutput.UNCHANGED_TOAST:
        return UNAVAILABLE_VALUE
    if type(value) is bytes:
        return convert(value.decode())
    return convert(value)


def _compile_row(
    columns: tuple[str, ...], converters: tuple[Callable[[str], Any], ...]
) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """A row converter written for one relation: no loop, and no call for text columns
    (the converter ``str``). A value count that does not match raises ValueError, as a
    value its converter refuses does. Column names are passed in as values, never
    written into the source."""
    if not columns:
        return lambda values: {} if not values else _too_many(values)
    bound: dict[str, Any] = {"_other": _other_value}
    entries = []
    for i, convert in enumerate(converters):
        bound[f"n{i}"], bound[f"c{i}"] = columns[i], convert
        direct = f"v{i}" if convert is str else f"c{i}(v{i})"
        entries.append(f"n{i}: {direct} if type(v{i}) is str else _other(c{i}, v{i})")
    names = ", ".join(f"v{i}" for i in range(len(columns)))
    source = f"def row(values):\n    ({names},) = values\n    return {{{', '.join(entries)}}}\n"
    exec(compile(source, f"<row of {len(columns)} columns>", "exec"), bound)
    row: Callable[[tuple[Any, ...]], dict[str, Any]] = bound["row"]
    return row


def _too_many(values: tuple[Any, ...]) -> dict[str, Any]:
    raise ValueError(f"{len(values)} values for a relation without columns")


def default_object_name(daemon_name: str) -> str:
    """Slot and publication name derived from the daemon's name: ``cdcd_<name>``."""
    return re.sub(r"[^a-z0-9_]", "_", f"cdcd_{daemon_name}".lower())[:63]


@dataclass(slots=True)
class _Table:
    namespace: str
    name: str
    included: bool
    columns: tuple[str, ...]
    converters: tuple[Callable[[str], Any], ...]
    key_columns: tuple[str, ...]  # the primary key; empty when the table has none
    _row: Callable[[tuple[Any, ...]], dict[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._row = _compile_row(self.columns, self.converters)

    def row(self, values: tuple[Any, ...], lsn: int) -> dict[str, Any]:
        """The row of one tuple's values, each converted for its column; ``lsn``, the
        change's, names the position in an error."""
        try:
            return self._row(values)
        except (ValueError, DecodeError):
            return self._row_checked(values, lsn)  # raises, naming the column

    def _row_checked(self, values: tuple[Any, ...], lsn: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        name = ""
        try:
            for name, convert, value in zip(self.columns, self.converters, values, strict=True):
                out[name] = _other_value(convert, value)
        except (ValueError, DecodeError) as exc:
            # Stop rather than skip or mangle a value (the position does not move on).
            where = f"{self.namespace}.{self.name}.{name}" if name else f"{self.namespace}.{self.name}"
            raise DecodeError(f"cannot encode {where} at LSN {lsn_to_str(lsn)}: {exc}") from None
        return out

    def key(self, row: dict[str, Any]) -> dict[str, Any] | None:
        if not self.key_columns:
            return None
        return {name: row[name] for name in self.key_columns}


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
        decimal_mode: DecimalMode = "precise",
    ) -> None:
        self.config = config
        self.log = log
        self.split_after_events = split_after_events
        self.decimal_mode: DecimalMode = decimal_mode  # [encoding] decimal_handling_mode
        self.name = name
        # "process": the stream is read and decoded in a worker process (cdcd.worker);
        # "inline": here, in the daemon's event loop (and in that worker itself).
        self.reader = reader or config.reader
        self._log_settings = log_settings  # (level, format) for the worker's own logging
        self._worker: Worker | None = None
        self._stopping = False
        self.slot = config.slot_name or default_object_name(name)
        self.publication = config.publication_name or default_object_name(name)
        for key, value in (("slot_name", self.slot), ("publication_name", self.publication)):
            if not _SLOT_NAME.match(value):
                raise SourceError(
                    f"source.{key}: {value!r} may hold only lowercase letters, digits and '_'"
                )
        parts = dsn_parts(config.dsn)
        self.database: str = parts["database"]
        self._where = f"{parts['host']}:{parts['port'] or 5432}"
        self._tables: dict[int, _Table] = {}
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
        self._txid = ""  # the transaction's id in transaction metadata: "<xid>:<commit LSN>"
        self._commit_ts_us = 0
        self._tx_events = 0  # change events of the open transaction so far
        self._skip = 0  # events of the first transaction already in Kafka (a cut position)
        self._last_heartbeat = 0.0  # monotonic time of the last heartbeat commit

    # -- connections ---------------------------------------------------------------

    async def _connect(self, replication: bool = False) -> psycopg.AsyncConnection[Any]:
        password = self.config.password()
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": 10,
            "application_name": f"cdcd-{self.slot}",
            "options": "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3 "
            "-c bytea_output=hex -c lc_monetary=C",
        }
        if password is not None:
            kwargs["password"] = password.get_secret_value()
        if replication:
            kwargs["replication"] = "database"
        try:
            return await psycopg.AsyncConnection.connect(self.config.dsn, **kwargs)
        except psycopg.OperationalError as exc:
            message = self._explain_connect_error(exc, replication)
            if connection_lost(exc):
                raise SourceUnavailableError(message) from None
            raise SourceError(message) from None

    def _explain_connect_error(self, exc: Exception, replication: bool) -> str:
        # libpq: a line per address tried, each followed by indented hint lines; the last
        # attempt's line holds the reason ("Connection refused"), its hint follows it.
        lines = [line for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
        starts = [i for i, line in enumerate(lines) if not line[:1].isspace()] or [0]
        text = "; ".join(line.strip() for line in lines[starts[-1] :])
        text = re.sub(r"^connection failed: ", "", text)
        where = f"cannot connect to PostgreSQL at {self._where}"
        if "pg_hba.conf" in text and replication:
            return (
                f"{where} for replication: {text}; allow it in pg_hba.conf "
                "('host replication <user> <address> scram-sha-256') and reload"
            )
        if "password authentication failed" in text or "no password supplied" in text:
            return f"{where}: {text}; set the password with source.password_env or source.password_file"
        if "must be superuser or replication role" in text or "permission denied to start WAL sender" in text:
            return f"{where}: {text}; grant it with: ALTER ROLE <user> REPLICATION"
        return f"{where}: {text} (check source.dsn)"

    # -- checks and set-up ----------------------------------------------------------

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
        """Refuse to start on a fatal problem; create the publication if allowed; and
        either create the slot (a first start: no stored offset) or check that the slot
        can continue exactly from ``resume`` (``PositionLostError`` if not)."""
        conn = await self._connect()
        try:
            problems = await run_checks(conn, self.config, self.slot, self.publication, setup=True)
            fatal = [p for p in problems if p.fatal]
            if fatal:
                raise SourceError(f"{fatal[0].what}; fix: {fatal[0].fix}")
            for problem in problems:
                if self.log is not None:
                    self.log.warning(problem.what, fix=problem.fix)
            await self._ensure_publication(conn)
            if resume is None:
                await self._ensure_slot(conn)
            else:
                await self._check_resumable(conn, self._pg_position(resume))
        finally:
            await conn.close()

    @staticmethod
    def _pg_position(position: Position) -> PgPosition:
        if not isinstance(position, PgPosition):
            raise SourceError(f"cannot resume a PostgreSQL stream from a {position.kind} position")
        return position

    async def _slot_and_wal_end(self, conn: psycopg.AsyncConnection[Any]) -> tuple[int | None, int]:
        """(the slot's confirmed position, None when there is no slot; the WAL's end)."""
        cur = await conn.execute(
            "SELECT (SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots "
            "WHERE slot_name = %s), pg_current_wal_lsn() - '0/0'",
            (self.slot,),
        )
        row = await cur.fetchone()
        assert row is not None
        return (None if row[0] is None else int(row[0])), int(row[1])

    async def _check_resumable(
        self,
        conn: psycopg.AsyncConnection[Any],
        position: PgPosition,
        what: str = "the stored offset",
    ) -> None:
        """The slot can give every change after ``position``, or ``PositionLostError``.

        The slot's confirmed position only moves once Kafka holds everything before it
        (changes, or an offset record written on a keepalive): a slot past the stored
        offset was dropped and created again, or moved by someone else, and the changes
        in between may be gone. cdcd never creates a slot over a stored offset."""
        confirmed, wal_end = await self._slot_and_wal_end(conn)
        at = lsn_to_str(position.commit_lsn)
        if position.commit_lsn > wal_end:
            raise PositionLostError(
                f"{what} {at} is past the end of the WAL of PostgreSQL at {self._where} "
                f"({lsn_to_str(wal_end)}): this server never had it (another server, or a "
                "restored backup?); the positions it has: cdcd offsets reset --to earliest"
            )
        if confirmed is None:
            raise PositionLostError(
                f"replication slot {self.slot!r} does not exist, so {what} ({at}) cannot be "
                f"streamed from: the changes committed after {at} up to now "
                f"({lsn_to_str(wal_end)}) cannot be read any more, and cdcd does not create "
                "a new slot over a stored position. To stream on from now knowingly (a new "
                "slot; the changes in between are not in Kafka): cdcd offsets reset --to latest"
            )
        if confirmed > position.commit_lsn:
            raise PositionLostError(
                f"{what} {at} is before replication slot {self.slot!r}'s confirmed position "
                f"{lsn_to_str(confirmed)}: the slot cannot go back, and the changes between "
                "them may not be in Kafka (the slot was dropped and created again, or another "
                "consumer advanced it). To stream on from the slot's position knowingly: "
                "cdcd offsets reset --to earliest"
            )

    async def check_position(self, position: Position) -> None:
        """Refuse a position to store (``cdcd offsets set``) that the slot cannot stream
        from exactly, saying why."""
        conn = await self._connect()
        try:
            await self._check_resumable(conn, self._pg_position(position), "the position")
        finally:
            await conn.close()

    async def prepare_reset(self, position: Position) -> PgPosition:
        """Before ``cdcd offsets reset`` stores ``position``: a missing slot is created
        (when allowed), and the position to store is then the later of ``position`` and
        where the slot starts (nothing before it can be streamed)."""
        wanted = self._pg_position(position)
        conn = await self._connect()
        try:
            confirmed, _ = await self._slot_and_wal_end(conn)
            if confirmed is not None:
                return wanted
            if not self.config.create_slot:
                raise SourceError(
                    f"replication slot {self.slot!r} does not exist and source.create_slot is "
                    f"false: create it (SELECT pg_create_logical_replication_slot('{self.slot}', "
                    "'pgoutput')) or set source.create_slot = true"
                )
            await self._ensure_slot(conn)
            confirmed, _ = await self._slot_and_wal_end(conn)
            assert confirmed is not None
            return wanted if wanted.commit_lsn >= confirmed else PgPosition(confirmed)
        finally:
            await conn.close()

    async def _ensure_publication(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,))
        if await cur.fetchone():
            return
        if self.config.tables is None:
            stmt = sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(self.publication))
        else:
            # The tables the include list selects now, as Debezium's
            # publication.autocreate.mode=filtered; the checks refused an empty selection.
            tables = sql.SQL(", ").join(
                sql.Identifier(schema, table)
                for schema, table in await captured_tables(conn, self.config)
            )
            stmt = sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(self.publication), tables
            )
        try:
            await conn.execute(stmt)
        except psycopg.Error as exc:
            raise SourceError(
                f"cannot create publication {self.publication!r}: {exc.diag.message_primary or exc}; "
                "create it as a superuser or the tables' owner "
                f"(CREATE PUBLICATION {self.publication} FOR ALL TABLES / FOR TABLE ...), "
                "or list the tables in source.tables"
            ) from None
        if self.log is not None:
            self.log.info("publication created", publication=self.publication)

    async def _ensure_slot(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute(
            "SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
        )
        if await cur.fetchone():
            return
        try:
            await conn.execute(
                "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,)
            )
        except psycopg.Error as exc:
            raise SourceError(
                f"cannot create replication slot {self.slot!r}: {exc.diag.message_primary or exc}; "
                "grant the REPLICATION attribute (ALTER ROLE <user> REPLICATION) "
                "or create the slot: SELECT pg_create_logical_replication_slot("
                f"'{self.slot}', 'pgoutput')"
            ) from None
        if self.log is not None:
            self.log.info("replication slot created", slot=self.slot)

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
        confirmed = await self._slot_confirmed_lsn(resume)
        start = self._start_lsn(resume, confirmed)
        self._last_commit_lsn = start  # the next transaction's predecessor, for cut positions
        self._last_commit_lsn_text = f'"{start}"'
        self._acked_lsn = max(self._acked_lsn, start, confirmed)
        await self._start_replication(start)
        if self.log is not None:
            self.log.info(
                "streaming",
                slot=self.slot,
                publication=self.publication,
                start=lsn_to_str(start),
                skip_events=self._skip,
            )
        feedback = asyncio.create_task(self._feedback_loop(), name="cdcd-pg-feedback")
        try:
            async for chunk in self._read():
                yield chunk
        except psycopg.OperationalError as exc:
            # The metadata connection (primary keys of a new relation) or a status update.
            if connection_lost(exc):
                raise SourceUnavailableError(
                    f"lost the connection to PostgreSQL at {self._where}: {exc}"
                ) from None
            raise SourceError(f"PostgreSQL at {self._where}: {exc}") from None
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
        await worker.start(
            (
                PlainConfig.of(self.config),
                self.name,
                self.split_after_events,
                resume,
                self._log_settings,
                self.decimal_mode,
            )
        )
        try:
            async for chunk in worker.chunks(lambda: self._stopping):
                yield chunk
        finally:
            # Nothing more is read; the worker stays to pass on the acknowledgements of
            # what is being written, until close().
            worker.stop_reading()

    async def _slot_confirmed_lsn(self, resume: PgPosition | None) -> int:
        assert self._meta is not None
        if resume is not None:
            await self._check_resumable(self._meta, resume)  # dropped since prepare()?
        cur = await self._meta.execute(
            "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = %s",
            (self.slot,),
        )
        row = await cur.fetchone()
        if row is None:
            raise SourceError(
                f"replication slot {self.slot!r} does not exist; let cdcd create it "
                "(source.create_slot = true) or create it: SELECT "
                f"pg_create_logical_replication_slot('{self.slot}', 'pgoutput')"
            )
        return int(row[0] or 0)

    def _start_lsn(self, resume: PgPosition | None, confirmed: int) -> int:
        """Where to start: the stored offset, else the slot's confirmed position.

        PostgreSQL sends every transaction whose commit record starts at or after the
        requested LSN, but never from before the slot's confirmed position: a slot behind
        the stored offset (Kafka committed, the server not yet told) is fast-forwarded by
        asking for the offset's LSN; a slot ahead of it has lost changes (the slot only
        moves past what Kafka holds: ``_check_resumable``). A position that cuts a transaction
        resumes in it: PostgreSQL sends it whole again and its first ``index`` events,
        already in Kafka, are skipped.
        """
        self._skip = 0
        if resume is None:
            return confirmed
        self._skip = resume.index
        if resume.commit_lsn > confirmed and self.log is not None:
            self.log.info(
                "fast-forwarding the slot past what Kafka already holds",
                slot=self.slot,
                slot_confirmed=lsn_to_str(confirmed),
                stored_offset=str(resume),
            )
        return resume.commit_lsn

    async def _start_replication(self, start: int) -> None:
        assert self._repl is not None
        command = (
            f"START_REPLICATION SLOT {self.slot} LOGICAL {lsn_to_str(start)} "
            f"(proto_version '1', publication_names '{self.publication}', messages 'true')"
        )
        # A daemon killed a moment ago may still hold the slot until its walsender notices.
        deadline = time.monotonic() + SLOT_BUSY_WAIT_S
        while True:
            try:
                await self._repl.execute(command)
                return
            except psycopg.Error as exc:
                message = exc.diag.message_primary or str(exc)
                if "is active for PID" in message:
                    if time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                        continue
                    raise SourceError(
                        f"replication slot {self.slot!r} is in use: {message}; "
                        "is another cdcd running with the same name?"
                    ) from None
                raise SourceError(
                    f"cannot start replication from slot {self.slot!r}: {message}"
                ) from None

    async def _read(self) -> AsyncIterator[list[SourceItem]]:
        assert self._repl is not None
        pgconn = self._repl.pgconn
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(pgconn.socket, readable.set)
        decode = pgoutput.decode
        items: list[SourceItem] = []
        try:
            while True:
                try:
                    size, data = pgconn.get_copy_data(1)
                except psycopg.OperationalError as exc:
                    raise self._replication_lost(exc) from None
                if size > 0:
                    kind = data[0]
                    if kind == 0x77:  # 'w' XLogData
                        start_lsn = _XLOG_HEADER.unpack_from(data, 1)[0]
                        message = decode(memoryview(data)[25:])
                        if type(message) is pgoutput.Relation:
                            await self._on_relation(message)
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
                        raise self._replication_lost(exc) from None
                    continue
                raise self._stream_ended(pgconn)
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(pgconn.socket)

    def _replication_lost(self, exc: psycopg.OperationalError) -> SourceUnavailableError:
        return SourceUnavailableError(f"lost the replication connection to {self._where}: {exc}")

    def _stream_ended(self, pgconn: Any) -> SourceError:
        """The server ended the COPY: a terminated backend or a server shutting down may
        pass (the daemon starts over); any other reason stops it."""
        error = pgconn.error_message.decode(errors="replace").strip()
        sqlstate = None
        with contextlib.suppress(Exception):
            result = pgconn.get_result()  # the reason comes with the COPY's result
            if result is not None:
                sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
                error = error or result.error_message.decode(errors="replace").strip()
        message = f"PostgreSQL ended the replication stream of slot {self.slot!r}" + (
            f": {error}" if error else ""
        )
        if not error and not sqlstate:
            # A walsender ends the COPY without an error only when the server shuts down
            # (smart or fast: it sends what it has, then CopyDone): wait for it to return.
            return SourceUnavailableError(f"{message} (the server is shutting down)")
        if pgconn.status == pq.ConnStatus.BAD or _lost_sqlstate(sqlstate):
            return SourceUnavailableError(message)
        return SourceError(message)

    async def _on_relation(self, rel: pgoutput.Relation) -> None:
        included = self.config.includes(rel.namespace, rel.name)
        key_columns: tuple[str, ...] = ()
        if included:
            key_columns = await self._primary_key(rel.oid)
        converters = tuple(
            make_converter(
                col.type_oid, col.typmod, self._type_names.get(col.type_oid), self.decimal_mode
            )
            for col in rel.columns
        )
        self._tables[rel.oid] = _Table(
            rel.namespace, rel.name, included, tuple(c.name for c in rel.columns), converters, key_columns
        )

    async def _primary_key(self, relation_oid: int) -> tuple[str, ...]:
        if self._meta is None or self._meta.closed:
            self._meta = await self._connect()
        cur = await self._meta.execute(
            "SELECT a.attname FROM pg_index i "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord",
            (relation_oid,),
        )
        return tuple(row[0] for row in await cur.fetchall())

    def _source_block(self, table: _Table, lsn: int) -> dict[str, Any]:
        ts_us = self._commit_ts_us
        return {
            "ts_ms": ts_us // 1000,
            "ts_us": ts_us,
            "ts_ns": ts_us * 1000,
            "db": self.database,
            "sequence": f'[{self._last_commit_lsn_text},"{lsn}"]',
            "schema": table.namespace,
            "table": table.name,
            "txId": self._xid,
            "lsn": lsn,
            "xmin": None,
        }

    def _on_message(self, msg: Any, lsn: int, items: list[SourceItem]) -> None:
        kind = type(msg)
        if kind is pgoutput.Insert:
            table = self._tables[msg.relation_oid]
            if table.included:
                after = table.row(msg.new, lsn)
                event = self._event(OP_CREATE, table, lsn, table.key(after), None, after)
                self._emit(event, items)
        elif kind is pgoutput.Update:
            table = self._tables[msg.relation_oid]
            if table.included:
                self._on_update(table, msg, lsn, items)
        elif kind is pgoutput.Delete:
            table = self._tables[msg.relation_oid]
            if table.included:
                before = table.row(msg.old, lsn)
                event = self._event(OP_DELETE, table, lsn, table.key(before), before, None)
                self._emit(event, items)
        elif kind is pgoutput.Begin:
            self._in_transaction = True
            self._xid = msg.xid
            self._txid = f"{msg.xid}:{msg.final_lsn}"
            self._commit_ts_us = msg.commit_ts_us
            self._tx_events = 0
        elif kind is pgoutput.Commit:
            if self._skip:
                raise SourceError(
                    f"the stored offset says {self._skip + self._tx_events} events of the "
                    f"transaction after {lsn_to_str(self._last_commit_lsn)} are in Kafka, but "
                    f"PostgreSQL re-sent one with {self._tx_events} (transaction {self._txid}); "
                    "was source.tables changed? Set the offset past it: cdcd offsets set"
                )
            items.append(
                Commit(
                    PgPosition(msg.end_lsn),
                    txid=self._txid,
                    ts_ms=msg.commit_ts_us // 1000,
                    event_count=self._tx_events,
                )
            )
            self._in_transaction = False
            self._last_commit_lsn = msg.end_lsn
            self._last_commit_lsn_text = f'"{msg.end_lsn}"'
        elif kind is pgoutput.Truncate:
            for oid in msg.relation_oids:
                table = self._tables[oid]
                if table.included:
                    self._emit(self._event(OP_TRUNCATE, table, lsn, None, None, None), items)
        elif kind is pgoutput.TypeMsg:
            self._type_names[msg.oid] = f"{msg.namespace}.{msg.name}"
        # Origin and logical decoding messages carry no row change.

    def _on_update(self, table: _Table, msg: Any, lsn: int, items: list[SourceItem]) -> None:
        after = table.row(msg.new, lsn)
        before = table.row(msg.old, lsn) if msg.old is not None else None
        if before is not None and msg.old_kind == "O":
            # REPLICA IDENTITY FULL: the old row holds the TOASTed values the new one omits.
            for name, value in after.items():
                if value == UNAVAILABLE_VALUE and before[name] != UNAVAILABLE_VALUE:
                    after[name] = before[name]
        key = table.key(after)
        old_key = table.key(before) if before is not None else None
        if old_key is not None and old_key != key:
            # Like Debezium: a primary-key change is a delete of the old key (and its
            # tombstone) followed by a create of the new one.
            self._emit(self._event(OP_DELETE, table, lsn, old_key, before, None), items)
            self._emit(self._event(OP_CREATE, table, lsn, key, None, after), items)
        else:
            self._emit(self._event(OP_UPDATE, table, lsn, key, before, after), items)

    def _event(
        self,
        op: str,
        table: _Table,
        lsn: int,
        key: dict[str, Any] | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> ChangeEvent:
        source = self._source_block(table, lsn)
        return ChangeEvent(op, table.namespace, table.name, key, before, after, source, self._txid)

    def _emit(self, event: ChangeEvent, items: list[SourceItem]) -> None:
        """Yield ``event`` unless Kafka has it; cut a huge transaction at safe points.

        Any point between two events is safe: the cut position (previous commit's end,
        events written so far) lets a restart skip exactly those events when PostgreSQL
        sends the transaction again.
        """
        self._tx_events += 1
        if self._skip:
            self._skip -= 1
            return
        items.append(event)
        if self._tx_events % self.split_after_events == 0:
            items.append(
                Commit(
                    PgPosition(self._last_commit_lsn, self._tx_events),
                    txid=self._txid,
                    ts_ms=self._commit_ts_us // 1000,
                    event_count=self._tx_events,
                )
            )

    # -- acknowledgements ------------------------------------------------------------

    def _on_keepalive(self, wal_end: int, items: list[SourceItem]) -> None:
        """Idle or filtered-out WAL: offer the server's WAL end as a position to store.

        When every commit decoded so far is acknowledged and no transaction is open,
        nothing before the server's WAL end is ours to deliver. The slot may move there
        only once Kafka holds an offset record for it (the ack rule): a heartbeat commit,
        without events, goes through the pipeline like any other, at most once a status
        interval. So the slot is never ahead of the stored offset, which makes a slot
        that is ahead a sure sign of lost changes (``_check_resumable``), while the
        server can still recycle WAL that holds nothing for us. Not inside a cut
        transaction seen again: its position must stay readable."""
        if self._in_transaction or self._skip or wal_end <= self._last_commit_lsn:
            return
        if self._acked_lsn < self._last_commit_lsn:
            return  # a commit (or heartbeat) is still on its way to Kafka
        now = time.monotonic()
        if now - self._last_heartbeat < self.config.status_interval_s:
            return
        self._last_heartbeat = now
        self._last_commit_lsn = wal_end
        self._last_commit_lsn_text = f'"{wal_end}"'
        items.append(Commit(PgPosition(wal_end), extra=HEARTBEAT))

    async def ack(self, position: Position) -> None:
        """Everything up to ``position`` is in Kafka: let the slot move past it."""
        assert isinstance(position, PgPosition)
        if self._worker is not None:
            if position.commit_lsn > self._acked_lsn:
                self._acked_lsn = position.commit_lsn
                self._worker.send(position.commit_lsn.to_bytes(8, "little"))
            return
        if position.commit_lsn > self._acked_lsn:
            self._acked_lsn = position.commit_lsn
        if time.monotonic() - self._last_status >= 1.0:
            self._send_status()

    def _send_status(self, force: bool = False) -> None:
        if self._repl is None or self._repl.closed:
            return
        if not force and self._acked_lsn == self._sent_lsn:
            return
        lsn = self._acked_lsn
        clock = time.time_ns() // 1000 - _PG_EPOCH_US
        pgconn = self._repl.pgconn
        try:
            pgconn.put_copy_data(_STATUS.pack(b"r", lsn, lsn, lsn, clock, 0))
            pgconn.flush()
        except psycopg.OperationalError as exc:
            raise SourceUnavailableError(
                f"lost the replication connection to {self._where}: {exc}"
            ) from None
        self._sent_lsn = lsn
        self._last_status = time.monotonic()

    async def _feedback_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            self._send_status(force=True)

    async def start_position(self) -> PgPosition:
        """Where streaming starts without a stored offset: the slot's confirmed position."""
        return await self.earliest_position()

    async def earliest_position(self) -> PgPosition:
        """The slot's confirmed position: a logical slot cannot go further back (no slot
        yet: the current end of the WAL, where a new one would start)."""
        conn = await self._connect()
        try:
            confirmed, wal_end = await self._slot_and_wal_end(conn)
            return PgPosition(wal_end if confirmed is None else confirmed)
        finally:
            await conn.close()

    async def latest_position(self) -> PgPosition:
        """The current end of the WAL: every transaction committed so far lies before it."""
        conn = await self._connect()
        try:
            _, wal_end = await self._slot_and_wal_end(conn)
            return PgPosition(wal_end)
        finally:
            await conn.close()

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
    def acked_position(self) -> PgPosition:
        return PgPosition(self._acked_lsn)

    async def close(self) -> None:
        """Report the final acknowledged position and disconnect."""
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
