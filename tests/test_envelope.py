"""The Debezium envelope: shape, topic names, keys, tombstones."""

from __future__ import annotations

import orjson

from cdcd import __version__
from cdcd.envelope import EnvelopeEncoder
from cdcd.events import ChangeEvent


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
