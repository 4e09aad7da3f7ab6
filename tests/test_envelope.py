"""The Debezium envelope and today's transforms on it: shape, topic names, keys,
tombstones, skipped operations, transaction metadata; the serializer's records."""

from __future__ import annotations

from typing import Any

import orjson

from cdcd import __version__
from cdcd.config import parse_config
from cdcd.encoder import EnvelopeEncoder
from cdcd.events import ChangeEvent, Commit
from cdcd.positions import PgPosition

NOW_NS = 1_700_000_000_123_456_789


def encoder(restore: dict[str, Any] | None = None, **sections: Any) -> EnvelopeEncoder:
    """The encoder of a daemon named shop writing to the topic prefix shop, with the
    transforms ``sections`` configure (pipeline, transactions, sink options)."""
    config = {
        "name": "shop",
        "source": {"kind": "postgres", "dsn": "postgresql://cdc@127.0.0.1/shop"},
        "sink": {"kind": "stdout", "topic_prefix": "shop", **sections.pop("sink", {})},
        **sections,
    }
    return EnvelopeEncoder.from_config(parse_config(config), "postgresql", restore=restore)


def records(enc: EnvelopeEncoder, *items: Any):
    return enc.encode(list(items), NOW_NS).records


def test_envelope_shape_and_topic():
    event = ChangeEvent(
        "u", "public", "orders", {"id": 7}, {"id": 7, "qty": 1}, {"id": 7, "qty": 2},
        {"ts_ms": 1700000000000, "lsn": 42, "schema": "public", "table": "orders"},
    )
    out = records(encoder(), event)
    assert len(out) == 1
    record = out[0]
    assert record.topic == "shop.public.orders"
    assert orjson.loads(record.key) == {"id": 7}
    assert orjson.loads(record.value) == {
        "before": {"id": 7, "qty": 1},
        "after": {"id": 7, "qty": 2},
        "source": {
            "version": __version__, "connector": "postgresql", "name": "shop",
            "snapshot": "false",
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
    out = records(encoder(), event)
    assert [(r.key, r.value is None) for r in out] == [(b'{"id":7}', False), (b'{"id":7}', True)]
    out = records(encoder(sink={"tombstones_on_delete": False}), event)
    assert len(out) == 1


def test_table_without_key_and_skipped_operations():
    enc = encoder(pipeline={"skipped_operations": ["t"]})
    out = records(
        enc,
        ChangeEvent("c", "s", "t", None, None, {"v": 1}, {}),
        ChangeEvent("t", "s", "t", None, None, None, {}),
        ChangeEvent("d", "s", "t", None, {"v": 1}, None, {}),
    )
    assert [r.key for r in out] == [None, None]  # no tombstone without a key; truncate skipped


def _change(txid, table="orders", i=1, ts_ms=1700000000000):
    return ChangeEvent(
        "c", "public", table, {"id": i}, None, {"id": i}, {"ts_ms": ts_ms}, txid
    )


def test_transaction_metadata_off_by_default():
    out = records(encoder(), _change("7:100"), Commit(PgPosition(100), txid="7:100"))
    assert len(out) == 1 and orjson.loads(out[0].value)["transaction"] is None


def test_transaction_block_and_begin_end_records_as_debezium_writes_them():
    enc = encoder(transactions={"metadata": True})
    out = records(
        enc,
        _change("7:100", "orders", 1),
        _change("7:100", "lines", 1),
        _change("7:100", "orders", 2),
        Commit(PgPosition(120), txid="7:100", ts_ms=1700000000001),
        _change("8:200", "lines", 2),
        Commit(PgPosition(220), txid="8:200"),
    )
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
    enc = encoder(transactions={"metadata": True})
    encoded = enc.encode(
        [
            _change("7:100", "orders", 1),
            _change("7:100", "orders", 2),
            Commit(PgPosition(50, 2), txid="7:100"),  # a cut: no END
        ],
        NOW_NS,
    )
    [(at, checkpoint)] = encoded.marks
    state = checkpoint.transaction
    assert at == 3  # after BEGIN and the two changes
    assert state == {"id": "7:100", "ts_ms": 1700000000000, "total_order": 2,
                     "data_collections": {"public.orders": 2}}
    assert [r.topic for r in encoded.records].count("shop.transaction") == 1

    restarted = encoder(restore=state, transactions={"metadata": True})
    out = records(
        restarted, _change("7:100", "orders", 3), Commit(PgPosition(120), txid="7:100")
    )  # no second BEGIN
    assert [r.topic for r in out] == ["shop.public.orders", "shop.transaction"]
    assert orjson.loads(out[0].value)["transaction"]["total_order"] == 3
    assert orjson.loads(out[1].value)["event_count"] == 3


def test_checkpoints_carry_the_commit_time_and_id_and_count_whole_transactions():
    encoded = encoder().encode(
        [
            _change("7:100", "orders", 1),
            Commit(PgPosition(120), txid="7:100", ts_ms=1700000000001),
            _change("8:200", "orders", 2),
            Commit(PgPosition(150, 1), txid="8:200", ts_ms=1700000000002),  # a cut
        ],
        NOW_NS,
    )
    assert [(at, c.position, c.ts_ms, c.txid) for at, c in encoded.marks] == [
        (1, PgPosition(120), 1700000000001, "7:100"),
        (2, PgPosition(150, 1), 1700000000002, "8:200"),
    ]
    assert encoded.marks[0][1].transaction is None  # a whole transaction
    assert encoded.marks[1][1].transaction == {"id": "8:200"}  # a cut: which it cuts
    assert encoded.events == 2 and encoded.transactions == 1  # the cut is not a whole one


def test_records_hold_no_oversized_buffers():
    import tracemalloc

    enc = encoder()
    out = []
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(2000):
        out += records(enc, _change(None, "orders", i))
    per_record = (tracemalloc.get_traced_memory()[0] - before) / len(out)
    tracemalloc.stop()
    assert per_record < 1500, f"{per_record:.0f} bytes per record"
