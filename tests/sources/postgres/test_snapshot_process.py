"""PostgreSQL's snapshot scan in a process of its own (``source.snapshot_reader =
"process"``) against the real server: the same chunks as the daemon's own scan, every
type, composite and missing keys, a resumed scan, a condition; errors raised as they
came; the process gone when the scan is left early."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_snapshot_reader import alltypes_statements, make_source, scan_all, table_of

from cdcd.errors import SourceError
from cdcd.snapshot import Chunk, SnapshotTable

pytestmark = pytest.mark.integration


def plain(chunks: list[Chunk]) -> list[Any]:
    """What a chunk says, its rows' source blocks but for their read time."""
    out = []
    for c in chunks:
        rows = [
            (e.op, e.namespace, e.table, e.key, e.before, e.after, e.txid,
             {k: v for k, v in e.source.items() if not k.startswith("ts_")})
            for e in c.rows
        ]  # fmt: skip
        out.append((c.table, rows, c.last_key, c.done))
    return out


def children() -> set[int]:
    """The processes this test started that still run."""
    me = str(os.getpid())
    found = set()
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text() if pid.isdigit() else ""
            if stat and stat.split(") ")[1].split()[1] == me:
                found.add(int(pid))
    return found


async def test_a_scan_process_gives_the_chunks_the_daemon_reads_itself(pg_case):
    s = pg_case.schema
    with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
        pg_case.conn.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    ddl, inserts = alltypes_statements(s)
    with psycopg.connect(pg_case.dsn, autocommit=True, options=f"-c search_path={s},public") as c:
        for statement in [*ddl, *inserts]:
            c.execute(statement)
    pg_case.execute(
        f"CREATE TABLE {s}.k (a int, b text, n bigint, PRIMARY KEY (a, b))",
        f"INSERT INTO {s}.k SELECT g % 3, (ARRAY['NULL', '', '\\N', 'x'])[g % 4 + 1] || g, "
        f"g::int8 * 1000000007 FROM generate_series(1, 2500) g",
        f"CREATE TABLE {s}.nokey (v int, w text)",
        f"INSERT INTO {s}.nokey SELECT g, 'w' || g FROM generate_series(1, 50) g",
        f"CREATE TABLE {s}.empty (id int PRIMARY KEY)",
    )
    inline = make_source(pg_case).snapshot_reader()
    process = make_source(pg_case, snapshot_reader="process").snapshot_reader()
    try:
        tables = await inline.tables()
        view = await inline.consistent()
        assert view is not None
        # One view, both scans: the process joins the snapshot the daemon's view holds.
        twin = type(view)(process, view._holder, view.position, view.name, view.started_us)
        pg_case.execute(f"INSERT INTO {s}.k VALUES (9, 'late', 1)")
        for name, size, after, where in [
            ("alltypes", 1, None, None),
            ("k", 1000, None, None),
            ("k", 7, [1, "x11"], "n % 2 = 1"),
            ("nokey", 16, None, None),
            ("empty", 5, None, None),
        ]:
            table = table_of(tables, name)
            ours = [c async for c in view.scan(table, after, size, where)]
            theirs = [c async for c in twin.scan(table, after, size, where)]
            assert plain(theirs) == plain(ours), name
            assert all(c.table is table for c in theirs)
            for chunk in theirs:  # a chunk's rows share one source block, as inline
                assert len({id(e.source) for e in chunk.rows}) <= 1
        assert sum(len(c.rows) for c in await scan_all(twin, table_of(tables, "k"), 999)) == 2500
        await view.close()
    finally:
        await inline.close()
        await process.close()


async def test_a_scan_process_raises_the_error_and_is_gone_when_left_early(pg_case):
    s = pg_case.schema
    pg_case.execute(
        f"CREATE TABLE {s}.t (id int PRIMARY KEY, v text)",
        f"INSERT INTO {s}.t SELECT g, repeat('v', 200) FROM generate_series(1, 20000) g",
    )
    reader = make_source(pg_case, snapshot_reader="process").snapshot_reader()
    try:
        tables = await reader.tables()
        view = await reader.consistent()
        assert view is not None
        before = children()
        scan = view.scan(table_of(tables, "t"), None, 100, None)
        first = await scan.__anext__()
        assert len(first.rows) == 100 and len(children() - before) == 1
        await scan.aclose()  # left early: the process is stopped
        assert children() - before == set()
        gone = SnapshotTable(s, "gone", ("id",))
        with pytest.raises(SourceError, match="does not exist"):
            await scan_all(view, gone, 10)
        with pytest.raises(SourceError, match="bogus"):
            await scan_all(view, table_of(tables, "t"), 10, "bogus > 1")
        await view.close()
    finally:
        await reader.close()


async def test_a_slow_daemon_still_gets_the_tables_last_frame_whole(pg_case):
    """The process ends after its last chunk: what the pipe had not taken yet still comes
    (a small last frame left in the process's buffer by a full pipe once was lost)."""
    s = pg_case.schema
    pg_case.execute(
        f"CREATE TABLE {s}.wide (id int PRIMARY KEY, v text)",
        f"INSERT INTO {s}.wide SELECT g, repeat(md5(g::text), 40) FROM generate_series(1, 6005) g",
    )
    reader = make_source(pg_case, snapshot_reader="process").snapshot_reader()
    try:
        (table,) = await reader.tables()
        view = await reader.consistent()
        assert view is not None
        rows = 0
        async for chunk in view.scan(table, None, 500, None):  # ~650 KB a frame
            await asyncio.sleep(0.3)  # the pipe fills while the daemon is busy
            rows += len(chunk.rows)
        assert rows == 6005 and chunk.done
        await view.close()
    finally:
        await reader.close()
