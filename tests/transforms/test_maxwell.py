"""Maxwell's format, field by field against the examples of Maxwell's documentation
(maxwells-daemon.io/dataformat and /producers): an insert, an update with only the
changed columns in ``old``, a delete; ``commit`` on the last row of a transaction only;
the topic ``maxwell`` and the ``{"database", "table", "pk.<column>"}`` key."""

from __future__ import annotations

import orjson
from messages import commit

from cdcd.encoder import EnvelopeEncoder
from cdcd.envelope import EnvelopeBuilder
from cdcd.events import ChangeEvent
from cdcd.maxwell import MaxwellSerializer
from cdcd.topics import TopicNaming
from cdcd.transforms.builtin import DeleteTombstones, TableTopics

# The documentation's INSERT (dataformat): its fields in its order.
DOC_INSERT = {
    "database": "test",
    "table": "e",
    "type": "insert",
    "ts": 1477053217,
    "xid": 23396,
    "commit": True,
    "position": "master.000006:800911",
    "server_id": 23042,
    "thread_id": 108,
    "data": {
        "id": 1,
        "m": 4.2341,
        "c": "2016-10-21 05:33:37.523000",
        "comment": "I am a creature of light.",
    },
}


def _event(op: str, before, after, gtid: str = "0-23042-23396", row_pos: int = 800911):
    source = {
        "ts_ms": 1477053217 * 1000,
        "db": "test",
        "table": "e",
        "server_id": 23042,
        "gtid": None,
        "file": "master.000006",
        "pos": row_pos,
        "row": 0,
        "thread": 108,
    }
    row = after or before
    return ChangeEvent(op, "test", "e", {"id": row["id"]}, before, after, source, gtid)


def _encode(*items):
    encoder = EnvelopeEncoder(
        EnvelopeBuilder("p", "mysql"),
        [TableTopics(TopicNaming("p")), DeleteTombstones()],
        MaxwellSerializer(),
    )
    return encoder, encoder.encode(list(items), 1_700_000_000_000_000_000)


def test_an_insert_is_maxwells_documented_insert_field_by_field():
    _, encoded = _encode(_event("c", None, DOC_INSERT["data"]), commit())
    (record,) = encoded.records
    value = orjson.loads(record.value)
    assert list(value) == list(DOC_INSERT)  # the same fields, in the same order
    assert value == DOC_INSERT
    assert record.topic == "maxwell"
    assert orjson.loads(record.key) == {"database": "test", "table": "e", "pk.id": 1}
    assert encoded.marks[0][0] == 1  # the commit's checkpoint after the row


def test_update_old_holds_only_changed_columns_commit_only_on_the_last_row():
    before = {"id": 1, "m": 4.2341, "comment": "I am a creature of light."}
    after = {"id": 1, "m": 5.444, "comment": "I am a creature of light."}
    encoder, first = _encode(
        _event("u", before, after),
        _event("d", after, None),  # its tombstone: not Maxwell's
    )
    # The delete, the chunk's last row, waits: does its transaction end?
    (update,) = (orjson.loads(r.value) for r in first.records)
    second = encoder.encode([commit()], 1)
    (delete,) = (orjson.loads(r.value) for r in second.records)
    assert update["type"] == "update" and "commit" not in update
    assert update["data"] == after and update["old"] == {"m": 4.2341}
    assert delete["type"] == "delete" and delete["commit"] is True
    assert delete["data"] == after and "old" not in delete
    assert second.marks[0][0] == 1  # the commit's checkpoint after the held row


def test_postgres_rows_xid_and_lsn_position():
    source = {"ts_ms": 1_700_000_000_999, "schema": "shop", "table": "t", "lsn": 123, "txId": 77}
    event = ChangeEvent("c", "shop", "t", {"id": 5}, None, {"id": 5}, source, "77:123")
    _, encoded = _encode(event, commit())
    value = orjson.loads(encoded.records[0].value)
    assert value == {
        "database": "shop",
        "table": "t",
        "type": "insert",
        "ts": 1_700_000_000,
        "xid": 77,
        "commit": True,
        "position": "123",
        "data": {"id": 5},
    }
