"""The binlog event handling (``MysqlSource.consume``) fed with event packets built here.

Covers the MySQL-only paths no MariaDB server produces: MySQL GTID events and their GTID
set arithmetic, compressed transactions (TRANSACTION_PAYLOAD_EVENT), and other events
that cannot be decoded, which must stop the stream instead of being skipped.
"""

from __future__ import annotations

import struct
import uuid

import pytest

from cdcd.errors import DecodeError
from cdcd.events import Commit, SchemaChange
from cdcd.positions import MysqlPosition
from cdcd.sources.mysql.checks import ServerInfo
from cdcd.sources.mysql.config import MysqlSourceConfig
from cdcd.sources.mysql.source import MysqlSource
from cdcd.sources.mysql.start import Start

SERVER_UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


class Binlog:
    """Builds binlog events (v4 header, CRC32 checksum placeholder) at growing positions."""

    def __init__(self, first_pos: int = 4) -> None:
        self.pos = first_pos

    def event(self, event_type: int, body: bytes, timestamp: int = 1_700_000_000) -> bytes:
        """The dump protocol's packet: OK byte, header, body, checksum."""
        size = 19 + len(body) + 4
        self.pos += size
        header = struct.pack("<IBIIIH", timestamp, event_type, 1, size, self.pos, 0)
        return b"\x00" + header + body + b"\x00" * 4

    def gtid(self, server_uuid: str, gno: int) -> bytes:
        body = b"\x01" + uuid.UUID(server_uuid).bytes + struct.pack("<Q", gno) + b"\x02"
        body += struct.pack("<QQ", 0, 0)  # last_committed, sequence_number
        return self.event(0x21, body)

    def query(self, statement: str, schema: str = "shop") -> bytes:
        status = b""
        body = struct.pack("<IIBHH", 7, 0, len(schema), 0, len(status)) + status
        body += schema.encode() + b"\x00" + statement.encode()
        return self.event(0x02, body)

    def xid(self, xid: int) -> bytes:
        return self.event(0x10, struct.pack("<Q", xid))

    def rotate(self, next_file: str, position: int = 4) -> bytes:
        return self.event(0x04, struct.pack("<Q", position) + next_file.encode(), timestamp=0)


def log_pos(packet: bytes) -> int:
    """The position after the event, from its header."""
    return struct.unpack_from("<I", packet, 14)[0]


HERE = f"uuid:{SERVER_UUID}"  # the server the positions were read from


def source(flavor: str = "mysql") -> MysqlSource:
    config = MysqlSourceConfig(
        kind="mysql", dsn="mysql://root@127.0.0.1:3306/", tables=["shop.orders"]
    )
    src = MysqlSource(config, name="unit")
    src.info = ServerInfo(flavor, "8.0.36", {"gtid_mode": "ON", "server_uuid": SERVER_UUID})
    src.table_databases = {"shop"}  # as the catalog says at stream start
    return src


def run(events, start: Start, flavor: str = "mysql") -> list:
    chunks: list = []
    source(flavor).consume(events, start, chunks.append)
    return [item for chunk in chunks for item in chunk]


def test_gtid_transactions_and_ddl_move_the_mysql_gtid_set():
    log = Binlog()
    events = [
        log.rotate("binlog.000007", 4),
        log.gtid(SERVER_UUID, 11),
        log.query("BEGIN"),
        log.xid(100),
        log.gtid(SERVER_UUID, 12),
        log.query("ALTER TABLE shop.orders ADD COLUMN note TEXT"),
    ]
    items = run(events, Start(f"{SERVER_UUID}:1-10", None, None))
    commits = [i for i in items if isinstance(i, Commit)]
    assert [c.position for c in commits] == [
        MysqlPosition("mysql", f"{SERVER_UUID}:1-11", "binlog.000007", log_pos(events[3]), 0, HERE),
        MysqlPosition("mysql", f"{SERVER_UUID}:1-12", "binlog.000007", log_pos(events[5]), 0, HERE),
    ]
    assert commits[0].txid == f"{SERVER_UUID}:11"
    [ddl] = [i for i in items if isinstance(i, SchemaChange)]
    assert ddl.namespace == "shop" and ddl.ddl.startswith("ALTER TABLE")
    assert ddl.source["gtid"] == f"{SERVER_UUID}:12"


def test_a_gap_in_the_gtid_set_is_kept():
    log = Binlog()
    events = [
        log.rotate("binlog.000001"),
        log.gtid(SERVER_UUID, 20),
        log.query("BEGIN"),
        log.xid(1),
    ]
    [commit] = [
        i for i in run(events, Start(f"{SERVER_UUID}:1-10", None, None)) if isinstance(i, Commit)
    ]
    assert commit.position.gtid_set == f"{SERVER_UUID}:1-10:20"


@pytest.mark.parametrize(
    ("event_type", "says"),
    [
        (0x28, "compressed transaction (binlog_transaction_compression = ON): set it OFF"),
        (0xA5, "compressed MariaDB event (log_bin_compress = ON): set it OFF"),
        (0xA6, "compressed MariaDB event"),
        (0x1A, "INCIDENT"),
        (0x7E, "unknown type 0x7e"),
    ],
)
def test_an_event_that_cannot_be_decoded_stops_the_stream(event_type, says):
    log = Binlog()
    payload = bytes(range(40))  # its content does not matter: it is never skipped
    events = [log.rotate("binlog.000002"), log.gtid(SERVER_UUID, 5), log.event(event_type, payload)]
    handed: list = []
    with pytest.raises(DecodeError) as info:
        source().consume(events, Start(f"{SERVER_UUID}:1-4", None, None), handed.append)
    assert says in str(info.value)
    assert "binlog.000002:" in str(info.value)
    assert not any(isinstance(i, Commit) for chunk in handed for i in chunk)


def test_harmless_undecoded_events_are_passed_over():
    log = Binlog()
    events = [
        log.rotate("binlog.000003"),
        log.event(0x29, b"\x00" * 8),  # HEARTBEAT_V2
        log.gtid(SERVER_UUID, 1),
        log.query("BEGIN"),
        log.event(0x24, b"\x00" * 12),  # TRANSACTION_CONTEXT (group replication)
        log.xid(9),
    ]
    commits = [i for i in run(events, Start("", None, None)) if isinstance(i, Commit)]
    assert [c.position.gtid_set for c in commits] == [f"{SERVER_UUID}:1"]
