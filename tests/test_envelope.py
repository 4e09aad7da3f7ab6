"""The Debezium envelope: shape, topic names, keys, tombstones."""

from __future__ import annotations

import orjson

from cdcd import __version__
from cdcd.envelope import EnvelopeEncoder
from cdcd.events import ChangeEvent, Commit
from cdcd.positions import PgPosition


def test_envelope_shape_and_topic():
    encoder = EnvelopeEncoder("shop", "postgresql")
    event = ChangeEvent(
        "u", "public", "orders", {"id": 7}, {"id": 7, "qty": 1}, {"id": 7, "qty": 2},
        {"ts_ms": 1700000000000, "lsn": 42, "schema": "public", "table": "orders"},
    )
    out = []
    encoder.encode(event, out, now_ns=1_700_000_000_123_456_789)
    assert len(out) == 1
    record = out[0]
    assert record.topic == "shop.public.orders"
    assert orjson.loads(record.key) == {"id": 7}
    assert orjson.loads(record.value) == {
        "before": {"id": 7, "qty": 1},
        "after": {"id": 7, "qty": 2},
        "source": {
            "version": __version__, "connector": "postgresql", "name": "shop",
            "ts_ms": 1700000000000, "lsn": 42, "schema": "public", "table": "orders",
        },
        "transaction": None,
        "op": "u",
        "ts_ms": 1_700_000_000_123,
        "ts_us": 1_700_000_000_123_456,
        "ts_ns": 1_700_000_000_123_456_789,
    }


def test_delete_is_followed_by_a_tombstone_unless_disabled():
    event = ChangeEvent("d", "public", "orders", {"id": 7}, {"id": 7}, None, {})
    out = []
    EnvelopeEncoder("shop", "postgresql").encode(event, out)
    assert [(r.key, r.value is None) for r in out] == [(b'{"id":7}', False), (b'{"id":7}', True)]
    out = []
    EnvelopeEncoder("shop", "postgresql", tombstones_on_delete=False).encode(event, out)
    assert len(out) == 1


def test_table_without_key_and_skipped_operations():
    encoder = EnvelopeEncoder("shop", "postgresql", skipped_operations=frozenset({"t"}))
    out = []
    encoder.encode(ChangeEvent("c", "s", "t", None, None, {"v": 1}, {}), out)
    encoder.encode(ChangeEvent("t", "s", "t", None, None, None, {}), out)
    encoder.encode(ChangeEvent("d", "s", "t", None, {"v": 1}, None, {}), out)
    assert [r.key for r in out] == [None, None]  # no tombstone without a key; truncate skipped


def _change(txid, table="orders", i=1, ts_ms=1700000000000):
    return ChangeEvent(
        "c", "public", table, {"id": i}, None, {"id": i}, {"ts_ms": ts_ms}, txid
    )


def test_transaction_metadata_off_by_default():
    out = []
    encoder = EnvelopeEncoder("shop", "postgresql")
    encoder.encode(_change("7:100"), out)
    encoder.commit(Commit(PgPosition(100), txid="7:100"), out)
    assert len(out) == 1 and orjson.loads(out[0].value)["transaction"] is None


def test_transaction_block_and_begin_end_records_as_debezium_writes_them():
    out = []
    encoder = EnvelopeEncoder("shop", "postgresql", transaction_topic="shop.transaction")
    encoder.encode(_change("7:100", "orders", 1), out)
    encoder.encode(_change("7:100", "lines", 1), out)
    encoder.encode(_change("7:100", "orders", 2), out)
    encoder.commit(Commit(PgPosition(120), txid="7:100", ts_ms=1700000000001), out)
    encoder.encode(_change("8:200", "lines", 2), out)
    encoder.commit(Commit(PgPosition(220), txid="8:200"), out)
    topics = [r.topic for r in out]
    assert topics == [
        "shop.transaction", "shop.public.orders", "shop.public.lines", "shop.public.orders",
        "shop.transaction", "shop.transaction", "shop.public.lines", "shop.transaction",
    ]
    begin, end = orjson.loads(out[0].value), orjson.loads(out[4].value)
    assert orjson.loads(out[0].key) == {"id": "7:100"}
    assert begin == {
        "status": "BEGIN", "id": "7:100", "ts_ms": 1700000000000,
        "event_count": None, "data_collections": None,
    }
    assert end == {
        "status": "END", "id": "7:100", "ts_ms": 1700000000001, "event_count": 3,
        "data_collections": [
            {"data_collection": "public.orders", "event_count": 2},
            {"data_collection": "public.lines", "event_count": 1},
        ],
    }
    blocks = [orjson.loads(out[i].value)["transaction"] for i in (1, 2, 3, 6)]
    assert blocks == [
        {"id": "7:100", "total_order": 1, "data_collection_order": 1},
        {"id": "7:100", "total_order": 2, "data_collection_order": 1},
        {"id": "7:100", "total_order": 3, "data_collection_order": 2},
        {"id": "8:200", "total_order": 1, "data_collection_order": 1},
    ]


def test_a_cut_transaction_continues_after_a_restart():
    out = []
    encoder = EnvelopeEncoder("shop", "postgresql", transaction_topic="shop.transaction")
    encoder.encode(_change("7:100", "orders", 1), out)
    encoder.encode(_change("7:100", "orders", 2), out)
    encoder.commit(Commit(PgPosition(50, 2), txid="7:100"), out, partial=True)  # no END
    state = encoder.transaction_state()
    assert state == {"id": "7:100", "ts_ms": 1700000000000, "total_order": 2,
                     "data_collections": {"public.orders": 2}}
    assert [r.topic for r in out].count("shop.transaction") == 1

    restarted = EnvelopeEncoder("shop", "postgresql", transaction_topic="shop.transaction")
    restarted.restore_transaction(state)
    out = []
    restarted.encode(_change("7:100", "orders", 3), out)  # no second BEGIN
    restarted.commit(Commit(PgPosition(120), txid="7:100"), out)
    assert [r.topic for r in out] == ["shop.public.orders", "shop.transaction"]
    assert orjson.loads(out[0].value)["transaction"]["total_order"] == 3
    assert orjson.loads(out[1].value)["event_count"] == 3


def test_records_hold_no_oversized_buffers():
    import tracemalloc

    encoder = EnvelopeEncoder("shop", "postgresql")
    out = []
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(2000):
        encoder.encode(_change(None, "orders", i), out)
    per_record = (tracemalloc.get_traced_memory()[0] - before) / len(out)
    tracemalloc.stop()
    assert per_record < 1500, f"{per_record:.0f} bytes per record"
