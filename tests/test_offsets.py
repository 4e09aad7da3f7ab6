"""Offsets as stored in Kafka: key, value, round trip, positions typed by a user."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdcd.offsets import StoredOffset, inside_transaction, offset_key, parse_position
from cdcd.positions import MysqlPosition, PgPosition, lsn_to_str


def test_key_names_the_daemon_and_its_source_like_kafka_connect():
    assert offset_key("shop", "postgres") == b'["shop",{"source":"postgres"}]'
    assert offset_key("shop", "mysql") != offset_key("shop", "postgres")


def test_value_is_the_position_as_json_with_its_time():
    value = orjson.loads(StoredOffset(PgPosition(0x16B374D848, 0), ts_ms=1700000000000).to_json())
    assert value == {"kind": "postgres", "lsn": "16/B374D848", "index": 0, "ts_ms": 1700000000000}
    mysql = MysqlPosition("mariadb", "0-1-100", "mysql-bin.000003", 4711)
    value = orjson.loads(StoredOffset(mysql, ts_ms=1).to_json())
    assert value == {
        "kind": "mysql",
        "flavor": "mariadb",
        "gtid_set": "0-1-100",
        "file": "mysql-bin.000003",
        "pos": 4711,
        "index": 0,
        "ts_ms": 1,
    }


def test_a_cut_position_carries_its_transaction():
    state = {
        "id": "571:53195829",
        "ts_ms": 5,
        "total_order": 2000,
        "data_collections": {"s.t": 2000},
    }
    stored = StoredOffset(PgPosition(100, 2000), state, ts_ms=7)
    again = StoredOffset.from_json(stored.to_json())
    assert again == stored
    assert inside_transaction(again.position)
    assert not inside_transaction(PgPosition(100))


@given(
    lsn=st.integers(0, 2**64 - 1),
    index=st.integers(0, 2**31),
    ts_ms=st.integers(1, 2**45),
)
def test_postgres_offsets_round_trip(lsn, index, ts_ms):
    stored = StoredOffset(PgPosition(lsn, index), ts_ms=ts_ms)
    assert StoredOffset.from_json(stored.to_json()) == stored


@given(
    gtid=st.one_of(st.none(), st.from_regex(r"\A[0-9]{1,3}-[0-9]{1,5}-[0-9]{1,9}\Z")),
    file=st.from_regex(r"\A[a-z-]{1,10}\.[0-9]{6}\Z"),
    pos=st.integers(4, 2**40),
    index=st.integers(0, 10**6),
)
def test_mysql_offsets_round_trip(gtid, file, pos, index):
    stored = StoredOffset(MysqlPosition("mariadb", gtid, file, pos, index), ts_ms=1)
    assert StoredOffset.from_json(stored.to_json()) == stored


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"{}", b'{"kind": "oracle"}', b'{"kind": "postgres"}']
)
def test_a_bad_record_says_so(data):
    with pytest.raises(ValueError, match="not a cdcd offset"):
        StoredOffset.from_json(data)


def test_positions_typed_by_a_user():
    assert parse_position("16/B374D848", "postgres") == PgPosition(0x16B374D848)
    assert parse_position("0/1A#120", "postgres") == PgPosition(0x1A, 120)
    assert parse_position(
        '{"kind": "postgres", "lsn": "0/10", "index": 3}', "postgres"
    ) == PgPosition(16, 3)
    gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77"
    assert parse_position(gtid, "mysql") == MysqlPosition("mysql", gtid, "", 4)
    assert parse_position("0-1-100,1-2-5", "mysql").flavor == "mariadb"
    with pytest.raises(ValueError, match="not a postgres position"):
        parse_position("mysql-bin.000001:4", "postgres")
    with pytest.raises(ValueError, match="a postgres position cannot be stored for a mysql source"):
        parse_position('{"kind": "postgres", "lsn": "0/10"}', "mysql")


@given(st.integers(0, 2**64 - 1), st.integers(0, 10**9))
def test_lsn_short_form_round_trips(lsn, index):
    assert parse_position(f"{lsn_to_str(lsn)}#{index}", "postgres") == PgPosition(lsn, index)
