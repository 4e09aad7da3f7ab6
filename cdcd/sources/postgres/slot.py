"""The publication and the logical replication slot of one source: creating them, the
positions the slot can stream from, and starting replication on it.

The slot's confirmed position moves only once Kafka holds everything before it (the ack
rule), so a slot ahead of the stored offset is a sure sign of lost changes, and cdcd
never creates a slot over a stored offset (``check_resumable``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from cdcd.errors import PositionLostError, SourceError
from cdcd.positions import PgPosition, Position, lsn_to_str, str_to_lsn
from cdcd.sources.postgres.checks import captured_tables, run_checks

if TYPE_CHECKING:
    from cdcd.sources.postgres.config import PostgresSourceConfig
    from cdcd.sources.postgres.connection import Connector

SLOT_BUSY_WAIT_S = 15.0
_OBJECT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


def default_object_name(daemon_name: str) -> str:
    """Slot and publication name derived from the daemon's name: ``cdcd_<name>``."""
    return re.sub(r"[^a-z0-9_]", "_", f"cdcd_{daemon_name}".lower())[:63]


def pg_position(position: Position) -> PgPosition:
    """``position`` if it is PostgreSQL's, else a SourceError."""
    if not isinstance(position, PgPosition):
        raise SourceError(f"cannot resume a PostgreSQL stream from a {position.kind} position")
    return position


async def insert_lsn(conn: psycopg.AsyncConnection[Any]) -> int:
    """``pg_current_wal_insert_lsn()``: at or past the commit record of every transaction
    committed so far. Not ``pg_current_wal_lsn()`` (written so far): with
    ``synchronous_commit = off`` a transaction is committed, its changes visible, before
    its commit record is written. Read-only (any role may call it)."""
    cur = await conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


class ReplicationSlot:
    """Slot ``name`` and publication ``publication`` of the database ``connector``
    reaches."""

    def __init__(
        self,
        connector: Connector,
        config: PostgresSourceConfig,
        name: str,
        publication: str,
        log: Any = None,
    ) -> None:
        for key, value in (("slot_name", name), ("publication_name", publication)):
            if not _OBJECT_NAME.match(value):
                raise SourceError(
                    f"source.{key}: {value!r} may hold only lowercase letters, digits and '_'"
                )
        self.connector = connector
        self.config = config
        self.name = name
        self.publication = publication
        self.log = log

    async def prepare(self, resume: Position | None) -> None:
        """Refuse to start on a fatal problem; create the publication if allowed; and
        either create the slot (a first start: no stored offset) or check that the slot
        can continue exactly from ``resume`` (``PositionLostError`` if not)."""
        conn = await self.connector.connect()
        try:
            problems = await run_checks(conn, self.config, self.name, self.publication, setup=True)
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
                await self.check_resumable(conn, pg_position(resume))
        finally:
            await conn.close()

    async def _slot_and_wal_end(self, conn: psycopg.AsyncConnection[Any]) -> tuple[int | None, int]:
        """(the slot's confirmed position, None when there is no slot; the WAL's end)."""
        cur = await conn.execute(
            "SELECT (SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots "
            "WHERE slot_name = %s), pg_current_wal_lsn() - '0/0'",
            (self.name,),
        )
        row = await cur.fetchone()
        assert row is not None
        return (None if row[0] is None else int(row[0])), int(row[1])

    async def check_resumable(
        self,
        conn: psycopg.AsyncConnection[Any],
        position: PgPosition,
        what: str = "the stored offset",
    ) -> int:
        """The slot's confirmed position, once it is clear that the slot can give every
        change after ``position`` (``PositionLostError`` if not).

        The slot's confirmed position only moves once Kafka holds everything before it
        (changes, or an offset record written on a keepalive): a slot past the stored
        offset was dropped and created again, or moved by someone else, and the changes
        in between may be gone. cdcd never creates a slot over a stored offset."""
        confirmed, wal_end = await self._slot_and_wal_end(conn)
        at = lsn_to_str(position.commit_lsn)
        where = self.connector.where
        if position.commit_lsn > wal_end:
            raise PositionLostError(
                f"{what} {at} is past the end of the WAL of PostgreSQL at {where} "
                f"({lsn_to_str(wal_end)}): this server never had it (another server, or a "
                "restored backup?); the positions it has: cdcd offsets reset --to earliest"
            )
        if confirmed is None:
            raise PositionLostError(
                f"replication slot {self.name!r} does not exist, so {what} ({at}) cannot be "
                f"streamed from: the changes committed after {at} up to now "
                f"({lsn_to_str(wal_end)}) cannot be read any more, and cdcd does not create "
                "a new slot over a stored position. To stream on from now knowingly (a new "
                "slot; the changes in between are not in Kafka): cdcd offsets reset --to latest"
            )
        if confirmed > position.commit_lsn:
            raise PositionLostError(
                f"{what} {at} is before replication slot {self.name!r}'s confirmed position "
                f"{lsn_to_str(confirmed)}: the slot cannot go back, and the changes between "
                "them may not be in Kafka (the slot was dropped and created again, or another "
                "consumer advanced it). To stream on from the slot's position knowingly: "
                "cdcd offsets reset --to earliest"
            )
        return confirmed

    async def check_position(self, position: Position) -> None:
        """Refuse a position to store (``cdcd offsets set``) that the slot cannot stream
        from exactly, saying why."""
        conn = await self.connector.connect()
        try:
            await self.check_resumable(conn, pg_position(position), "the position")
        finally:
            await conn.close()

    async def prepare_reset(self, position: Position) -> PgPosition:
        """Before ``cdcd offsets reset`` stores ``position``: a missing slot is created
        (when allowed), and the position to store is then the later of ``position`` and
        where the slot starts (nothing before it can be streamed)."""
        wanted = pg_position(position)
        conn = await self.connector.connect()
        try:
            confirmed, _ = await self._slot_and_wal_end(conn)
            if confirmed is not None:
                return wanted
            if not self.config.create_slot:
                raise SourceError(
                    f"replication slot {self.name!r} does not exist and source.create_slot is "
                    f"false: create it (SELECT pg_create_logical_replication_slot('{self.name}', "
                    "'pgoutput')) or set source.create_slot = true"
                )
            await self._ensure_slot(conn)
            confirmed, _ = await self._slot_and_wal_end(conn)
            assert confirmed is not None
            return wanted if wanted.commit_lsn >= confirmed else PgPosition(confirmed)
        finally:
            await conn.close()

    async def earliest_position(self) -> PgPosition:
        """The slot's confirmed position: a logical slot cannot go further back (no slot
        yet: the current end of the WAL, where a new one would start)."""
        conn = await self.connector.connect()
        try:
            confirmed, wal_end = await self._slot_and_wal_end(conn)
            return PgPosition(wal_end if confirmed is None else confirmed)
        finally:
            await conn.close()

    async def latest_position(self) -> PgPosition:
        """The current end of the WAL: every transaction committed so far lies before it."""
        conn = await self.connector.connect()
        try:
            _, wal_end = await self._slot_and_wal_end(conn)
            return PgPosition(wal_end)
        finally:
            await conn.close()

    async def insert_position(self) -> PgPosition:
        """A position at or past every transaction committed so far (``insert_lsn``)."""
        conn = await self.connector.connect()
        try:
            return PgPosition(await insert_lsn(conn))
        finally:
            await conn.close()

    async def _ensure_publication(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute(
            "SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,)
        )
        if await cur.fetchone():
            return
        if self.config.tables is None:
            stmt = sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(
                sql.Identifier(self.publication)
            )
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
            "SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", (self.name,)
        )
        if await cur.fetchone():
            return
        try:
            await conn.execute(
                "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.name,)
            )
        except psycopg.Error as exc:
            raise self._cannot_create(exc) from None
        if self.log is not None:
            self.log.info("replication slot created", slot=self.name)

    def _cannot_create(self, exc: psycopg.Error) -> SourceError:
        return SourceError(
            f"cannot create replication slot {self.name!r}: {exc.diag.message_primary or exc}; "
            "grant the REPLICATION attribute (ALTER ROLE <user> REPLICATION) "
            "or create the slot: SELECT pg_create_logical_replication_slot("
            f"'{self.name}', 'pgoutput')"
        )

    async def create_exporting(self) -> tuple[psycopg.AsyncConnection[Any], int, str]:
        """The slot created anew, exporting a snapshot of the moment it starts from, for
        a first start's initial snapshot (no offset is stored: a slot left over holds
        nothing anyone relies on, and is dropped). Returns the replication session that
        created it (the snapshot lives while it stays open and idle: close it when done),
        the slot's consistent point (the stream starts there) and the snapshot's name
        (``SET TRANSACTION SNAPSHOT``)."""
        conn = await self.connector.connect()
        try:
            cur = await conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.name,)
            )
            if await cur.fetchone():
                await self._while_busy(
                    lambda: conn.execute("SELECT pg_drop_replication_slot(%s)", (self.name,)),
                    "drop replication slot",
                )
                if self.log is not None:
                    self.log.info(
                        "replication slot dropped, to be created again with an exported "
                        "snapshot (no offset is stored)",
                        slot=self.name,
                    )
        finally:
            await conn.close()
        repl = await self.connector.connect(replication=True)
        # PostgreSQL 15 took the options in parentheses; EXPORT_SNAPSHOT is the older form.
        export = "(SNAPSHOT 'export')" if repl.info.server_version >= 150000 else "EXPORT_SNAPSHOT"
        try:
            command = f"CREATE_REPLICATION_SLOT {self.name} LOGICAL pgoutput {export}"
            cur = await repl.execute(command)
            row = await cur.fetchone()
        except psycopg.Error as exc:
            await repl.close()
            raise self._cannot_create(exc) from None
        assert row is not None
        _slot, consistent_point, snapshot_name, _plugin = row
        if self.log is not None:
            self.log.info("replication slot created", slot=self.name, snapshot=snapshot_name)
        return repl, str_to_lsn(consistent_point), snapshot_name

    async def confirmed_lsn(
        self, conn: psycopg.AsyncConnection[Any], resume: PgPosition | None
    ) -> int:
        """The slot's confirmed position, once it is checked that the slot can continue
        from ``resume`` (it may have been dropped since ``prepare``)."""
        if resume is not None:
            return await self.check_resumable(conn, resume)
        confirmed, _ = await self._slot_and_wal_end(conn)
        if confirmed is None:
            raise SourceError(
                f"replication slot {self.name!r} does not exist; let cdcd create it "
                "(source.create_slot = true) or create it: SELECT "
                f"pg_create_logical_replication_slot('{self.name}', 'pgoutput')"
            )
        return confirmed

    async def start_replication(self, repl: psycopg.AsyncConnection[Any], start: int) -> None:
        """``START_REPLICATION`` from ``start`` on the replication connection ``repl``,
        which is then in COPY_BOTH; a slot still held by a daemon just gone is waited for."""
        command = (
            f"START_REPLICATION SLOT {self.name} LOGICAL {lsn_to_str(start)} "
            f"(proto_version '1', publication_names '{self.publication}', messages 'true')"
        )
        await self._while_busy(lambda: repl.execute(command), "start replication from slot")

    async def _while_busy(self, action: Callable[[], Awaitable[Any]], what: str) -> None:
        """``action`` on the slot, tried again while the slot is in use: a daemon killed a
        moment ago may still hold it until its walsender notices."""
        deadline = time.monotonic() + SLOT_BUSY_WAIT_S
        while True:
            try:
                await action()
                return
            except psycopg.Error as exc:
                message = exc.diag.message_primary or str(exc)
                if "is active for PID" in message:
                    if time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                        continue
                    raise SourceError(
                        f"replication slot {self.name!r} is in use: {message}; "
                        "is another cdcd running with the same name?"
                    ) from None
                raise SourceError(f"cannot {what} {self.name!r}: {message}") from None
