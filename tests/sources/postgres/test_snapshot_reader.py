"""PostgreSQL's snapshot reader against the real server: the same encoding as the stream,
a consistent view whose stream continues exactly after it, chunks by composite keys,
a read-only role, bounded memory; and heartbeats on demand from both readers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_types import EXPECTED_ROW

from cdcd.errors import SourceError
from cdcd.events import HEARTBEAT, ChangeEvent, Commit, SourceItem
from cdcd.positions import PgPosition
from cdcd.snapshot import Chunk, SnapshotTable
from cdcd.sources.postgres.config import PostgresSourceConfig
from cdcd.sources.postgres.source import PostgresSource

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data"


def make_source(case: Any, **settings: Any) -> PostgresSource:
    config = PostgresSourceConfig(
        kind="postgres",
        dsn=settings.pop("dsn", case.dsn),
        tables=[f"{case.schema}\\..*"],
        **settings,
    )
    return PostgresSource(config, name=case.name)


def wal_lsn(case: Any) -> int:
    """At or past every commit so far (the test server runs synchronous_commit = off: the
    WAL written, pg_current_wal_lsn(), may not hold the latest commits yet)."""
    row = case.conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()
    return int(row[0])


class Streamed:
    """A source's stream read in the background; commits acknowledged as they come
    (unless ``ack`` is false), as the pipeline would once Kafka holds them."""

    def __init__(self, source: PostgresSource, start: PgPosition | None, ack: bool = True):
        self.source = source
        self.ack = ack
        self.items: list[SourceItem] = []
        self.arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run(source.stream(start)))

    async def _run(self, stream: AsyncIterator[list[SourceItem]]) -> None:
        try:
            async for chunk in stream:
                self.items.extend(chunk)
                self.arrived.set()
                if self.ack:
                    for item in chunk:
                        if isinstance(item, Commit):
                            await self.source.ack(item.position)
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

    async def wait_for(self, found: Any, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for item in self.items:
                if found(item):
                    return item
            if self._task.done():
                self._task.result()
                raise AssertionError("the stream ended")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not streamed within {timeout} s: {self.items[-5:]}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(left, 0.2))

    def events(self) -> list[ChangeEvent]:
        return [i for i in self.items if isinstance(i, ChangeEvent)]

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        await self.source.close()


async def scan_all(
    view: Any, table: SnapshotTable, chunk_size: int, where: str | None = None
) -> list[Chunk]:
    return [chunk async for chunk in view.scan(table, None, chunk_size, where)]


async def read_all(
    reader: Any, table: SnapshotTable, limit: int, where: str | None = None
) -> list[Chunk]:
    chunks, after = [], None
    while True:
        chunk = await reader.read_chunk(table, after, limit, where)
        chunks.append(chunk)
        if chunk.done:
            return chunks
        after = json.loads(json.dumps(chunk.last_key))  # as stored with the offset


def table_of(tables: list[SnapshotTable], name: str) -> SnapshotTable:
    return next(t for t in tables if t.name == name)


# --- the same values as the stream ---------------------------------------------------------


def alltypes_statements(schema: str) -> tuple[list[str], list[str]]:
    """The recorded type test's table (tests/sources/postgres/data) in ``schema``, and the
    inserts of its two rows."""
    setup = (DATA / "alltypes_setup.sql").read_text()
    create = setup[setup.index("CREATE TABLE public.alltypes") :]
    create = create[: create.index(");") + 2].replace("public.alltypes", "alltypes")
    ddl = [
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
        "CREATE DOMAIN posint AS integer CHECK (VALUE > 0)",
        create,
    ]
    changes = (DATA / "alltypes_changes.sql").read_text().split(";\n")
    inserts = [
        s.strip().replace("public.alltypes", "alltypes")
        for s in changes
        if s.strip().startswith("INSERT INTO public.alltypes")
    ]
    assert len(inserts) == 2
    return ddl, inserts


async def test_snapshot_rows_are_encoded_as_the_stream_encodes_them(pg_case):
    s = pg_case.schema
    with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
        pg_case.conn.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    ddl, inserts = alltypes_statements(s)
    with psycopg.connect(
        pg_case.dsn, autocommit=True, options=f"-c search_path={s},public -c TimeZone=UTC"
    ) as conn:
        for statement in ddl:
            conn.execute(statement)
        source = make_source(pg_case)
        await source.prepare(None)
        streamed = Streamed(source, await source.start_position())
        with conn.transaction():
            for statement in inserts:
                conn.execute(statement)
        await streamed.wait_for(lambda i: isinstance(i, Commit) and i.extra != HEARTBEAT)
        await streamed.stop()
    stream_rows = {e.key["id"]: e for e in streamed.events()}
    assert [e.op for e in streamed.events()] == ["c", "c"]
    assert stream_rows[1].after == EXPECTED_ROW  # the stream itself encodes as Debezium does

    reader = make_source(pg_case).snapshot_reader()
    try:
        table = table_of(await reader.tables(), "alltypes")
        assert table.key_columns == ("id",)
        (chunk,) = await read_all(reader, table, 10)
        view = await reader.consistent()
        assert view is not None
        scanned = [row for c in await scan_all(view, table, 1) for row in c.rows]
        await view.close()
    finally:
        await reader.close()
    for rows in (chunk.rows, scanned):
        assert [e.op for e in rows] == ["r", "r"]
        for event in rows:
            streamed_event = stream_rows[event.key["id"]]
            assert event.key == streamed_event.key
            assert event.after == streamed_event.after  # value for value, every type
            assert event.before is None and event.txid is None
            assert event.source.keys() == streamed_event.source.keys()
    assert scanned[0].source is not scanned[1].source  # each row its own block
    source_block = scanned[0].source
    assert source_block["lsn"] == view.position.commit_lsn
    assert source_block["sequence"] == f'[null,"{view.position.commit_lsn}"]'
    assert source_block["txId"] is None and source_block["xmin"] is None
    assert (source_block["db"], source_block["schema"], source_block["table"]) == (
        "cdcd_test",
        s,
        "alltypes",
    )
    assert abs(source_block["ts_ms"] - time.time() * 1000) < 60_000


# --- a consistent view and the stream after it ---------------------------------------------


class Writer(threading.Thread):
    """Inserts, updates and deletes rows of ``t`` in small transactions until stopped."""

    def __init__(self, dsn: str, schema: str, first_id: int, existing: list[int]):
        super().__init__(daemon=True)
        self.dsn, self.schema, self.next_id, self.ids = dsn, schema, first_id, list(existing)
        self.stop = threading.Event()
        self.transactions = 0

    def run(self) -> None:
        rng = random.Random(7)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                with conn.transaction():
                    for _ in range(rng.randint(1, 4)):
                        choice = rng.random()
                        if choice < 0.4 or not self.ids:
                            conn.execute(
                                f"INSERT INTO {self.schema}.t VALUES (%s, 0)", (self.next_id,)
                            )
                            self.ids.append(self.next_id)
                            self.next_id += 1
                        elif choice < 0.8:
                            conn.execute(
                                f"UPDATE {self.schema}.t SET v = v + 1 WHERE id = %s",
                                (rng.choice(self.ids),),
                            )
                        else:
                            victim = self.ids.pop(rng.randrange(len(self.ids)))
                            conn.execute(f"DELETE FROM {self.schema}.t WHERE id = %s", (victim,))
                self.transactions += 1


async def test_a_consistent_view_and_the_stream_after_it_give_the_table_exactly(pg_case):
    s = pg_case.schema
    pg_case.execute(
        f"CREATE TABLE {s}.t (id int PRIMARY KEY, v int NOT NULL)",
        f"INSERT INTO {s}.t SELECT g, 0 FROM generate_series(1, 2000) g",
    )
    source = make_source(pg_case)
    await source.prepare(None)
    reader = source.snapshot_reader()
    writer = Writer(pg_case.dsn, s, 2001, list(range(1, 2001)))
    writer.start()
    try:
        await asyncio.sleep(0.3)
        table = table_of(await reader.tables(), "t")
        view = await reader.consistent(threads=2)
        assert view is not None
        snapshot: dict[int, dict[str, Any]] = {}
        started = writer.transactions
        async for chunk in view.scan(table, None, 100, None):
            for row in chunk.rows:
                assert row.key["id"] not in snapshot  # each row once
                snapshot[row.key["id"]] = row.after
            await asyncio.sleep(0.01)  # the writer goes on meanwhile
        during = writer.transactions - started
        await view.close()
        await asyncio.sleep(0.3)
    finally:
        writer.stop.set()
        writer.join()
        await reader.close()
    final = {
        r[0]: {"id": r[0], "v": r[1]} for r in pg_case.conn.execute(f"SELECT id, v FROM {s}.t")
    }
    end = wal_lsn(pg_case)
    assert during > 10, "the writer was too slow to overlap the scan"

    streamed = Streamed(source, view.position)
    try:
        streamed.source.heartbeat_soon()
        await streamed.wait_for(
            lambda i: isinstance(i, Commit) and i.position.commit_lsn >= end, 60
        )
    finally:
        await streamed.stop()
    replayed = dict(snapshot)
    for event in streamed.events():
        key = event.key["id"]
        if event.op == "c":
            assert key not in replayed, f"insert of {key} streamed, but the view has it"
            replayed[key] = event.after
        elif event.op == "u":
            assert key in replayed
            replayed[key] = event.after
        else:
            assert event.op == "d"
            del replayed[key]
    assert replayed == final
    print(
        f"\nconsistent view: {len(snapshot)} rows scanned while {during} transactions "
        f"committed; {len(streamed.events())} changes streamed after it; {len(final)} rows at the end"
    )


# --- keys, chunks, conditions -----------------------------------------------------------------


async def test_composite_keys_chunks_conditions_empty_and_keyless_tables(pg_case):
    s = pg_case.schema
    texts = ["NULL", "", "\\N", "null", "x", "NULL", "", "\\N", "'", '"']
    with pg_case.conn.transaction():
        pg_case.conn.execute(
            f"CREATE TABLE {s}.k (a int, b text, c uuid, d bytea, n int, PRIMARY KEY (a, b, c, d))"
        )
        for i, text in enumerate(texts):
            pg_case.conn.execute(
                f"INSERT INTO {s}.k VALUES (%s, %s, gen_random_uuid(), %s, %s)",
                (i % 2, text, bytes([i % 3, 0, 255]), i),
            )
        pg_case.conn.execute(f"CREATE TABLE {s}.empty (id int PRIMARY KEY)")
        pg_case.conn.execute(f"CREATE TABLE {s}.nokey (v int)")
        pg_case.conn.execute(f"INSERT INTO {s}.nokey VALUES (1)")
    pg_case.conn.execute(f"ANALYZE {s}.k")
    by_key = pg_case.conn.execute(
        f"SELECT n, ARRAY[a::text, b, c::text, d::text] FROM {s}.k ORDER BY a, b, c, d"
    ).fetchall()
    ordered = [n for n, _ in by_key]
    keys = [key for _, key in by_key]  # each key column's text
    source = make_source(pg_case)
    await source.prepare(None)
    reader = source.snapshot_reader()
    try:
        tables = await reader.tables()
        assert [t.name for t in tables] == ["empty", "k", "nokey"]
        k, empty, nokey = (
            table_of(tables, "k"),
            table_of(tables, "empty"),
            table_of(tables, "nokey"),
        )
        assert k.key_columns == ("a", "b", "c", "d") and k.estimated_rows == 10
        assert nokey.key_columns == () and empty.estimated_rows == 0

        view = await reader.consistent()
        assert view is not None
        pg_case.execute(f"INSERT INTO {s}.k VALUES (0, 'late', gen_random_uuid(), '\\x00', 99)")
        # Two scans at once in one view (each on its own session), interleaved chunk by chunk.
        first, second = await asyncio.gather(scan_all(view, k, 3), scan_all(view, k, 4))
        for chunks, size in ((first, 3), (second, 4)):
            assert [len(c.rows) for c in chunks] == [size] * (10 // size) + (
                [10 % size] if 10 % size else []
            )
            assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
            assert [e.after["n"] for c in chunks for e in c.rows] == ordered  # once each, by key
            assert [c.last_key for c in chunks] == keys[size - 1 :: size] + (
                [keys[-1]] if 10 % size else []
            )
        # A scan resumed after a chunk's key, given back as JSON, continues right after it.
        after = json.loads(json.dumps(first[1].last_key))
        rest = [e.after["n"] async for c in view.scan(k, after, 100, None) for e in c.rows]
        assert rest == ordered[6:]
        chunks = await scan_all(view, k, 3, "b IN ('NULL', '') AND n % 2 = 0")
        assert [e.after["n"] for c in chunks for e in c.rows] == [
            n for n in ordered if texts[n] in ("NULL", "") and n % 2 == 0
        ]
        (only,) = await scan_all(view, empty, 3)
        assert (only.rows, only.last_key, only.done) == ([], None, True)
        await view.close()

        # As the table is now: the late row too, chunk after chunk by the keys given back.
        chunks = await read_all(reader, k, 3)
        assert [len(c.rows) for c in chunks] == [3, 3, 3, 2]
        assert sorted(e.after["n"] for c in chunks for e in c.rows) == sorted([*ordered, 99])
        assert (await reader.read_chunk(k, chunks[-1].last_key, 3, None)).rows == []
        (only,) = await read_all(reader, empty, 5)
        assert (only.rows, only.last_key, only.done) == ([], None, True)
        assert [e.after["n"] for c in await read_all(reader, k, 2, "a = 1") for e in c.rows] == [
            n for n in ordered if n % 2 == 1
        ]
        exact = await reader.read_chunk(k, None, 11, None)
        assert len(exact.rows) == 11 and exact.done
    finally:
        await reader.close()
        await source.close()


def same_rows(events: list[ChangeEvent]) -> list[str]:
    """The after images as a sorted list (rows of a keyless table come in no order)."""
    return sorted(json.dumps(e.after, sort_keys=True, default=str) for e in events)


async def test_a_keyless_table_is_read_whole_in_a_consistent_view_only(pg_case):
    s = pg_case.schema
    pg_case.execute(
        f"CREATE TABLE {s}.nokey (n int, label text, amount numeric(8, 2), at timestamptz, raw bytea)",
        f"CREATE TABLE {s}.nokey_empty (v int)",
    )
    source = make_source(pg_case)
    await source.prepare(None)
    streamed = Streamed(source, await source.start_position())
    # g and g + 7 give the same row: a table without a key may hold a row twice
    pg_case.execute(
        f"INSERT INTO {s}.nokey SELECT g % 7, CASE WHEN g % 3 = 0 THEN NULL ELSE 'row ' || g % 7 END, "
        "(g % 7) * 1.25, timestamptz '2024-01-01 00:00+00' + (g % 7) * interval '1 hour', "
        "decode(lpad(to_hex(g % 7), 2, '0'), 'hex') FROM generate_series(1, 10) g"
    )
    await streamed.wait_for(lambda i: isinstance(i, Commit) and i.extra != HEARTBEAT)
    await streamed.stop()
    inserted = streamed.events()
    assert len(inserted) == 10 and all(e.op == "c" and e.key is None for e in inserted)

    reader = make_source(pg_case).snapshot_reader()
    try:
        tables = await reader.tables()
        nokey, empty = table_of(tables, "nokey"), table_of(tables, "nokey_empty")
        assert nokey.key_columns == () == empty.key_columns
        view = await reader.consistent()
        assert view is not None
        pg_case.execute(f"INSERT INTO {s}.nokey VALUES (99, 'late', 0, now(), '\\x00')")
        chunks = await scan_all(view, nokey, 3)
        assert [len(c.rows) for c in chunks] == [3, 3, 3, 1]
        assert [c.done for c in chunks] == [False, False, False, True]
        assert [c.last_key for c in chunks] == [None] * 4
        rows = [e for c in chunks for e in c.rows]
        assert all(e.op == "r" and e.key is None and e.before is None for e in rows)
        assert same_rows(rows) == same_rows(inserted)  # each row once, the late one not
        assert rows[0].source["lsn"] == view.position.commit_lsn
        exact = await scan_all(view, nokey, 10)
        assert [(len(c.rows), c.done) for c in exact] == [(10, True)]
        (only,) = await scan_all(view, empty, 3)
        assert (only.rows, only.last_key, only.done) == ([], None, True)
        chunks = await scan_all(view, nokey, 2, "n % 2 = 1 AND label LIKE 'row %'")
        assert same_rows([e for c in chunks for e in c.rows]) == same_rows(
            [e for e in inserted if e.after["n"] % 2 == 1 and e.after["label"] is not None]
        )
        assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
        with pytest.raises(SourceError, match="no primary key"):
            await anext(aiter(view.scan(nokey, ["1"], 3, None)))
        await view.close()
        with pytest.raises(SourceError) as refused:
            await reader.read_chunk(nokey, None, 3, None)
        assert str(refused.value) == (
            f"table {s}.nokey has no primary key: a table without a primary key can only be "
            "read in an initial snapshot's consistent view (add a primary key to read it in "
            "chunks)"
        )
    finally:
        await reader.close()


async def test_a_role_with_select_and_replication_only_reads_chunks_and_watermarks(pg_case, pg_dsn):
    s, role = pg_case.schema, f"{pg_case.name}_ro"
    pg_case.execute(
        f"CREATE TABLE {s}.t (id int PRIMARY KEY, v text)",
        f"INSERT INTO {s}.t SELECT g, g::text FROM generate_series(1, 5) g",
        f"CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'ro-secret'",
        f"GRANT USAGE ON SCHEMA {s} TO {role}",
        f"GRANT SELECT ON {s}.t TO {role}",
    )
    dsn = pg_dsn.replace("postgres:postgres@", f"{role}:ro-secret@")
    reader = make_source(pg_case, dsn=dsn).snapshot_reader()
    try:
        before = wal_lsn(pg_case)
        mark = await reader.watermark()
        assert isinstance(mark, PgPosition) and mark.commit_lsn >= before
        (table,) = await reader.tables()
        chunks = await read_all(reader, table, 2)
        assert [e.after for c in chunks for e in c.rows] == [
            {"id": i, "v": str(i)} for i in range(1, 6)
        ]
        assert reader.reached(PgPosition(mark.commit_lsn), mark)
        assert not reader.reached(PgPosition(mark.commit_lsn - 1), mark)
    finally:
        await reader.close()
        pg_case.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


async def test_a_scan_of_200k_rows_keeps_memory_bounded(pg_case):
    s = pg_case.schema
    pg_case.execute(
        f"CREATE TABLE {s}.big (id int PRIMARY KEY, label text, n bigint)",
        f"INSERT INTO {s}.big SELECT g, md5(g::text) || md5(g::text), g * 7 FROM generate_series(1, 200000) g",
    )
    source = make_source(pg_case)
    await source.prepare(None)
    reader = source.snapshot_reader()

    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    try:
        table = table_of(await reader.tables(), "big")
        view = await reader.consistent()
        assert view is not None
        base, peak, rows, chunks = rss_mb(), 0.0, 0, 0
        started = time.monotonic()
        async for chunk in view.scan(table, None, 1024, None):
            rows += len(chunk.rows)
            chunks += 1
            peak = max(peak, rss_mb())
        elapsed = time.monotonic() - started
        await view.close()
    finally:
        await reader.close()
        await source.close()
    assert rows == 200_000 and chunks == 196 and chunk.done
    growth = peak - base
    print(f"\n200,000 rows in {chunks} chunks in {elapsed:.1f} s; RSS growth {growth:.1f} MB")
    assert growth < 60


# --- heartbeats on demand -------------------------------------------------------------------


@pytest.mark.parametrize("reader", ["inline", "process"])
async def test_a_heartbeat_asked_for_comes_within_two_seconds_on_an_idle_database(pg_case, reader):
    s = pg_case.schema
    pg_case.execute(f"CREATE TABLE {s}.t (id int PRIMARY KEY)", f"CREATE TABLE {s}.other (id int)")
    source = make_source(pg_case, reader=reader)
    await source.prepare(None)
    pg_case.execute(f"ALTER PUBLICATION cdcd_{pg_case.name} DROP TABLE {s}.other")
    streamed = Streamed(source, await source.start_position(), ack=reader == "process")
    try:
        pg_case.execute(f"INSERT INTO {s}.t VALUES (1)")
        commit = await streamed.wait_for(lambda i: isinstance(i, Commit))
        pg_case.execute(f"INSERT INTO {s}.other VALUES (1)")  # WAL the stream skips
        if reader == "inline":
            # The commit is not acknowledged yet (Kafka has not taken it): the heartbeat
            # waits for the ack, which comes after the request.
            asyncio.get_running_loop().call_later(
                0.4, lambda: asyncio.ensure_future(source.ack(commit.position))
            )
        mark = wal_lsn(pg_case)
        asked = time.monotonic()
        source.heartbeat_soon()
        beat = await streamed.wait_for(
            lambda i: (
                isinstance(i, Commit) and i.extra == HEARTBEAT and i.position.commit_lsn >= mark
            ),
            timeout=10,
        )
        waited = time.monotonic() - asked
    finally:
        await streamed.stop()
    print(f"\n{reader}: heartbeat at {beat.position} >= {PgPosition(mark)} after {waited:.2f} s")
    assert waited < 2.0
