"""The benchmark workload: table ``bench.orders``, a backlog, and a steady-rate mode.

Backlog (the reference workload of BASELINE.md): N single-row inserts in transactions of
1,000, then N/5 single-row updates and N/10 single-row deletes in transactions of 100;
1.3 N row events in all. Each transaction is sent as one multi-statement string, so the
database sees single-row statements while the loader stays fast.

Steady mode: single-row inserts committed at a fixed rate in small transactions; for each
transaction the time just before it was sent is written out, so that a reader's latency
is measured from the commit (conservatively: the commit happens after that instant).

As a command (the runner imports the same functions):

    python benchmarks/load.py backlog --db postgres --dsn postgresql://... -n 500000
    python benchmarks/load.py steady --db mysql --dsn mysql://... --rate 5000 --seconds 30 \
        --first-id 1000000000 --out commits.json
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

SCHEMA = "bench"
TABLE = "orders"
INSERT_TX = 1000
CHANGE_TX = 100
STEADY_FIRST_ID = 1_000_000_000  # steady-mode ids never collide with a backlog's
BIG_TX_FIRST_ID = 2_000_000_000  # nor the single big transaction's

_STATUSES = ("new", "paid", "packed", "shipped", "delivered", "cancelled", "returned")
_FILLER = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud"
)
_BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)

SNAPSHOT_TABLE = "snapshot_orders"  # the snapshot phase's table: the same shape


def pg_ddl(table: str = TABLE) -> str:
    """(Re)create ``bench.<table>`` in PostgreSQL."""
    return f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
DROP TABLE IF EXISTS {SCHEMA}.{table};
CREATE TABLE {SCHEMA}.{table} (
    id          bigint PRIMARY KEY,
    customer_id int NOT NULL,
    status      varchar(16) NOT NULL,
    amount      numeric(12,2) NOT NULL,
    note        text NOT NULL,
    created_at  timestamp(6) NOT NULL,
    attrs       jsonb
);
"""


def mysql_drop(table: str = TABLE) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {SCHEMA}; DROP TABLE IF EXISTS {SCHEMA}.{table}"


def mysql_create(table: str = TABLE) -> str:
    return f"""CREATE TABLE {SCHEMA}.{table} (
    id          BIGINT PRIMARY KEY,
    customer_id INT NOT NULL,
    status      VARCHAR(16) NOT NULL,
    amount      DECIMAL(12,2) NOT NULL,
    note        TEXT NOT NULL,
    created_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    attrs       JSON
) ENGINE=InnoDB"""


PG_DDL = pg_ddl()
MYSQL_DROP = mysql_drop()
MYSQL_CREATE = mysql_create()


@dataclass(frozen=True)
class Workload:
    """The backlog's size and shape; ``events`` is what every reader must deliver."""

    n: int
    insert_tx: int = INSERT_TX
    change_tx: int = CHANGE_TX

    @property
    def inserts(self) -> int:
        return self.n

    @property
    def updates(self) -> int:
        return self.n // 5

    @property
    def deletes(self) -> int:
        return self.n // 10

    @property
    def events(self) -> int:
        return self.inserts + self.updates + self.deletes

    def describe(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "inserts": self.inserts,
            "updates": self.updates,
            "deletes": self.deletes,
            "events": self.events,
            "table": f"{SCHEMA}.{TABLE}",
            "columns": "bigint id, int, varchar(16), decimal(12,2), ~100-char text, "
            "timestamp(6), small json",
        }


# -- rows --------------------------------------------------------------------------


def _row_values(row_id: int, created_at: datetime | None = None) -> str:
    cents = (row_id * 7919) % 10_000_000
    rotate = row_id % 50
    note = f"order {row_id:012d} " + (_FILLER[rotate:] + _FILLER[:rotate])[: 100 - 19]
    when = created_at or (_BASE_TIME + timedelta(milliseconds=row_id))
    channel = ("web", "app", "shop")[row_id % 3]
    gift = "true" if row_id % 11 == 0 else "false"
    attrs = f'{{"channel": "{channel}", "items": {row_id % 7 + 1}, "gift": {gift}}}'
    return (
        f"({row_id}, {(row_id * 31) % 100_000}, '{_STATUSES[row_id % 7]}', "
        f"{cents // 100}.{cents % 100:02d}, '{note}', "
        f"'{when.strftime('%Y-%m-%d %H:%M:%S.%f')}', '{attrs}')"
    )


def _insert(row_id: int, created_at: datetime | None = None, table: str = TABLE) -> str:
    return (
        f"INSERT INTO {SCHEMA}.{table} (id, customer_id, status, amount, note, created_at, "
        f"attrs) VALUES {_row_values(row_id, created_at)}"
    )


def _transactions(workload: Workload) -> Iterator[list[str]]:
    """The backlog as transactions, each a list of single-row statements."""
    n = workload.n
    for first in range(1, n + 1, workload.insert_tx):
        yield [_insert(i) for i in range(first, min(first + workload.insert_tx, n + 1))]
    updates = [
        f"UPDATE {SCHEMA}.{TABLE} SET status = 'shipped', amount = amount + 1.00 "
        f"WHERE id = {1 + 5 * k}"
        for k in range(workload.updates)
    ]
    deletes = [
        f"DELETE FROM {SCHEMA}.{TABLE} WHERE id = {3 + 10 * k}" for k in range(workload.deletes)
    ]
    for changes in (updates, deletes):
        for first in range(0, len(changes), workload.change_tx):
            yield changes[first : first + workload.change_tx]


# -- connections ---------------------------------------------------------------------


def mysql_connect(dsn: str, database: str | None = None) -> Any:
    """A PyMySQL connection that accepts several statements in one query."""
    import pymysql
    from pymysql.constants import CLIENT

    url = urlsplit(dsn)
    return pymysql.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        database=database,
        autocommit=True,
        client_flag=CLIENT.MULTI_STATEMENTS,
    )


def mysql_script(conn: Any, script: str) -> None:
    """Run several statements sent as one string, consuming every result."""
    with conn.cursor() as cur:
        cur.execute(script)
        while cur.nextset():
            pass


class _Executor:
    """Sends one transaction (a list of statements) as one round trip."""

    def __init__(self, db: str, dsn: str, *, durable: bool = False) -> None:
        self.db = db
        if db == "postgres":
            import psycopg

            self.conn = psycopg.connect(dsn, autocommit=True)
            self._pg = self.conn.pgconn
            if durable:
                # A walsender sends only WAL flushed to disk: with synchronous_commit off
                # (as the test server runs) a commit waits up to wal_writer_delay (200 ms)
                # before any reader can see it. Production servers commit synchronously.
                self.conn.execute("SET synchronous_commit = on")
        else:
            self.conn = mysql_connect(dsn)

    def transaction(self, statements: list[str]) -> None:
        if self.db == "postgres":
            from psycopg import pq

            script = "BEGIN;" + ";".join(statements) + ";COMMIT"
            result = self._pg.exec_(script.encode())
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise RuntimeError(
                    "PostgreSQL refused the workload: "
                    + (result.error_message or b"").decode(errors="replace")
                )
        else:
            mysql_script(self.conn, "START TRANSACTION;" + ";".join(statements) + ";COMMIT")

    def close(self) -> None:
        self.conn.close()


# -- schema, backlog, steady -----------------------------------------------------------


def create_table(db: str, dsn: str, table: str = TABLE) -> None:
    """(Re)create ``bench.<table>`` (PostgreSQL: in the DSN's database)."""
    if db == "postgres":
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(pg_ddl(table))
    else:
        conn = mysql_connect(dsn)
        try:
            mysql_script(conn, mysql_drop(table))
            mysql_script(conn, mysql_create(table))
        finally:
            conn.close()


def load_backlog(
    db: str, dsn: str, workload: Workload, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the backlog's transactions; returns how long it took."""
    executor = _Executor(db, dsn)
    started = time.monotonic()
    transactions = 0
    try:
        for statements in _transactions(workload):
            executor.transaction(statements)
            transactions += 1
            if progress is not None and transactions % 100 == 0:
                progress(f"{transactions} transactions")
    finally:
        executor.close()
    seconds = time.monotonic() - started
    return {"transactions": transactions, "load_s": round(seconds, 3)}


@dataclass(frozen=True)
class GeneratedRows:
    """``rows`` rows of the workload's shape in ``bench.<table>``, ids from ``first_id``,
    generated by the server (``INSERT ... SELECT``) in statements of ``batch`` rows (0: one
    statement, one transaction). Inserts only: no tombstones to wait for."""

    rows: int
    first_id: int = BIG_TX_FIRST_ID
    table: str = TABLE
    batch: int = 0
    deletes: int = 0

    @property
    def events(self) -> int:
        return self.rows

    def describe(self) -> dict[str, Any]:
        return {"rows": self.rows, "table": f"{SCHEMA}.{self.table}", "first_id": self.first_id}

    def spans(self) -> list[tuple[int, int]]:
        """The first and last id of each statement."""
        step, end = self.batch or self.rows, self.first_id + self.rows
        return [(first, min(first + step, end) - 1) for first in range(self.first_id, end, step)]


class BigTransaction(GeneratedRows):
    """One transaction of ``rows`` inserts (``--big-tx``): memory must stay bounded."""


def snapshot_table(rows: int) -> GeneratedRows:
    """The snapshot phase's table (``--snapshot-rows``): ids 1..rows, loaded in
    statements of 100,000 rows."""
    return GeneratedRows(rows, first_id=1, table=SNAPSHOT_TABLE, batch=100_000)


# The generated rows' constant parts (the note's rest, the attrs).
_GENERATED_NOTE = _FILLER[: 100 - 19].replace("'", "")
_GENERATED_ATTRS = '{"channel": "web", "items": 3, "gift": false}'


def _pg_insert_select(table: str, first: int, last: int) -> str:
    return (
        f"INSERT INTO {SCHEMA}.{table} (id, customer_id, status, amount, note, "
        f"created_at, attrs) SELECT g, (g * 31) % 100000, 'paid', (g % 1000000) / 100.0, "
        f"'order ' || lpad(g::text, 12, '0') || ' {_GENERATED_NOTE}', "
        f"timestamp '2024-01-01' + (g % 86400000) * interval '1 millisecond', "
        f"'{_GENERATED_ATTRS}'::jsonb FROM generate_series({first}::bigint, {last}::bigint) g"
    )


def _mysql_insert_select(table: str, first: int, last: int) -> str:
    return (
        f"INSERT INTO {SCHEMA}.{table} (id, customer_id, status, amount, note, "
        f"created_at, attrs) WITH RECURSIVE seq(n) AS (SELECT {first} UNION ALL "
        f"SELECT n + 1 FROM seq WHERE n < {last}) SELECT n, (n * 31) % 100000, 'paid', "
        f"(n % 1000000) / 100, CONCAT('order ', LPAD(n, 12, '0'), ' {_GENERATED_NOTE}'), "
        f"TIMESTAMP('2024-01-01') + INTERVAL (n % 86400000) * 1000 MICROSECOND, "
        f"'{_GENERATED_ATTRS}' FROM seq"
    )


def load_generated(db: str, dsn: str, gen: GeneratedRows) -> dict[str, Any]:
    """Insert ``gen.rows`` rows, each statement generating ``gen.batch`` of them (all of
    them when 0) on the server: no row travels from here."""
    step = gen.batch or gen.rows
    spans = gen.spans()
    started = time.monotonic()
    if db == "postgres":
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            for first, last in spans:
                conn.execute(_pg_insert_select(gen.table, first, last))
    else:
        conn = mysql_connect(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                mariadb = "mariadb" in cur.fetchone()[0].lower()
                depth = "max_recursive_iterations" if mariadb else "cte_max_recursion_depth"
                cur.execute(f"SET SESSION {depth} = {step + 10}")
            for first, last in spans:
                mysql_script(conn, _mysql_insert_select(gen.table, first, last))
        finally:
            conn.close()
    seconds = round(time.monotonic() - started, 3)
    return {"rows": gen.rows, "statements": len(spans), "load_s": seconds}


def steady(
    db: str,
    dsn: str,
    *,
    rate: float,
    seconds: float,
    tx_rows: int,
    first_id: int,
    table: str = TABLE,
    stopped: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Insert ``rate`` rows per second for ``seconds`` into ``bench.<table>``, in
    transactions of ``tx_rows``.

    Returns, for each transaction, [first id, rows, send time ns, commit returned ns].
    Transactions follow a fixed schedule; one that falls behind is sent at once, and the
    load stops after ``seconds`` whether or not all were sent (the achieved rate is
    reported), or earlier once ``stopped()`` says so (checked between transactions).
    PostgreSQL commits with ``synchronous_commit = on``."""
    executor = _Executor(db, dsn, durable=True)
    interval_ns = int(tx_rows / rate * 1e9)
    count = int(rate * seconds) // tx_rows
    commits: list[list[int]] = []
    next_id = first_id
    start_ns = time.time_ns()
    behind = 0
    try:
        end_ns = start_ns + int(seconds * 1e9)
        for k in range(count):
            due = start_ns + k * interval_ns
            now = time.time_ns()
            if now > end_ns or stopped():
                break
            if now < due:
                time.sleep((due - now) / 1e9)
            elif now - due > interval_ns:
                behind += 1
            created = datetime.now(UTC).replace(tzinfo=None)
            statements = [_insert(next_id + j, created, table) for j in range(tx_rows)]
            sent = time.time_ns()
            executor.transaction(statements)
            commits.append([next_id, tx_rows, sent, time.time_ns()])
            next_id += tx_rows
    finally:
        executor.close()
    elapsed = (time.time_ns() - start_ns) / 1e9
    return {
        "rate": rate,
        "tx_rows": tx_rows,
        "transactions": len(commits),
        "rows": len(commits) * tx_rows,
        "achieved_rate": round(len(commits) * tx_rows / elapsed, 1) if elapsed else None,
        "late_transactions": behind,
        "commits": commits,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("schema", "backlog", "steady"):
        p = sub.add_parser(name)
        p.add_argument("--db", choices=("postgres", "mysql"), required=True)
        p.add_argument("--dsn", required=True)
        if name == "backlog":
            p.add_argument("-n", type=int, default=500_000, help="inserts (default 500000)")
        if name == "steady":
            p.add_argument("--rate", type=float, default=5000.0, help="rows per second")
            p.add_argument("--seconds", type=float, default=30.0)
            p.add_argument("--tx-rows", type=int, default=10)
            p.add_argument("--first-id", type=int, default=STEADY_FIRST_ID)
            p.add_argument("--table", default=TABLE, help=f"bench.<table> (default {TABLE})")
            p.add_argument("--out", required=True, help="JSON file for the commit times")
    args = parser.parse_args(argv)
    if args.mode == "schema":
        create_table(args.db, args.dsn)
    elif args.mode == "backlog":
        print(json.dumps(load_backlog(args.db, args.dsn, Workload(args.n))))
    else:
        # SIGTERM ends the load after the transaction in flight (its commit is recorded).
        stop: list[bool] = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
        result = steady(
            args.db,
            args.dsn,
            rate=args.rate,
            seconds=args.seconds,
            tx_rows=args.tx_rows,
            first_id=args.first_id,
            table=args.table,
            stopped=lambda: bool(stop),
        )
        with open(args.out, "w") as fh:
            json.dump(result, fh)
        result.pop("commits")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
