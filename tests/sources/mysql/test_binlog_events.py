"""Binlog events built here: the event field parsers of ``binlog.py`` (pure functions
over a packet), and the decoding of whole streams (``MysqlSource.consume``).

Covers the MySQL-only paths no MariaDB server produces: MySQL GTID events and their GTID
set arithmetic, the padding bits MySQL 8 sets in a rows event's columns-present bitmap,
compressed transactions (TRANSACTION_PAYLOAD_EVENT), and other events that cannot be
decoded, which must stop the stream instead of being skipped.
"""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdcd.errors import DecodeError, SourceError
from cdcd.events import ChangeEvent, Commit, SchemaChange
from cdcd.positions import MysqlPosition
from cdcd.sources.mysql import binlog as bl
from cdcd.sources.mysql.checks import ServerInfo
from cdcd.sources.mysql.config import MysqlSourceConfig
from cdcd.sources.mysql.source import MysqlSource
from cdcd.sources.mysql.start import Start

SERVER_UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


class Binlog:
    """Builds binlog events (v4 header, CRC32 checksum placeholder) at growing positions."""

    def __init__(self, first_pos: int = 4) -> None:
        self.pos = first_pos

    def event(
        self, event_type: int, body: bytes, timestamp: int = 1_700_000_000, server_id: int = 1
    ) -> bytes:
        """The dump protocol's packet: OK byte, header, body, checksum."""
        size = 19 + len(body) + 4
        self.pos += size
        header = struct.pack("<IBIIIH", timestamp, event_type, server_id, size, self.pos, 0)
        return b"\x00" + header + body + b"\x00" * 4

    def gtid(self, server_uuid: str, gno: int) -> bytes:
        body = b"\x01" + uuid.UUID(server_uuid).bytes + struct.pack("<Q", gno) + b"\x02"
        body += struct.pack("<QQ", 0, 0)  # last_committed, sequence_number
        return self.event(0x21, body)

    def mariadb_gtid(self, domain: int, server_id: int, seq: int, flags: int = 0x0C) -> bytes:
        body = struct.pack("<QIB", seq, domain, flags) + b"\x00" * 6
        return self.event(0xA2, body, server_id=server_id)

    def query(
        self, statement: str, schema: str = "shop", status: bytes = b"", thread_id: int = 7
    ) -> bytes:
        name = schema.encode()
        body = struct.pack("<IIBHH", thread_id, 0, len(name), 0, len(status)) + status
        body += name + b"\x00" + statement.encode()
        return self.event(0x02, body)

    def xid(self, xid: int) -> bytes:
        return self.event(0x10, struct.pack("<Q", xid))

    def rotate(self, next_file: str, position: int = 4) -> bytes:
        return self.event(0x04, struct.pack("<Q", position) + next_file.encode(), timestamp=0)

    def table_map(self, table_id: int, schema: str = "shop", table: str = "orders") -> bytes:
        """``(id BIGINT PRIMARY KEY, note VARCHAR(16) utf8mb4)``, as MySQL 8 describes it
        with binlog_row_metadata = FULL."""
        names = b"".join(bytes([len(n)]) + n.encode() for n in ("id", "note"))
        optional = (
            b"\x01\x01\x00"  # SIGNEDNESS: id signed
            + b"\x02\x03\xfc\xff\x00"  # DEFAULT_CHARSET: utf8mb4_0900_ai_ci
            + b"\x04"
            + bytes([len(names)])
            + names  # COLUMN_NAME
            + b"\x08\x01\x00"  # SIMPLE_PRIMARY_KEY: column 0
        )
        body = (
            table_id.to_bytes(6, "little")
            + b"\x01\x00"
            + bytes([len(schema)])
            + schema.encode()
            + b"\x00"
            + bytes([len(table)])
            + table.encode()
            + b"\x00"
            + b"\x02\x08\x0f"  # 2 columns: LONGLONG, VARCHAR
            + b"\x02\x40\x00"  # their metadata: VARCHAR of 64 bytes at most
            + b"\x02"  # note is nullable
            + optional
        )
        return self.event(0x13, body)

    def rows(self, event_type: int, table_id: int, present: bytes, *rows: tuple) -> bytes:
        """A v2 rows event of ``table_map``'s table; ``rows``: (id, note) images."""
        body = table_id.to_bytes(6, "little") + b"\x01\x00" + b"\x02\x00"  # no extra data
        body += b"\x02" + present * (2 if event_type == bl.UPDATE_ROWS_V2 else 1)
        for row_id, note in rows:
            text = note.encode()
            body += b"\x00" + struct.pack("<q", row_id) + bytes([len(text)]) + text
        return self.event(event_type, body)


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


# -- event fields ----------------------------------------------------------------------


@pytest.mark.parametrize("checksum", [True, False])
def test_header_fields(checksum):
    log = Binlog(first_pos=1000)
    packet = log.xid(5)
    if not checksum:
        packet = packet[:-4]
    assert bl.header(packet)[1:] == (0x10, 1, 19 + 8 + 4, 1000 + 31, 0)
    assert bl.event_start(packet) == 1000
    end = bl.body_end(packet, checksum)
    assert packet[bl.BODY_AT : end] == struct.pack("<Q", 5)


@given(st.binary(min_size=16, max_size=16), st.integers(1, 2**63 - 1))
def test_mysql_gtid_fields(sid, gno):
    packet = Binlog().gtid(str(uuid.UUID(bytes=sid)), gno)
    assert bl.mysql_gtid(packet) == (sid, gno)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 255),
)
def test_mariadb_gtid_fields(domain, server_id, seq, flags):
    packet = Binlog().mariadb_gtid(domain, server_id, seq, flags)
    assert bl.mariadb_gtid(packet) == (f"{domain}-{server_id}-{seq}", bool(flags & 1))


@given(
    st.integers(0, 2**32 - 1),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=60),
    st.binary(max_size=60),
    st.text(st.characters(codec="utf-8"), max_size=300),
)
def test_query_fields(thread_id, schema, status, statement):
    packet = Binlog().query(f" \n{statement}\t ", schema, status, thread_id)
    query = bl.query(packet, bl.body_end(packet, True))
    assert query == bl.Query(thread_id, schema, statement.strip())


def test_rotate_names_the_next_file():
    packet = Binlog().rotate("mysql-bin.000042", 4)
    assert bl.rotate_file(packet, bl.body_end(packet, True)) == "mysql-bin.000042"


@given(st.integers(1, 80), st.data())
def test_a_full_columns_present_bitmap_whatever_its_padding(columns, data):
    size = (columns + 7) // 8
    full = (1 << columns) - 1
    padding = data.draw(st.integers(0, 2 ** (size * 8 - columns) - 1)) << columns
    assert bl.all_columns((full | padding).to_bytes(size, "little"), columns)
    missing = data.draw(st.integers(0, columns - 1))
    partial = (full & ~(1 << missing)) | padding
    assert not bl.all_columns(partial.to_bytes(size, "little"), columns)
    assert not bl.all_columns(full.to_bytes(size + 1, "little"), columns)  # another count
    for bitmap in bl.full_bitmaps(columns):
        assert bl.all_columns(bitmap, columns)


# -- rows --------------------------------------------------------------------------------


@pytest.fixture
def slow_rows(monkeypatch):
    """Counts the rows events python-mysql-replication decodes (the slow path)."""
    library_event = bl.library_event
    count = [0]

    def counted(packet, **kwargs):
        if kwargs.get("table_map") is not None:  # a rows event, not a TABLE_MAP
            count[0] += 1
        return library_event(packet, **kwargs)

    monkeypatch.setattr(bl, "library_event", counted)
    return count


@pytest.mark.parametrize(
    "present",
    [
        pytest.param(b"\x03", id="padding-clear-as-mariadb"),
        pytest.param(b"\xff", id="padding-set-as-mysql8"),
        pytest.param(b"\x53", id="other-padding"),
    ],
)
def test_full_row_images_take_the_fast_path_whatever_the_padding_bits(present, slow_rows):
    log = Binlog()
    events = [
        log.rotate("binlog.000001"),
        log.gtid(SERVER_UUID, 1),
        log.query("BEGIN"),
        log.table_map(77),
        log.rows(bl.WRITE_ROWS_V2, 77, present, (1, "a"), (2, "b")),
        log.rows(bl.UPDATE_ROWS_V2, 77, present, (1, "a"), (1, "c")),
        log.rows(bl.DELETE_ROWS_V2, 77, present, (2, "b")),
        log.xid(1),
    ]
    items = run(events, Start("", None, None))
    changes = [(i.op, i.key, i.before, i.after) for i in items if isinstance(i, ChangeEvent)]
    assert changes == [
        ("c", {"id": 1}, None, {"id": 1, "note": "a"}),
        ("c", {"id": 2}, None, {"id": 2, "note": "b"}),
        ("u", {"id": 1}, {"id": 1, "note": "a"}, {"id": 1, "note": "c"}),
        ("d", {"id": 2}, {"id": 2, "note": "b"}, None),
    ]
    assert slow_rows[0] == 0


def test_a_partial_row_image_is_decoded_by_the_library(slow_rows):
    log = Binlog()
    events = [
        log.rotate("binlog.000001"),
        log.gtid(SERVER_UUID, 1),
        log.query("BEGIN"),
        log.table_map(77),
        log.event(  # a MINIMAL before image: the key only
            bl.DELETE_ROWS_V2,
            (77).to_bytes(6, "little")
            + b"\x01\x00\x02\x00\x02\x01"
            + b"\x00"
            + struct.pack("<q", 5),
        ),
        log.xid(1),
    ]
    [change] = [i for i in run(events, Start("", None, None)) if isinstance(i, ChangeEvent)]
    assert (change.op, change.key) == ("d", {"id": 5})
    assert slow_rows[0] == 1


def test_a_primary_key_change_is_a_delete_and_a_create():
    log = Binlog()
    events = [
        log.rotate("binlog.000001"),
        log.gtid(SERVER_UUID, 1),
        log.query("BEGIN"),
        log.table_map(77),
        log.rows(bl.UPDATE_ROWS_V2, 77, b"\xff", (1, "a"), (9, "a")),
        log.xid(1),
    ]
    changes = [i for i in run(events, Start("", None, None)) if isinstance(i, ChangeEvent)]
    assert [(c.op, c.key, c.before, c.after) for c in changes] == [
        ("d", {"id": 1}, {"id": 1, "note": "a"}, None),
        ("c", {"id": 9}, None, {"id": 9, "note": "a"}),
    ]
    assert changes[0].source is changes[1].source  # one row of the event


def test_rows_of_a_table_no_table_map_described_stop_the_stream():
    log = Binlog()
    events = [
        log.rotate("binlog.000004"),
        log.gtid(SERVER_UUID, 1),
        log.query("BEGIN"),
        log.rows(bl.WRITE_ROWS_V2, 12, b"\xff", (1, "a")),
    ]
    with pytest.raises(DecodeError, match=r"binlog.000004:\d+ names table id 12"):
        run(events, Start("", None, None))


def _big_transaction(log: Binlog, rows: int) -> list[bytes]:
    events = [log.rotate("binlog.000009"), log.gtid(SERVER_UUID, 3), log.query("BEGIN")]
    for row_id in range(1, rows + 1):
        events += [log.table_map(77), log.rows(bl.WRITE_ROWS_V2, 77, b"\xff", (row_id, "x"))]
    return [*events, log.xid(3)]


def test_a_huge_transaction_is_cut_at_positions_that_resume_inside_it():
    events = _big_transaction(Binlog(), 5)
    src = source()
    src.split_after_events = 2
    chunks: list = []
    src.consume(events, Start(f"{SERVER_UUID}:1-2", None, None), chunks.append)
    commits = [i for chunk in chunks for i in chunk if isinstance(i, Commit)]
    tx_start = bl.event_start(events[1])  # its GTID event
    before = f"{SERVER_UUID}:1-2"
    assert [c.position for c in commits] == [
        MysqlPosition("mysql", before, "binlog.000009", tx_start, 2, HERE),
        MysqlPosition("mysql", before, "binlog.000009", tx_start, 4, HERE),
        MysqlPosition("mysql", f"{SERVER_UUID}:1-3", "binlog.000009", log_pos(events[-1]), 0, HERE),
    ]
    assert [c.event_count for c in commits] == [2, 4, 5]
    assert {c.txid for c in commits} == {f"{SERVER_UUID}:3"}

    # Resumed at the second cut: the transaction comes again, its first 4 changes skipped.
    resumed: list = []
    src.consume(events, Start(before, None, None, skip_events=4), resumed.append)
    again = [i for chunk in resumed for i in chunk]
    assert [i.key for i in again if isinstance(i, ChangeEvent)] == [{"id": 5}]
    assert [c.position.index for c in again if isinstance(c, Commit)] == [0]


def test_a_resumed_transaction_shorter_than_what_kafka_holds_is_refused():
    # The stored cut says 4 changes are in Kafka; the transaction now yields 3 (e.g.
    # source.tables changed): the stream stops instead of skipping into the next one.
    events = _big_transaction(Binlog(), 3)
    with pytest.raises(SourceError, match="sent it again with 3"):
        run(events, Start(f"{SERVER_UUID}:1-2", None, None, skip_events=4))


def test_mariadb_gtid_events_open_transactions_and_standalone_ones_commit_ddl():
    log = Binlog()
    events = [
        log.rotate("mariadb-bin.000002"),
        log.mariadb_gtid(0, 1, 8),
        log.table_map(77),
        log.rows(bl.WRITE_ROWS_V2, 77, b"\x03", (1, "a")),
        log.xid(4),
        log.mariadb_gtid(0, 1, 9, flags=0x29),  # standalone DDL
        log.query("ALTER TABLE shop.orders ADD COLUMN n INT"),
    ]
    items = run(events, Start("0-1-7", None, None), flavor="mariadb")
    items = [i for i in items if type(i).__name__ != "TableSchema"]  # schemas: tests/schemas
    assert [type(i).__name__ for i in items] == ["ChangeEvent", "Commit", "SchemaChange", "Commit"]
    assert items[0].source["gtid"] == items[1].txid == "0-1-8"
    assert [c.position.gtid_set for c in items if isinstance(c, Commit)] == ["0-1-8", "0-1-9"]
    assert items[2].source["gtid"] == "0-1-9"
