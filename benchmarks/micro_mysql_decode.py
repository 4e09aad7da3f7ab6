"""Micro-benchmark of the MySQL/MariaDB binlog decoding (``MysqlSource.consume``).

No server and no Kafka: binlog event packets are generated here, as the dump protocol
hands them to cdcd (OK byte, v4 header, body, checksum), for a table like the bench's
``orders`` (BIGINT key, INT, VARCHAR(16), DECIMAL(12,2), ~100-character TEXT,
TIMESTAMP(6), small JSON): N single-row inserts, N/5 updates and N/10 deletes, each a
statement of its own (a TABLE_MAP then a rows event), in transactions of ``--tx``. The
packets are built once; then ``consume`` decodes them ``--rounds`` times and the fastest
round counts (a shared machine slows some rounds down, never speeds one up).

The byte layouts are the servers' own: MySQL 8.0 (GTID events, ``*_ROWS_V2``, binary JSON,
padding bits of the columns-present bitmap set, as MySQL 8 writes them) or MariaDB 10.11
(its GTID events, ``*_ROWS_V1``, JSON as text, padding bits of the row's NULL bitmap set);
``--present-padding`` overrides the columns-present padding bits, to compare decoders on
the same path.

    .venv/bin/python benchmarks/micro_mysql_decode.py                   # this tree's code
    .venv/bin/python benchmarks/micro_mysql_decode.py --flavor mariadb
    .venv/bin/python benchmarks/micro_mysql_decode.py --against runtime
        # rounds alternate between this tree and the cdcd/ of git ref "runtime"
    .venv/bin/python benchmarks/micro_mysql_decode.py --code /some/other/tree

Prints a JSON line per tree: µs per row event (fastest and median round), events per
second, and how many rows events python-mysql-replication decoded (the slow path). On a
shared machine prefer ``--against`` (both measured in the same minutes) to figures of
separate runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

SERVER_UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
TABLE_ID = 301
SCHEMA, TABLE = "bench", "orders"
COLUMNS = ("id", "customer_id", "status", "amount", "note", "created_at", "attrs")
_STATUSES = ("new", "paid", "packed", "shipped", "delivered", "cancelled", "returned")
_FILLER = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud"
)
_BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z

# Event types
_QUERY, _ROTATE, _FORMAT_DESCRIPTION, _XID, _TABLE_MAP = 0x02, 0x04, 0x0F, 0x10, 0x13
_MYSQL_GTID, _MARIADB_GTID = 0x21, 0xA2
_ROWS = {  # (flavor, op): event type; MySQL 8 writes v2 rows events, MariaDB 10.11 v1
    ("mysql", "c"): 0x1E,
    ("mysql", "u"): 0x1F,
    ("mysql", "d"): 0x20,
    ("mariadb", "c"): 0x17,
    ("mariadb", "u"): 0x18,
    ("mariadb", "d"): 0x19,
}


def _lenenc(value: int) -> bytes:
    if value < 0xFB:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


class Binlog:
    """Event packets at growing positions (a CRC32 placeholder: checksums are not verified)."""

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor
        self.pos = 4

    def event(self, event_type: int, body: bytes, timestamp: int = 1_700_000_000) -> bytes:
        size = 19 + len(body) + 4
        self.pos += size
        header = struct.pack("<IBIIIH", timestamp, event_type, 1, size, self.pos, 0)
        return b"\x00" + header + body + b"\x00" * 4

    def rotate(self, file: str) -> bytes:
        return self.event(_ROTATE, struct.pack("<Q", 4) + file.encode(), timestamp=0)

    def format_description(self) -> bytes:
        return self.event(_FORMAT_DESCRIPTION, struct.pack("<H", 4) + b"8.0.36".ljust(50, b"\0"))

    def gtid(self, gno: int) -> bytes:
        if self.flavor == "mariadb":  # seq_no, domain, flags (transactional), padding
            return self.event(_MARIADB_GTID, struct.pack("<QIB", gno, 0, 0x0C) + b"\0" * 6)
        body = b"\x00" + uuid.UUID(SERVER_UUID).bytes + struct.pack("<Qb", gno, 2)
        return self.event(_MYSQL_GTID, body + struct.pack("<QQ", gno - 1, gno))

    def query(self, statement: str, thread_id: int = 7) -> bytes:
        head = struct.pack("<IIBHH", thread_id, 0, len(SCHEMA), 0, 0)
        return self.event(_QUERY, head + SCHEMA.encode() + b"\0" + statement.encode())

    def xid(self, xid: int) -> bytes:
        return self.event(_XID, struct.pack("<Q", xid))

    def table_map(self) -> bytes:
        mysql = self.flavor == "mysql"
        types = bytes([0x08, 0x03, 0x0F, 0xF6, 0xFC, 0x11, 0xF5 if mysql else 0xFC])
        # VARCHAR(16) utf8mb4: 64 bytes; DECIMAL(12,2); TEXT: 2 length bytes;
        # TIMESTAMP(6); JSON (or MariaDB's LONGTEXT): 4 length bytes
        metadata = b"\x40\x00" + b"\x0c\x02" + b"\x02" + b"\x06" + b"\x04"
        nullable = b"\x40"  # attrs
        names = b"".join(_lenenc(len(n)) + n.encode() for n in COLUMNS)
        # utf8mb4_0900_ai_ci (MySQL 8); MariaDB: utf8mb4_general_ci, attrs utf8mb4_bin
        charset = b"\xfc\xff\x00" if mysql else b"\x2d\x02\x2e"
        optional = (
            b"\x01\x01\x00"  # SIGNEDNESS: none unsigned
            + b"\x02"
            + _lenenc(len(charset))
            + charset  # DEFAULT_CHARSET
            + b"\x04"
            + _lenenc(len(names))
            + names  # COLUMN_NAME
            + b"\x08\x01\x00"  # SIMPLE_PRIMARY_KEY: column 0
        )
        body = (
            TABLE_ID.to_bytes(6, "little")
            + b"\x01\x00"
            + bytes([len(SCHEMA)])
            + SCHEMA.encode()
            + b"\0"
            + bytes([len(TABLE)])
            + TABLE.encode()
            + b"\0"
            + _lenenc(len(COLUMNS))
            + types
            + _lenenc(len(metadata))
            + metadata
            + nullable
            + optional
        )
        return self.event(_TABLE_MAP, body)

    def rows(self, op: str, images: list[bytes], present: bytes) -> bytes:
        event_type = _ROWS[self.flavor, op]
        head = TABLE_ID.to_bytes(6, "little") + b"\x01\x00"
        if self.flavor == "mysql":
            head += b"\x02\x00"  # v2: extra data, only its own length
        bitmaps = present * 2 if op == "u" else present
        return self.event(event_type, head + _lenenc(len(COLUMNS)) + bitmaps + b"".join(images))


# -- values ----------------------------------------------------------------------------


def _decimal_12_2(value: Decimal) -> bytes:
    """DECIMAL(12,2) as MySQL stores it: 1 leading digit (1 byte), 9 digits (4 bytes),
    2 fraction digits (1 byte), big-endian, the sign bit flipped (values >= 0 here)."""
    units = int(value * 100)
    whole, fraction = divmod(units, 100)
    high, low = divmod(whole, 10**9)
    raw = bytearray(bytes([high]) + low.to_bytes(4, "big") + bytes([fraction]))
    raw[0] ^= 0x80
    return bytes(raw)


def _timestamp2_6(micros: int) -> bytes:
    seconds, fraction = divmod(micros, 1_000_000)
    return seconds.to_bytes(4, "big") + fraction.to_bytes(3, "big")


def _mysql_json_object(members: list[tuple[str, Any]]) -> bytes:
    """A small binary JSON object (keys sorted as MySQL sorts them: by length, then bytes)
    of strings, small integers and booleans."""
    members = sorted(members, key=lambda kv: (len(kv[0]), kv[0]))
    count = len(members)
    header = 4 + count * 4 + count * 3
    keys = b"".join(k.encode() for k, _ in members)
    key_entries, value_entries, values = b"", b"", b""
    offset = header
    for key, _ in members:
        key_entries += struct.pack("<HH", offset, len(key))
        offset += len(key)
    for _, value in members:
        if isinstance(value, bool):
            value_entries += struct.pack("<BH", 0x04, 1 if value else 2)
        elif isinstance(value, int):
            value_entries += struct.pack("<Bh", 0x05, value)
        else:
            data = value.encode()
            value_entries += struct.pack("<BH", 0x0C, offset + len(values))
            values += _lenenc(len(data)) + data
    body = key_entries + value_entries + keys + values
    return b"\x00" + struct.pack("<HH", count, 4 + len(body)) + body


def row_image(row_id: int, flavor: str, *, status: str | None = None, plus: int = 0) -> bytes:
    """One row image of ``orders``, the values of benchmarks/load.py's rows."""
    cents = (row_id * 7919) % 10_000_000 + plus * 100
    rotate = row_id % 50
    note = f"order {row_id:012d} " + (_FILLER[rotate:] + _FILLER[:rotate])[: 100 - 19]
    channel = ("web", "app", "shop")[row_id % 3]
    items, gift = row_id % 7 + 1, row_id % 11 == 0
    if flavor == "mysql":
        attrs = _mysql_json_object([("channel", channel), ("items", items), ("gift", gift)])
        nulls = b"\x00"
    else:
        text = f'{{"channel": "{channel}", "items": {items}, "gift": {str(gift).lower()}}}'
        attrs = text.encode()
        nulls = b"\x80"  # MariaDB sets the NULL bitmap's unused bits
    status_bytes = (status or _STATUSES[row_id % 7]).encode()
    note_bytes = note.encode()
    return (
        nulls
        + struct.pack("<qi", row_id, (row_id * 31) % 100_000)
        + bytes([len(status_bytes)])
        + status_bytes
        + _decimal_12_2(Decimal(cents) / 100)
        + struct.pack("<H", len(note_bytes))
        + note_bytes
        + _timestamp2_6(_BASE_US + row_id * 1000)
        + struct.pack("<I", len(attrs))
        + attrs
    )


def workload(flavor: str, n: int, tx: int, present_padding: str) -> tuple[list[bytes], int]:
    """The packets, and how many row events they hold."""
    set_padding = present_padding == "set" or (present_padding == "server" and flavor == "mysql")
    present = b"\xff" if set_padding else b"\x7f"
    log = Binlog(flavor)
    packets = [log.rotate("binlog.000001"), log.format_description()]
    statements: list[tuple[str, list[bytes]]] = []
    statements += [("c", [row_image(i, flavor)]) for i in range(1, n + 1)]
    statements += [
        ("u", [row_image(i, flavor), row_image(i, flavor, status="shipped", plus=1)])
        for i in range(1, n + 1, 5)
    ]
    statements += [("d", [row_image(i, flavor)]) for i in range(3, n + 1, 10)]
    gno = 1001
    for first in range(0, len(statements), tx):
        packets.append(log.gtid(gno))
        if flavor == "mysql":
            packets.append(log.query("BEGIN"))
        for op, images in statements[first : first + tx]:
            packets.append(log.table_map())
            packets.append(log.rows(op, images, present))
        packets.append(log.xid(gno))
        gno += 1
    return packets, len(statements)


# -- the run ---------------------------------------------------------------------------


def _source(flavor: str) -> tuple[Any, Any]:
    """An unconnected MysqlSource of this tree's code (or --code's), and its start."""
    from cdcd.sources.mysql.checks import ServerInfo
    from cdcd.sources.mysql.config import MysqlSourceConfig
    from cdcd.sources.mysql.source import MysqlSource

    try:
        from cdcd.sources.mysql.start import Start
    except ImportError:  # before the source was split into modules
        from cdcd.sources.mysql.source import _Start as Start  # type: ignore[attr-defined,no-redef]

    config = MysqlSourceConfig(
        kind="mysql", dsn="mysql://root@127.0.0.1:3306/", tables=[f"{SCHEMA}.{TABLE}"]
    )
    source = MysqlSource(config, name="micro")
    if flavor == "mysql":
        source.info = ServerInfo(flavor, "8.0.36", {"gtid_mode": "ON", "server_uuid": SERVER_UUID})
    else:
        source.info = ServerInfo(flavor, "10.11.6-MariaDB", {"server_id": "1"})
        source.connector = "mariadb"
    source.table_databases = {SCHEMA}
    start = f"{SERVER_UUID}:1-1000" if flavor == "mysql" else "0-1-1000"
    return source, Start(start, None, None)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """``args.rounds`` rounds of ``consume`` in this process, with the code of ``args.code``."""
    sys.path.insert(0, str(args.code.resolve()))
    import cdcd
    from cdcd.sources.mysql import binlog

    packets, events = workload(args.flavor, args.n, args.tx, args.present_padding)
    library_event = binlog.library_event
    slow = [0]

    def counted_library_event(packet: bytes, **kwargs: Any) -> Any:
        if kwargs.get("table_map") is not None:  # a rows event, not a TABLE_MAP
            slow[0] += 1
        return library_event(packet, **kwargs)

    binlog.library_event = counted_library_event  # type: ignore[assignment]
    times = []
    for _ in range(args.rounds):
        source, start = _source(args.flavor)
        changes = [0]

        def hand_over(items: list[Any], changes: list[int] = changes) -> None:
            if args.show and not changes[0]:
                for item in items[:2] + items[-2:]:
                    print(item)
            changes[0] += len(items)

        slow[0] = 0
        gc.collect()
        began = time.perf_counter()
        source.consume(packets, start, hand_over)
        times.append(time.perf_counter() - began)
    return {
        "code": str(Path(cdcd.__file__).parent.parent),
        "flavor": args.flavor,
        "present_padding": args.present_padding,
        "row_events": events,
        "items_per_round": changes[0],
        "slow_path_rows_events": slow[0],
        "rounds_s": [round(t, 3) for t in times],
    }


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    times, events = result["rounds_s"], result["row_events"]
    best = min(times)
    return {
        **result,
        "us_per_event_best": round(best / events * 1e6, 3),
        "us_per_event_median": round(statistics.median(times) / events * 1e6, 3),
        "events_per_s_best": round(events / best),
    }


def compare(args: argparse.Namespace) -> None:
    """Rounds alternating between this tree and the ``cdcd/`` of git ref ``args.against``,
    one process per round: both are measured in the same minutes."""
    this = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="cdcd-micro-") as other:
        archive = subprocess.run(
            ["git", "archive", args.against, "cdcd"], cwd=this, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", other], input=archive.stdout, check=True)
        common = [
            *("--flavor", args.flavor, "-n", str(args.n), "--tx", str(args.tx)),
            *("--present-padding", args.present_padding, "--rounds", "1"),
        ]
        results: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for name, tree in (("this", str(this)), (args.against, other)):
                run = subprocess.run(
                    [sys.executable, __file__, *common, "--code", tree],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(run.stdout.splitlines()[-1])
                if name in results:
                    results[name]["rounds_s"] += result["rounds_s"]
                else:
                    results[name] = {**result, "code": name}
    summaries = {name: _summary(result) for name, result in results.items()}
    for summary in summaries.values():
        print(json.dumps(summary))
    ratio = summaries[args.against]["us_per_event_best"] / summaries["this"]["us_per_event_best"]
    print(json.dumps({"speedup_vs_" + args.against: round(ratio, 3)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flavor", choices=["mysql", "mariadb"], default="mysql")
    parser.add_argument("-n", type=int, default=154_000, help="inserts (events: 1.3 n)")
    parser.add_argument("--tx", type=int, default=1000, help="row events per transaction")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--present-padding",
        choices=["server", "set", "clear"],
        default="server",
        help="unused bits of the columns-present bitmap: as the server writes them "
        "(MySQL 8 sets them, MariaDB clears them), or forced",
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="import cdcd from this source tree (default: the one holding this script)",
    )
    parser.add_argument(
        "--against", metavar="GIT_REF", help="alternate rounds with that ref's cdcd/"
    )
    parser.add_argument("--show", action="store_true", help="print the first events decoded")
    args = parser.parse_args()
    if args.against:
        compare(args)
    else:
        print(json.dumps(_summary(measure(args))))


if __name__ == "__main__":
    main()
