"""PostgreSQL's snapshot reader (``cdcd.snapshot.SnapshotReader``): the captured tables,
the consistent view a new replication slot exports, and chunks read by primary key.

Rows are read in PostgreSQL's text format, each value exactly as its type's output
function writes it, which is what pgoutput sends the stream (``col::text`` is not: a
cast to text writes bool as ``true``, trims ``char(n)``, adds ``/32`` to an inet); they go
through the stream's own converters (``rows.Table`` built from the catalog as pgoutput's
Relation and Type messages describe the table), so a row's key and after image are the
same whether it is read here (op ``r``) or streamed (op ``c``).

A table without a primary key is read only whole, in a consistent view's scan (no key
condition, no order): its rows have key None, as the stream's have.

Chunks follow the primary key with a row-value comparison, ``(k1, k2) > (v1::t1,
v2::t2)``, which the key's index serves (never OR-chains). A chunk's ``last_key`` holds
the text of the last row's key columns, given back to the server with a cast to each
column's type: every key type round-trips through its text (int, text, uuid, bytea, ...),
and text that looks like NULL (``"NULL"``, ``""``, ``"\\N"``) is a bound parameter, never
SQL. Sessions: one per scan (each joins the exported snapshot), and a few pooled
sessions for watermarks and chunks read as the table is now.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from cdcd.errors import SourceError
from cdcd.events import OP_READ, ChangeEvent
from cdcd.positions import PgPosition, Position, lsn_to_str
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.sources.common import keyless_chunks_error
from cdcd.sources.postgres.checks import captured_tables
from cdcd.sources.postgres.rows import Table, source_block
from cdcd.sources.postgres.slot import insert_lsn

if TYPE_CHECKING:
    from cdcd.encoding import DecimalMode
    from cdcd.sources.postgres.config import PostgresSourceConfig
    from cdcd.sources.postgres.connection import Connector
    from cdcd.sources.postgres.slot import ReplicationSlot

# The table's columns as pgoutput's Relation message lists them (not dropped, not
# generated, in attnum order), each with the name its Type message gives (a domain's
# base type's name, schema left out: ``rows.type_name``) and its type for the key's casts.
_COLUMNS = """
SELECT a.attname, a.atttypid::int8, a.atttypmod, format_type(a.atttypid, NULL),
  (WITH RECURSIVE t(oid, typtype, typbasetype, typname) AS (
     SELECT oid, typtype, typbasetype, typname FROM pg_type WHERE oid = a.atttypid
     UNION ALL
     SELECT b.oid, b.typtype, b.typbasetype, b.typname FROM pg_type b JOIN t
       ON b.oid = t.typbasetype WHERE t.typtype = 'd')
   SELECT typname FROM t WHERE typtype <> 'd')
FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""

# Primary keys (in key order) and row estimates of the tables named by two arrays.
_TABLES = """
SELECT n.nspname, c.relname, greatest(c.reltuples, 0)::int8,
  ARRAY(SELECT a.attname FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord)
FROM unnest(%s::text[], %s::text[]) AS s(nspname, relname)
JOIN pg_namespace n ON n.nspname = s.nspname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.relname
"""

_FETCH = "FETCH FORWARD {} FROM cdcd_scan"


@dataclass(slots=True)
class _Shape:
    """How one table's rows are read: the stream's row converter, the query, the key's
    positions among the columns and the casts that give a ``last_key`` back."""

    table: Table
    select: sql.Composed
    key_at: tuple[int, ...]
    key_types: tuple[str, ...]

    def query(
        self, after: list[Any] | None, where: str | None, limit: int | None
    ) -> tuple[sql.Composed, list[Any]]:
        """The chunk's query and its parameters: rows after key ``after``, in key order
        (a table without a primary key: every row, in no order)."""
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        keyless = not self.table.key_columns
        if after is not None and keyless:
            raise SourceError(
                f"a snapshot key {after!r} for {self.table.namespace}.{self.table.name}, "
                "which has no primary key (it is read whole, never resumed)"
            )
        if after is not None:
            if len(after) != len(self.key_types):
                raise SourceError(
                    f"a snapshot key of {len(after)} values for {self.table.namespace}."
                    f"{self.table.name}, whose primary key has {len(self.key_types)} columns"
                )
            keys = sql.SQL(", ").join(map(sql.Identifier, self.table.key_columns))
            casts = sql.SQL(", ").join(sql.SQL("%s::" + t) for t in self.key_types)
            conditions.append(sql.SQL("({}) > ({})").format(keys, casts))
            params.extend(None if v is None else str(v) for v in after)
        if where:
            # Parameters are bound: a '%' of the condition's own is doubled.
            condition = sql.SQL(where.replace("%", "%%"))  # type: ignore[arg-type]
            conditions.append(sql.SQL("({})").format(condition))
        parts: list[sql.Composable] = [self.select]
        if conditions:
            parts += [sql.SQL(" WHERE "), sql.SQL(" AND ").join(conditions)]
        if not keyless:
            keys = sql.SQL(", ").join(map(sql.Identifier, self.table.key_columns))
            parts += [sql.SQL(" ORDER BY "), keys]
        if limit is not None:
            parts.append(sql.SQL(" LIMIT {}").format(sql.Literal(limit)))
        return sql.Composed(parts), params

    def events(
        self, rows: list[tuple[str | None, ...]], database: str, lsn: int, ts_us: int
    ) -> list[ChangeEvent]:
        """``op = "r"`` events of rows of text values, each with its own source block."""
        table = self.table
        ns, name = table.namespace, table.name
        sequence = f'[null,"{lsn}"]'  # Debezium's: no commit before a snapshot's records
        out = []
        for values in rows:
            after = table.row(values, lsn)
            source = source_block(database, ns, name, ts_us, sequence, None, lsn)
            out.append(ChangeEvent(OP_READ, ns, name, table.key(after), None, after, source))
        return out

    def last_key(self, rows: list[tuple[str | None, ...]]) -> list[Any] | None:
        return [rows[-1][i] for i in self.key_at] if rows and self.key_at else None


def _text_rows(cur: psycopg.AsyncCursor[Any]) -> list[tuple[str | None, ...]]:
    """The last result's rows as the server wrote them (text format, nothing parsed)."""
    result = cur.pgresult
    if result is None:
        return []
    get, fields = result.get_value, range(result.nfields)
    return [
        tuple(None if (v := get(r, c)) is None else v.decode() for c in fields)
        for r in range(result.ntuples)
    ]


class PostgresSnapshotReader:
    """The snapshot reader of one ``PostgresSource``: its sessions, its selection of
    tables, its slot and the ``decimal_mode`` of its stream."""

    def __init__(
        self,
        config: PostgresSourceConfig,
        connector: Connector,
        slot: ReplicationSlot,
        decimal_mode: DecimalMode,
        log: Any = None,
    ) -> None:
        self.config = config
        self.connector = connector
        self.slot = slot
        self.decimal_mode: DecimalMode = decimal_mode
        self.database = connector.database
        self.log = log
        self._idle: list[psycopg.AsyncConnection[Any]] = []  # watermarks and chunks
        self._views: list[PgConsistentSnapshot] = []

    async def tables(self) -> list[SnapshotTable]:
        """The captured tables, ordered by schema and name, each with its primary key in
        the key's order (none: ``()``) and ``pg_class.reltuples`` (never analysed: 0)."""
        async with self._session() as conn:
            names = await captured_tables(conn, self.config)
            cur = await conn.execute(_TABLES, ([s for s, _ in names], [t for _, t in names]))
            found = {(r[0], r[1]): r for r in await cur.fetchall()}
        out = []
        for schema, table in names:
            row = found.get((schema, table))
            if row is not None:  # not dropped since it was listed
                out.append(SnapshotTable(schema, table, tuple(row[3]), int(row[2])))
        return out

    async def consistent(self, threads: int = 1) -> PgConsistentSnapshot | None:
        """The slot created anew with an exported snapshot (a slot left over is dropped:
        no offset is stored, so nothing is lost), or None when ``source.create_slot`` is
        false (the core then reads watermarked chunks). ``threads`` is not needed: each
        scan opens its own session when it starts and joins the snapshot then, which it
        can as long as the view is open (until its ``close()``)."""
        if not self.config.create_slot:
            return None
        started_us = time.time_ns() // 1000
        holder, lsn, name = await self.slot.create_exporting()
        view = PgConsistentSnapshot(self, holder, PgPosition(lsn), name, started_us)
        self._views.append(view)
        if self.log is not None:
            self.log.info("snapshot exported", slot=self.slot.name, snapshot=name,
                          consistent_point=lsn_to_str(lsn))  # fmt: skip
        return view

    async def watermark(self) -> PgPosition:
        """The WAL's insert position (``slot.insert_lsn``): at or past the commit record of
        every transaction committed so far, even with ``synchronous_commit = off``
        (``pg_current_wal_lsn()``, the WAL written, may not have the latest commits yet);
        read-only. The stream reaches it once the server has written that WAL: at once
        for a synchronous commit, within ``wal_writer_delay`` for an asynchronous one."""
        async with self._session() as conn:
            return PgPosition(await insert_lsn(conn))

    def reached(self, position: Position, mark: Position) -> bool:
        """Whether ``position`` is at or past ``mark``.

        The stream gives transactions in the order of their commit records, and a
        ``Commit``'s position is its commit record's end: every transaction whose record
        ends at or before it has been given. A heartbeat's position is the WAL end the
        walsender reported, everything before which it has decoded and sent: again every
        commit ending at or before it has been given. A mark read after a transaction
        committed lies at or past that commit's end, so a position at or past the mark
        has given it. (A position cut inside a huge transaction carries the previous
        commit's end: compared by that, it errs on the safe side.)"""
        assert isinstance(position, PgPosition) and isinstance(mark, PgPosition)
        return position.commit_lsn >= mark.commit_lsn

    async def read_chunk(
        self, table: SnapshotTable, after: list[Any] | None, limit: int, where: str | None
    ) -> Chunk:
        """At most ``limit`` rows after ``after`` as the table is now, in one short
        read-only transaction (one more row read tells whether it is the last chunk). A
        table without a primary key has no chunks: it is read whole in a consistent view
        (``PgConsistentSnapshot.scan``)."""
        if not table.key_columns:
            raise keyless_chunks_error(table.id)
        async with self._session() as conn:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                shape = await self._shape(conn, table)
                query, params = shape.query(after, where, limit + 1)
                cur = conn.cursor()
                await cur.execute(query, params)
                rows = _text_rows(cur)
                lsn = await insert_lsn(conn)
            finally:
                await conn.execute("ROLLBACK")
        done = len(rows) <= limit
        rows = rows[:limit]
        events = shape.events(rows, self.database, lsn, time.time_ns() // 1000)
        return Chunk(table, events, shape.last_key(rows), done)

    async def close(self) -> None:
        for view in list(self._views):
            await view.close()
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()

    # -- sessions and tables ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled session; one that failed is closed, not given back."""
        conn = self._idle.pop() if self._idle else await self.connector.connect()
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        self._idle.append(conn)

    async def _shape(self, conn: psycopg.AsyncConnection[Any], table: SnapshotTable) -> _Shape:
        """The table's columns as the transaction on ``conn`` sees them."""
        ident = sql.Identifier(table.namespace, table.name)
        try:
            cur = await conn.execute(_COLUMNS, (ident.as_string(conn),))
        except psycopg.errors.UndefinedTable:
            raise SourceError(f"table {table.id} does not exist (any more)") from None
        columns = await cur.fetchall()
        names = [c[0] for c in columns]
        missing = [k for k in table.key_columns if k not in names]
        if missing:
            raise SourceError(
                f"cannot read {table.id} by its primary key {list(table.key_columns)}: "
                f"its columns are {names}"
            )
        type_names = {int(c[1]): c[4] for c in columns if c[4] is not None}
        rows = Table.of_columns(
            table.namespace, table.name, True, [(c[0], int(c[1]), c[2]) for c in columns],
            table.key_columns, type_names, self.decimal_mode,
        )  # fmt: skip
        select = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, names)), ident
        )
        key_at = tuple(names.index(k) for k in table.key_columns)
        key_types = tuple(columns[i][3] for i in key_at)
        return _Shape(rows, select, key_at, key_types)


class PgConsistentSnapshot:
    """The snapshot a new slot exported, alive while ``holder`` (the replication session
    that created the slot) stays open and idle; ``position``: the slot's consistent
    point, where the stream continues."""

    def __init__(
        self,
        reader: PostgresSnapshotReader,
        holder: psycopg.AsyncConnection[Any],
        position: PgPosition,
        name: str,
        started_us: int,
    ) -> None:
        self.reader = reader
        self.position = position
        self.name = name
        self.started_us = started_us
        self._holder: psycopg.AsyncConnection[Any] | None = holder

    async def scan(
        self, table: SnapshotTable, after: list[Any] | None, chunk_size: int, where: str | None
    ) -> AsyncIterator[Chunk]:
        """The table's rows in the exported snapshot, ``chunk_size`` at a time, through a
        server-side cursor on a session of its own (one row read ahead: the chunk with
        the table's last row is ``done``; an empty table gives one empty, done chunk). A
        table without a primary key: ``after`` is None, every row in no order (no ORDER
        BY), each event's key None and every ``last_key`` None."""
        if self._holder is None:
            raise SourceError("the snapshot's view is closed")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        reader = self.reader
        conn = await reader.connector.connect()
        try:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            await conn.execute(
                sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.name))
            )
            shape = await reader._shape(conn, table)
            query, params = shape.query(after, where, None)
            cur = conn.cursor()
            declare = sql.SQL("DECLARE cdcd_scan NO SCROLL CURSOR FOR {}").format(query)
            await cur.execute(declare, params)
            lsn, exhausted = self.position.commit_lsn, False
            pending: list[tuple[str | None, ...]] = []
            read_us = time.time_ns() // 1000
            while True:
                want = chunk_size + 1 - len(pending)
                if want > 0 and not exhausted:
                    await cur.execute(_FETCH.format(want))
                    rows = _text_rows(cur)
                    exhausted = len(rows) < want
                    pending += rows
                    read_us = time.time_ns() // 1000
                rows, pending = pending[:chunk_size], pending[chunk_size:]
                done = exhausted and not pending
                events = shape.events(rows, reader.database, lsn, read_us)
                yield Chunk(table, events, shape.last_key(rows), done)
                if done:
                    return
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """End the exported snapshot (its session); the slot stays."""
        holder, self._holder = self._holder, None
        if holder is not None:
            with contextlib.suppress(Exception):
                await holder.close()
        with contextlib.suppress(ValueError):
            self.reader._views.remove(self)
