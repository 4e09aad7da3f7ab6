"""The harness's comparison over records as the two readers write them (no servers)."""

from __future__ import annotations

from compat.cases import MYSQL_CASES, PG_CASES, Case, runs
from compat.compare import column_schema, compare, known_reason, render

TOPIC = "p.public.c_x"


def _dbz(op: str, after: dict | None, before: dict | None = None, lsn: int = 10) -> dict:
    schema = {
        "type": "struct",
        "fields": [
            {
                "field": "after",
                "type": "struct",
                "fields": [
                    {"field": "id", "type": "int32", "optional": False},
                    {
                        "field": "v",
                        "type": "bytes",
                        "optional": True,
                        "name": "org.apache.kafka.connect.data.Decimal",
                        "parameters": {"scale": "2"},
                    },
                ],
            }
        ],
    }
    payload = {
        "before": before,
        "after": after,
        "op": op,
        "source": {"version": "3.6.3.Final", "lsn": lsn, "table": "c_x"},
        "ts_ms": 1,
    }
    key = {"schema": {"type": "struct"}, "payload": {"id": 1}}
    return {"topic": TOPIC, "key": key, "value": {"schema": schema, "payload": payload}}


def _cdcd(op: str, after: dict | None, before: dict | None = None, lsn: int = 10) -> dict:
    value = {
        "before": before,
        "after": after,
        "op": op,
        "source": {"version": "0.1.0", "lsn": lsn, "table": "c_x", "extra": 1},
        "ts_ms": 2,
    }
    return {"topic": TOPIC, "key": {"id": 1}, "value": value}


def test_the_same_events_give_no_difference_whatever_the_versions_and_times():
    assert compare([_dbz("c", {"id": 1, "v": "AA=="})], [_cdcd("c", {"id": 1, "v": "AA=="})]) == []


def test_a_value_a_source_field_and_a_missing_column_are_each_a_difference():
    dbz = [_dbz("u", {"id": 1, "v": "AA=="}, {"id": 1, "v": None}, lsn=10)]
    ours = [_cdcd("u", {"id": 1}, {"id": 1, "v": None}, lsn=11)]
    diffs = compare(dbz, ours)
    assert [(d.table, d.row, d.op, d.field, d.debezium, d.cdcd) for d in diffs] == [
        ("c_x", "id=1", "u", "after.v", "AA==", "(none)"),
        ("c_x", "id=1", "u", "source.lsn", 10, 11),
    ]
    assert 'c_x row id=1 op u after.v: Debezium "AA==" | cdcd (none)' in render(diffs)


def test_a_number_is_not_its_float_nor_a_bool():
    diffs = compare([_dbz("c", {"id": 1, "v": 1})], [_cdcd("c", {"id": 1, "v": 1.0})])
    assert [d.field for d in diffs] == ["after.v"]
    diffs = compare([_dbz("c", {"id": 1, "v": True})], [_cdcd("c", {"id": 1, "v": 1})])
    assert [d.field for d in diffs] == ["after.v"]


def test_a_record_only_one_reader_wrote_and_a_tombstone_against_an_event():
    tombstone = {"topic": TOPIC, "key": {"schema": {}, "payload": {"id": 1}}, "value": None}
    diffs = compare(
        [_dbz("c", {"id": 1, "v": None}), tombstone], [_cdcd("c", {"id": 1, "v": None})]
    )
    assert [(d.op, d.field, d.debezium, d.cdcd) for d in diffs] == [
        ("tombstone", "record", "record", "(none)")
    ]
    diffs = compare([tombstone], [_cdcd("d", None, {"id": 1})])
    assert [d.field for d in diffs] == ["value"]


def test_known_by_case_or_by_field():
    (diff,) = compare(
        [_dbz("c", {"id": 1, "v": "AA=="}, lsn=1)], [_cdcd("c", {"id": 1, "v": "AA=="}, lsn=2)]
    )
    assert known_reason(diff, {"x": "by case"}) == "by case"
    assert known_reason(diff, {"field:source.lsn": "by field"}) == "by field"
    assert known_reason(diff, {"y": "another case"}) is None


def test_debeziums_schema_of_a_column():
    assert column_schema(_dbz("c", {"id": 1, "v": "AA=="})) == (
        "bytes org.apache.kafka.connect.data.Decimal (scale=2)"
    )
    assert column_schema(_dbz("c", {"id": 1}), "w") == "(none)"


def test_each_case_gives_the_records_it_expects_and_changes_every_row():
    case = Case("x", "int", ("1", "2"))
    changes = case.changes()
    assert changes[0] == "INSERT INTO c_x (id, v) VALUES (1, 1), (2, 2), (3, NULL)"
    assert changes[1:4] == [
        "UPDATE c_x SET v = 2 WHERE id = 1",
        "UPDATE c_x SET v = NULL WHERE id = 2",
        "UPDATE c_x SET v = 1 WHERE id = 3",
    ]
    assert case.expected_records() == 12  # 3 inserts, 3 updates, 3 deletes, 3 tombstones


def test_cases_have_unique_names_and_stopping_ones_run_alone():
    for cases in (PG_CASES, MYSQL_CASES):
        names = [case.name for case in cases]
        assert len(names) == len(set(names))
    together, *alone = runs(PG_CASES)
    assert not any(case.cdcd_stops for case in together)
    assert alone and all(len(run) == 2 and run[1].cdcd_stops for run in alone)
