"""The transaction roll-up on messages: one message a transaction, in parts of at most
max_changes, the rows kept or not, and a transaction cut by the stored offset continued
without repeating or losing a part."""

from __future__ import annotations

from typing import Any

from messages import change, commit, messages

from cdcd.config import parse_config
from cdcd.encoder import _checkpoint
from cdcd.envelope import CommitMark, Message
from cdcd.events import Commit
from cdcd.offsets import StoredOffset
from cdcd.positions import PgPosition
from cdcd.transforms import build_transforms
from cdcd.transforms.builtin import DeleteTombstones
from cdcd.transforms.config import RollupConfig
from cdcd.transforms.rollup import TransactionRollup


def _rollup(restore: dict[str, Any] | None = None, **options: Any) -> TransactionRollup:
    config = RollupConfig.model_validate({"tables": ["shop.orders", "shop.lines"], **options})
    return TransactionRollup(config, "p.transactions.rollup", "p", restore=restore)


def _cut(count: int, lsn: int = 2000, txid: str = "7") -> Commit:
    return Commit(PgPosition(lsn, count), txid, 1_700_000_000_456, count)


def _rollups(items: list[Any]) -> list[dict[str, Any]]:
    return [i.value for i in items if type(i) is Message and i.topic == "p.transactions.rollup"]


def test_a_multi_table_transaction_is_one_message_before_its_commit():
    items = messages(
        change("c", {"id": 1, "total": 5}),
        change("c", {"id": 10, "order": 1}, table="lines"),
        change("c", {"id": 3}, table="other"),
        change("u", {"id": 1, "total": 6}, {"id": 1, "total": 5}),
        commit(),
        change("d", None, {"id": 10, "order": 1}, table="lines", txid="8"),
        commit(2100, txid="8"),
    )
    out = _rollup().apply(DeleteTombstones().apply(items))
    # The other table's row stays; the rolled-up rows and the delete's tombstone do not.
    assert [(type(i).__name__, getattr(i, "topic", "")) for i in out] == [
        ("Message", "p.shop.other"),
        ("Message", "p.transactions.rollup"),
        ("CommitMark", ""),
        ("Message", "p.transactions.rollup"),
        ("CommitMark", ""),
    ]
    first, second = _rollups(out)
    assert out[1].key == "p"
    assert {k: v for k, v in first.items() if k != "changes"} == {
        "id": "7",
        "ts_ms": 1_700_000_000_456,
        "position": {"lsn": 1234, "txId": 7},
        "part": 1,
        "last": True,
        "changes_before": 0,
        "total_changes": 3,
    }
    assert first["changes"] == [
        {
            "table": "shop.orders",
            "op": "c",
            "key": {"id": 1},
            "before": None,
            "after": {"id": 1, "total": 5},
        },
        {
            "table": "shop.lines",
            "op": "c",
            "key": {"id": 10},
            "before": None,
            "after": {"id": 10, "order": 1},
        },
        {
            "table": "shop.orders",
            "op": "u",
            "key": {"id": 1},
            "before": {"id": 1, "total": 5},
            "after": {"id": 1, "total": 6},
        },
    ]
    assert (second["id"], second["total_changes"]) == ("8", 1)
    assert second["changes"][0]["op"] == "d" and second["changes"][0]["after"] is None


def test_keep_rows_keeps_the_per_row_messages_too():
    items = DeleteTombstones().apply(messages(change("d", None, {"id": 1}), commit()))
    out = _rollup(keep_rows=True).apply(items)
    assert [getattr(i, "topic", "") for i in out] == [
        "p.shop.orders",  # the delete
        "p.shop.orders",  # its tombstone
        "p.transactions.rollup",
        "",
    ]


def test_a_big_transaction_in_parts_of_max_changes_the_last_one_marked():
    rows = [change("c", {"id": n}) for n in range(1, 8)]
    out = _rollup(max_changes=3).apply(messages(*rows, commit()))
    parts = _rollups(out)
    assert [(p["part"], p["last"], p["changes_before"], p["total_changes"]) for p in parts] == [
        (1, False, 0, None),
        (2, False, 3, None),
        (3, True, 6, 7),
    ]
    assert [c["key"]["id"] for p in parts for c in p["changes"]] == list(range(1, 8))
    assert type(out[-1]) is CommitMark and out[-2].value is parts[-1]
    # Exactly max_changes: one part, the last.
    exact = _rollups(_rollup(max_changes=3).apply(messages(*rows[:3], commit())))
    assert [(p["part"], p["last"], p["total_changes"]) for p in exact] == [(1, True, 3)]


def test_changes_wait_for_their_commit_across_chunks():
    rollup = _rollup()
    assert rollup.apply(messages(change("c", {"id": 1}))) == []
    out = rollup.apply(messages(change("c", {"id": 2}), commit()))
    (value,) = _rollups(out)
    assert [c["key"]["id"] for c in value["changes"]] == [1, 2]


def test_snapshot_rows_and_unchosen_tables_are_not_rolled_up():
    snapshot = change("r", {"id": 1}, txid=None)
    out = _rollup().apply(messages(snapshot, change("c", {"id": 2}, table="other"), commit()))
    assert _rollups(out) == []
    assert [i.topic for i in out if type(i) is Message] == ["p.shop.orders", "p.shop.other"]


def _config(**sections: Any) -> Any:
    return parse_config(
        {
            "name": "t",
            "source": {"kind": "postgres", "dsn": "postgresql://x/y", "tables": ["shop\\..*"]},
            "sink": {"kind": "kafka", "bootstrap_servers": "k:9092", "topic_prefix": "p"},
            **sections,
        }
    )


def _encode(transforms: list[Any], items: list[Any]) -> list[Any]:
    for transform in transforms:
        items = transform.apply(items)
    return items


def test_a_cut_publishes_what_it_gathered_and_a_restart_continues_the_part_numbers():
    config = _config(
        rollup={"tables": ["shop.orders"], "max_changes": 2}, transactions={"metadata": True}
    )
    rows = [change("c", {"id": n}) for n in range(1, 8)]
    first = _encode(build_transforms(config), messages(*rows[:3], _cut(3), rows[3]))
    mark = next(i for i in first if type(i) is CommitMark)
    # Parts 1 (2 changes) and 2 (1 change, cut) precede the cut; row 4 waits.
    assert [(p["part"], len(p["changes"]), p["last"]) for p in _rollups(first)] == [
        (1, 2, False),
        (2, 1, False),
    ]
    stored = StoredOffset.from_json(_checkpoint(mark).stored_offset().to_json())
    assert stored.transaction is not None
    assert stored.transaction["rollup"] == {"part": 3, "changes_before": 3}
    assert stored.transaction["total_order"] == 3  # the metadata counters beside it
    # Killed before row 4's chunk committed: started again at the cut, rows 4..7 come again.
    again = _encode(
        build_transforms(config, restore=stored.transaction), messages(*rows[3:], commit())
    )
    parts = _rollups(again)
    assert [(p["part"], p["changes_before"], p["last"], p["total_changes"]) for p in parts] == [
        (3, 3, False, None),
        (4, 5, True, 7),
    ]
    assert [c["key"]["id"] for p in parts for c in p["changes"]] == [4, 5, 6, 7]
    # The metadata continued too: no second BEGIN, total_order from 4.
    assert not any(
        type(i) is Message and i.value and i.value.get("status") == "BEGIN" for i in again
    )


def test_a_cut_at_the_transactions_end_gives_an_empty_last_part():
    config = _config(rollup={"tables": ["shop.orders"]})
    rows = [change("c", {"id": n}) for n in range(1, 3)]
    first = _encode(build_transforms(config), messages(*rows, _cut(2)))
    mark = next(i for i in first if type(i) is CommitMark)
    assert mark.transaction == {"id": "7", "rollup": {"part": 2, "changes_before": 2}}
    restore = _checkpoint(mark).transaction
    out = _encode(build_transforms(config, restore=restore), messages(commit()))
    (last,) = _rollups(out)
    assert (last["part"], last["last"], last["changes"], last["total_changes"]) == (
        2,
        True,
        [],
        2,
    )
