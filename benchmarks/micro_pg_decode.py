"""Micro-benchmark of PostgreSQL's catch-up decode path, without a server.

Generated XLogData frames (pgoutput protocol 1: Relation, Begin, Insert/Update/Delete,
Commit) go through the source's own read loop (``PostgresSource._read``: pgoutput
decode -> ``_on_message`` -> row converters -> events, in chunks) from a stand-in for
libpq's connection that hands them out as ``get_copy_data`` would during a catch-up.
Nothing is sent anywhere; the figure is the source's CPU cost per event.

The backlog: ``--transactions`` transactions (200 by default) of 1,000 row changes
each, on two tables: ``orders`` (REPLICA IDENTITY DEFAULT: inserts, updates without the
old row, some that change the primary key, deletes of the key) and ``accounts``
(REPLICA IDENTITY FULL: updates with the old row and an unchanged TOASTed column,
deletes of the whole row). Columns of common types: int4, int8, varchar, numeric(12,2),
timestamptz, bool, text.

    .venv/bin/python benchmarks/micro_pg_decode.py                 # this tree's code
    .venv/bin/python benchmarks/micro_pg_decode.py --against runtime
        # rounds alternate between this tree and the code of git ref "runtime"

On a shared machine, compare the best of several rounds (``--rounds``), and prefer
``--against`` (both trees measured in the same minutes) to figures of separate runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_EPOCH_US = 946_684_800 * 1_000_000
TX_CHANGES = 1_000
ORDERS, ACCOUNTS = 16_400, 16_401

# --- a small pgoutput encoder (proto.c's logicalrep_write_*) ---------------------------


def _string(value: str) -> bytes:
    return value.encode() + b"\x00"


def _tuple(values: tuple[str | None | bool, ...]) -> bytes:
    out = [struct.pack("!H", len(values))]
    for value in values:
        if value is None:
            out.append(b"n")
        elif value is True:  # an unchanged TOASTed value
            out.append(b"u")
        else:
            assert isinstance(value, str)
            data = value.encode()
            out.append(b"t" + struct.pack("!I", len(data)) + data)
    return b"".join(out)


def _relation(
    oid: int, name: str, identity: str, columns: list[tuple[str, int, int, bool]]
) -> bytes:
    out = [b"R", struct.pack("!I", oid), _string("public"), _string(name)]
    out.append(identity.encode() + struct.pack("!H", len(columns)))
    for column, type_oid, typmod, is_key in columns:
        out.append(bytes([is_key]) + _string(column) + struct.pack("!Ii", type_oid, typmod))
    return b"".join(out)


def _xlog(lsn: int, payload: bytes) -> bytes:
    return b"w" + struct.pack(">QQQ", lsn, lsn, 0) + payload


ORDER_COLUMNS = [
    ("id", 23, -1, True),
    ("customer_id", 20, -1, False),
    ("status", 1043, 20 + 4, False),
    ("amount", 1700, ((12 << 16) | 2) + 4, False),
    ("created_at", 1184, -1, False),
    ("paid", 16, -1, False),
    ("note", 25, -1, False),
]
ACCOUNT_COLUMNS = [
    ("id", 20, -1, True),
    ("owner", 1043, 64 + 4, False),
    ("balance", 1700, ((12 << 16) | 2) + 4, False),
    ("updated_at", 1184, -1, False),
    ("profile", 25, -1, False),  # TOASTed: unchanged in updates
]


def _fraction(i: int) -> str:
    # PostgreSQL prints no trailing zeros, and no fraction for whole seconds.
    return f".{(i * 7_919) % 1_000_000:06d}".rstrip("0").rstrip(".")


def _order(i: int) -> tuple[str | None, ...]:
    return (
        str(i),
        str(1_000 + i % 997),
        ("new", "paid", "shipped")[i % 3],
        f"{i % 100_000}.{i % 100:02d}",
        f"2024-05-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}{_fraction(i)}+00",
        "t" if i % 2 else "f",
        None if i % 5 == 0 else f"order {i} for customer {i % 997}",
    )


def _account(i: int, balance: int) -> tuple[str | None, ...]:
    return (
        str(i),
        f"owner-{i}",
        f"{balance}.{balance % 100:02d}",
        f"2024-06-{1 + i % 28:02d} 12:{i % 60:02d}:00.{i % 1000:03d}+00",
        "x" * 40,
    )


def backlog(transactions: int) -> tuple[list[bytes], int]:
    """The XLogData frames of the backlog and the number of change events they make."""
    frames = [
        _xlog(0x1000, _relation(ORDERS, "orders", "d", ORDER_COLUMNS)),
        _xlog(0x1001, _relation(ACCOUNTS, "accounts", "f", ACCOUNT_COLUMNS)),
    ]
    lsn, events, next_order = 0x10_0000, 0, 0
    for tx in range(transactions):
        commit_lsn = lsn + TX_CHANGES * 100 + 50
        ts = 1_717_000_000_000_000 + tx * 1_000 - PG_EPOCH_US
        frames.append(_xlog(lsn, b"B" + struct.pack("!QqI", commit_lsn, ts, 1_000 + tx)))
        for change in range(TX_CHANGES):
            lsn += 100
            slot = change % 20  # of 20 changes: 8 inserts, 6 updates, 2 deletes; 4 on accounts
            if slot < 8:
                payload = b"I" + struct.pack("!I", ORDERS) + b"N" + _tuple(_order(next_order))
                next_order += 1
            elif slot < 14:
                i = max(next_order - 1 - slot, 0)
                row = _order(i)
                if change % 100 == 8:  # the primary key changes: the old key is sent
                    key_only = (row[0],) + (None,) * (len(row) - 1)
                    row = (str(i + 10_000_000),) + row[1:]
                    payload = (
                        b"U"
                        + struct.pack("!I", ORDERS)
                        + b"K"
                        + _tuple(key_only)
                        + b"N"
                        + _tuple(row)
                    )
                    events += 1  # a delete and a create
                else:
                    payload = b"U" + struct.pack("!I", ORDERS) + b"N" + _tuple(row)
            elif slot < 16:
                key_only = (str(next_order - 100 - slot),) + (None,) * 6
                payload = b"D" + struct.pack("!I", ORDERS) + b"K" + _tuple(key_only)
            elif slot < 19:
                i = tx * 50 + change // 20
                old, new = _account(i, change), _account(i, change + 7)
                new_sent = new[:4] + (True,)  # the TOASTed profile is not sent again
                payload = (
                    b"U"
                    + struct.pack("!I", ACCOUNTS)
                    + b"O"
                    + _tuple(old)
                    + b"N"
                    + _tuple(new_sent)
                )
            else:
                payload = (
                    b"D"
                    + struct.pack("!I", ACCOUNTS)
                    + b"O"
                    + _tuple(_account(tx * 50 + change // 20, 1))
                )
            frames.append(_xlog(lsn, payload))
            events += 1
        frames.append(
            _xlog(commit_lsn, b"C" + struct.pack("!BQQq", 0, commit_lsn, commit_lsn + 40, ts))
        )
        lsn = commit_lsn + 40
    return frames, events


# --- the source, fed from memory ---------------------------------------------------------


class _Backlog:
    """What ``_read`` uses of psycopg's ``PGconn``: a backlog, nothing more for now (the
    last chunk goes out), then the end of the COPY. ``sock`` must be readable."""

    def __init__(self, frames: list[bytes], sock: socket.socket) -> None:
        self._frames = iter(frames)
        self._idle = False
        self.socket = sock.fileno()
        self.error_message = b""
        self.status = None
        self.ssl_in_use = False  # read by _read since TLS support

    def get_copy_data(self, _async: int) -> tuple[int, bytes]:
        frame = next(self._frames, None)
        if frame is not None:
            return len(frame), frame
        if not self._idle:
            self._idle = True
            return 0, b""
        return -1, b""

    def get_result(self) -> None:
        return None

    def consume_input(self) -> None:
        pass


class _Connection:
    closed = True  # no status updates

    def __init__(self, pgconn: _Backlog) -> None:
        self.pgconn = pgconn


def _source() -> Any:
    from cdcd.config import parse_config
    from cdcd.sources.postgres import build

    config = parse_config(
        {
            "name": "bench",
            "source": {"kind": "postgres", "dsn": "postgresql://cdc@localhost:5432/shop"},
            "sink": {"kind": "stdout"},
        }
    )
    source = build(config)

    async def primary_key(_oid: int) -> tuple[str, ...]:
        return ("id",)

    source._primary_key = primary_key  # no metadata connection
    return source


async def _drain(frames: list[bytes]) -> tuple[int, float]:
    from cdcd.errors import SourceUnavailableError
    from cdcd.events import ChangeEvent

    source = _source()
    left, right = socket.socketpair()
    right.send(b"x")
    source._repl = _Connection(_Backlog(frames, left))
    events = 0
    started = time.perf_counter()
    try:
        async for chunk in source._read():
            events += sum(1 for item in chunk if type(item) is ChangeEvent)
    except SourceUnavailableError:
        pass  # the end of the backlog
    elapsed = time.perf_counter() - started
    left.close()
    right.close()
    return events, elapsed


def measure(transactions: int, passes: int) -> dict[str, Any]:
    frames, expected = backlog(transactions)
    asyncio.run(_drain(frames[: 2 + 3 * 1002]))  # warm up (three transactions)
    timings = []
    for _ in range(passes):
        events, elapsed = asyncio.run(_drain(frames))
        if events != expected:
            raise SystemExit(f"{events} events decoded, {expected} expected")
        timings.append(elapsed / events * 1e6)
    return {"events": expected, "rows": transactions * TX_CHANGES, "us_per_event": timings}


# --- comparing two trees -----------------------------------------------------------------


def _run_tree(code: Path, transactions: int, passes: int) -> list[float]:
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--code",
            str(code),
            "--json",
            "--transactions",
            str(transactions),
            "--passes",
            str(passes),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=code,
    )
    figures: list[float] = json.loads(result.stdout)["us_per_event"]
    return figures


def compare(ref: str, transactions: int, passes: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cdcd-bench-") as tmp:
        other = Path(tmp)
        archive = subprocess.run(
            ["git", "archive", ref, "cdcd"], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(other)], input=archive.stdout, check=True)
        trees = {ref: other, "this tree": ROOT}
        figures: dict[str, list[float]] = {label: [] for label in trees}
        for round_ in range(rounds):
            for label, code in trees.items():
                figures[label] += _run_tree(code, transactions, passes)
            print(
                f"round {round_ + 1}/{rounds}: "
                + ", ".join(f"{label} {min(values):.2f}" for label, values in figures.items()),
                file=sys.stderr,
            )
    for label, values in figures.items():
        print(
            f"{label:>12}: best {min(values):.2f} us/event, median {statistics.median(values):.2f}"
            f" ({len(values)} passes)"
        )
    best = {label: min(values) for label, values in figures.items()}
    print(f"this tree / {ref}: {best['this tree'] / best[ref]:.3f} (best of each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=200, help="of 1,000 row changes each")
    parser.add_argument("--passes", type=int, default=3, help="passes over the backlog per process")
    parser.add_argument("--rounds", type=int, default=5, help="with --against: processes per tree")
    parser.add_argument("--against", metavar="GIT_REF", help="alternate with that ref's cdcd/")
    parser.add_argument("--code", type=Path, default=ROOT, help="the tree whose cdcd/ is measured")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.against:
        compare(args.against, args.transactions, args.passes, args.rounds)
        return
    sys.path.insert(0, str(args.code.resolve()))
    result = measure(args.transactions, args.passes)
    if args.json:
        print(json.dumps(result))
        return
    timings = result["us_per_event"]
    print(
        f"{result['rows']} row changes, {result['events']} events: best {min(timings):.2f} us/event, "
        f"median {statistics.median(timings):.2f} ({len(timings)} passes)"
    )


if __name__ == "__main__":
    main()
