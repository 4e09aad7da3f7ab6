"""The transaction assembler both sources share, and the primary-key change."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdcd.errors import SourceError
from cdcd.events import ChangeEvent, Commit
from cdcd.positions import PgPosition
from cdcd.sources.common import TransactionAssembler, update_events


def change(i: int) -> ChangeEvent:
    return ChangeEvent("c", "public", "t", {"id": i}, None, {"id": i}, {}, "7:100")


def assemble(assembler: TransactionAssembler, changes: int) -> list:
    items: list = []
    assembler.begin("7:100", 1700000000000, lambda n: PgPosition(50, n))
    for i in range(1, changes + 1):
        assembler.add(change(i), items)
    assembler.commit(PgPosition(120), items)
    return items


@given(st.integers(1, 60), st.integers(1, 7))
def test_cuts_every_n_changes_and_a_restart_at_a_cut_skips_exactly_what_was_written(total, split):
    items = assemble(TransactionAssembler(split), total)
    commits = [i for i in items if type(i) is Commit]
    assert [c.position for c in commits[:-1]] == [
        PgPosition(50, n) for n in range(split, total + 1, split)
    ]
    assert commits[-1].position == PgPosition(120) and commits[-1].event_count == total
    for cut in commits[:-1]:
        again = assemble(TransactionAssembler(split, skip=cut.position.index), total)
        ids = [i.key["id"] for i in again if type(i) is ChangeEvent]
        assert ids == list(range(cut.position.index + 1, total + 1))


def test_a_transaction_sent_again_shorter_than_what_kafka_holds_is_refused():
    with pytest.raises(SourceError, match="sent it again with 3"):
        assemble(TransactionAssembler(100, skip=5), 3)


def test_no_cut_where_the_source_knows_no_safe_position():
    assembler = TransactionAssembler(2)
    items: list = []
    assembler.begin("x", 0, lambda n: None)
    for i in range(5):
        assembler.add(change(i), items)
    assert not any(type(i) is Commit for i in items)


def test_a_primary_key_change_is_a_delete_and_a_create():
    def key(row):
        return {"id": row["id"]}

    moved = update_events("s", "t", key, {"id": 1, "v": 1}, {"id": 2, "v": 1}, {}, None)
    assert [(e.op, e.key) for e in moved] == [("d", {"id": 1}), ("c", {"id": 2})]
    kept = update_events("s", "t", key, {"id": 1, "v": 1}, {"id": 1, "v": 2}, {}, None)
    assert [(e.op, e.key, e.before) for e in kept] == [("u", {"id": 1}, {"id": 1, "v": 1})]
    no_old_row = update_events("s", "t", key, None, {"id": 1, "v": 2}, {}, None)
    assert [(e.op, e.before) for e in no_old_row] == [("u", None)]
    no_key = update_events("s", "t", lambda row: None, {"v": 1}, {"v": 2}, {}, None)
    assert [e.op for e in no_key] == ["u"]
