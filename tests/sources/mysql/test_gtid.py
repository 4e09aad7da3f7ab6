from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdcd.sources.mysql.gtid import (
    MariadbGtid,
    MariadbGtidPosition,
    MysqlGtid,
    MysqlGtidSet,
    parse_gtid_position,
)

UUID_A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID_B = "1c2aad49-ae92-409a-b4df-d05a03e4702e"
UUID_C = "ffffffff-0000-0000-0000-000000000001"


# --- MySQL GTID sets: examples -----------------------------------------------------------


def test_parses_gtid_executed_as_the_server_prints_it() -> None:
    # SELECT @@gtid_executed separates uuids with ",\n".
    text = f"{UUID_B}:1-5:11-18,\n{UUID_A}:1-3"
    gtid_set = MysqlGtidSet.parse(text)
    assert str(gtid_set) == f"{UUID_B}:1-5:11-18,{UUID_A}:1-3"


def test_canonical_form_sorts_lowercases_and_merges() -> None:
    text = f"{UUID_A.upper()}:23:6-9:1-5, {UUID_B}:80-100:42-47,{UUID_A}:10"
    assert str(MysqlGtidSet.parse(text)) == f"{UUID_B}:42-47:80-100,{UUID_A}:1-10:23"


def test_adjacent_intervals_merge() -> None:
    assert str(MysqlGtidSet.parse(f"{UUID_A}:1-5:6-9")) == f"{UUID_A}:1-9"
    assert str(MysqlGtidSet.parse(f"{UUID_A}:1-5:3-9:9")) == f"{UUID_A}:1-9"
    assert str(MysqlGtidSet.parse(f"{UUID_A}:1-5:7-9")) == f"{UUID_A}:1-5:7-9"


def test_tagged_gtids_follow_the_untagged_intervals_of_their_uuid() -> None:
    # As MySQL 9.1 prints it (bugs.mysql.com #116789): tags lowercased, sorted.
    text = f"{UUID_A}:Domain_2:8-52, {UUID_A}:Domain_1:1-3:15-21,{UUID_A}:1-4"
    assert str(MysqlGtidSet.parse(text)) == f"{UUID_A}:1-4:domain_1:1-3:15-21:domain_2:8-52"
    assert f"{UUID_A}:domain_1:16" in MysqlGtidSet.parse(text)
    assert f"{UUID_A}:16" not in MysqlGtidSet.parse(text)


def test_empty_set() -> None:
    empty = MysqlGtidSet.parse("  \n")
    assert empty == MysqlGtidSet.empty() == MysqlGtidSet()
    assert str(empty) == ""
    assert not empty
    assert len(empty) == 0
    assert f"{UUID_A}:1" not in empty


def test_add_extends_and_merges() -> None:
    gtid_set = MysqlGtidSet.parse(f"{UUID_A}:1-5:7")
    assert str(gtid_set.add(UUID_A, 6)) == f"{UUID_A}:1-7"
    assert str(gtid_set.add(UUID_A, 3)) == f"{UUID_A}:1-5:7"
    assert str(gtid_set.add(UUID_B.upper(), 1)) == f"{UUID_B}:1,{UUID_A}:1-5:7"
    assert str(gtid_set.add(UUID_A, 9, tag="Batch")) == f"{UUID_A}:1-5:7:batch:9"
    assert str(gtid_set) == f"{UUID_A}:1-5:7"  # immutable


def test_contains_single_gtids() -> None:
    gtid_set = MysqlGtidSet.parse(f"{UUID_A}:1-5:7")
    assert f"{UUID_A}:1" in gtid_set
    assert f"{UUID_A.upper()}:5" in gtid_set
    assert MysqlGtid(UUID_A, 7) in gtid_set
    assert f"{UUID_A}:6" not in gtid_set
    assert f"{UUID_B}:1" not in gtid_set


def test_set_algebra_examples() -> None:
    a = MysqlGtidSet.parse(f"{UUID_A}:1-10,{UUID_B}:1-3")
    b = MysqlGtidSet.parse(f"{UUID_A}:4-6")
    assert str(a - b) == f"{UUID_B}:1-3,{UUID_A}:1-3:7-10"
    assert str(a & b) == f"{UUID_A}:4-6"
    assert b.issubset(a) and b <= a and a >= b
    assert not a.issubset(b)
    assert (a - b) | b == a
    assert len(a) == 13


def test_equal_sets_hash_alike() -> None:
    one = MysqlGtidSet.parse(f"{UUID_A}:1-3:4-5")
    other = MysqlGtidSet.parse(f"{UUID_A.upper()}:1-5")
    assert one == other
    assert len({one, other}) == 1


def test_mysql_gtid_parse_and_str() -> None:
    assert MysqlGtid.parse(f"{UUID_A.upper()}:42") == MysqlGtid(UUID_A, 42)
    assert str(MysqlGtid.parse(f"{UUID_A}:Tag:42")) == f"{UUID_A}:tag:42"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not-a-uuid:1-5", "is not a server uuid"),
        (UUID_A, "has no transaction numbers"),
        (f"{UUID_A}:5-3", "ends before it starts"),
        (f"{UUID_A}:0", "out of range"),
        (f"{UUID_A}:{2**63}", "out of range"),
        (f"{UUID_A}:1-x", "neither an interval"),
        (f"{UUID_A}:9tag:1", "neither an interval"),
        (f"{UUID_A}:tag", "tag 'tag' has no transaction numbers"),
        (f"{UUID_A}:a:b:1", "tag 'a' has no transaction numbers"),
        (f"{UUID_A}:1,,{UUID_B}:1", "has no transaction numbers"),
    ],
)
def test_malformed_mysql_sets_say_what_was_expected(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="not a MySQL GTID set") as info:
        MysqlGtidSet.parse(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text", ["", f"{UUID_A}", f"{UUID_A}:0", f"{UUID_A}:1-2", "x:1"])
def test_malformed_single_mysql_gtids(text: str) -> None:
    with pytest.raises(ValueError, match="not a MySQL GTID"):
        MysqlGtid.parse(text)


# --- MySQL GTID sets: properties --------------------------------------------------------

uuids = st.sampled_from([UUID_A, UUID_B, UUID_C])
tags = st.sampled_from(["", "", "alpha", "b_2"])
gnos = st.integers(min_value=1, max_value=60)


@st.composite
def gtid_sets(draw: st.DrawFn) -> MysqlGtidSet:
    result = MysqlGtidSet.empty()
    for uuid, tag, first, length in draw(
        st.lists(st.tuples(uuids, tags, gnos, st.integers(0, 8)), max_size=8)
    ):
        for gno in range(first, first + length + 1):
            result = result.add(uuid, gno, tag)
    return result


@given(gtid_sets())
def test_text_round_trip(gtid_set: MysqlGtidSet) -> None:
    assert MysqlGtidSet.parse(str(gtid_set)) == gtid_set
    assert MysqlGtidSet.parse(str(gtid_set).replace(",", ",\n")) == gtid_set


@given(gtid_sets(), gtid_sets())
def test_union_is_commutative(a: MysqlGtidSet, b: MysqlGtidSet) -> None:
    assert a | b == b | a


@given(gtid_sets(), gtid_sets(), gtid_sets())
def test_union_is_associative(a: MysqlGtidSet, b: MysqlGtidSet, c: MysqlGtidSet) -> None:
    assert (a | b) | c == a | (b | c)


@given(gtid_sets())
def test_union_is_idempotent(a: MysqlGtidSet) -> None:
    assert a | a == a
    assert a | MysqlGtidSet.empty() == a


@given(gtid_sets(), gtid_sets())
def test_difference_then_union_recovers(a: MysqlGtidSet, b: MysqlGtidSet) -> None:
    assert (a - b) | b == a | b
    assert (a - b) & b == MysqlGtidSet.empty()
    assert (a - b).issubset(a)
    assert a - a == MysqlGtidSet.empty()


@given(gtid_sets(), gtid_sets())
def test_algebra_agrees_with_python_sets(a: MysqlGtidSet, b: MysqlGtidSet) -> None:
    assert set(a | b) == set(a) | set(b)
    assert set(a - b) == set(a) - set(b)
    assert set(a & b) == set(a) & set(b)
    assert a.issubset(b) == set(a).issubset(set(b))
    assert len(a) == len(set(a))


@given(gtid_sets(), uuids, tags, gnos)
def test_add_is_monotone_and_contains(
    gtid_set: MysqlGtidSet, uuid: str, tag: str, gno: int
) -> None:
    grown = gtid_set.add(uuid, gno, tag)
    assert gtid_set.issubset(grown)
    assert MysqlGtid(uuid, gno, tag) in grown
    assert len(grown) - len(gtid_set) in (0, 1)
    assert grown.add(uuid, gno, tag) == grown


@given(gtid_sets())
def test_canonical_text_has_no_adjacent_intervals(gtid_set: MysqlGtidSet) -> None:
    for _, intervals in gtid_set.entries:
        for (_, last), (first, _) in zip(intervals, intervals[1:], strict=False):
            assert first > last + 1


@given(uuids, st.lists(gnos, min_size=1, max_size=30))
def test_adding_in_any_order_gives_the_same_set(uuid: str, numbers: list[int]) -> None:
    forward = MysqlGtidSet.empty()
    for gno in numbers:
        forward = forward.add(uuid, gno)
    backward = MysqlGtidSet.empty()
    for gno in reversed(numbers):
        backward = backward.add(uuid, gno)
    assert forward == backward
    assert set(forward) == {MysqlGtid(uuid, gno) for gno in numbers}


# --- MariaDB GTID positions -------------------------------------------------------------


def test_mariadb_position_parse_and_format() -> None:
    position = MariadbGtidPosition.parse(" 1-2-5, 0-1-100 ")
    assert str(position) == "0-1-100,1-2-5"
    assert position.get(1) == MariadbGtid(1, 2, 5)
    assert position.get(7) is None
    assert position.domains() == (0, 1)
    assert MariadbGtidPosition.parse("") == MariadbGtidPosition.empty()
    assert str(MariadbGtidPosition.empty()) == ""


def test_mariadb_advance_replaces_the_domain_entry() -> None:
    position = MariadbGtidPosition.parse("0-1-100,1-2-5")
    assert str(position.advance(0, 3, 101)) == "0-3-101,1-2-5"
    assert str(position.advance(2, 1, 1)) == "0-1-100,1-2-5,2-1-1"
    assert str(position.advance_gtid("1-2-6")) == "0-1-100,1-2-6"
    assert str(position) == "0-1-100,1-2-5"  # immutable


def test_mariadb_contains_means_already_applied() -> None:
    position = MariadbGtidPosition.parse("0-1-100,1-2-5")
    assert "0-1-100" in position
    assert "0-7-99" in position  # the server id does not matter inside a domain
    assert MariadbGtid(1, 2, 1) in position
    assert "0-1-101" not in position
    assert "2-1-1" not in position


def test_mariadb_comparisons() -> None:
    early = MariadbGtidPosition.parse("0-1-10")
    late = MariadbGtidPosition.parse("0-1-20,1-1-1")
    assert late.covers(early) and early <= late and late >= early
    assert not early.covers(late)
    assert str(early.merge(MariadbGtidPosition.parse("0-2-5,3-1-1"))) == "0-1-10,3-1-1"
    assert MariadbGtidPosition.parse("1-1-1,0-1-10") == MariadbGtidPosition.parse("0-1-10,1-1-1")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0-1", "expected domain-server-sequence"),
        ("0-1-2-3", "expected domain-server-sequence"),
        ("a-b-c", "expected domain-server-sequence"),
        ("0-1-2,,1-1-1", "expected domain-server-sequence"),
        ("0-1-2,0-3-4", "domain 0 appears twice"),
        (f"{2**32}-1-1", "32-bit"),
        (f"0-1-{2**64}", "64-bit"),
    ],
)
def test_malformed_mariadb_positions_say_what_was_expected(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="not a MariaDB GTID position") as info:
        MariadbGtidPosition.parse(text)
    assert fragment in str(info.value)


mariadb_positions = st.dictionaries(
    st.integers(0, 2**32 - 1),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)),
    max_size=5,
).map(
    lambda entries: MariadbGtidPosition.empty().merge(
        MariadbGtidPosition.parse(
            ",".join(f"{d}-{server}-{seq}" for d, (server, seq) in entries.items())
        )
    )
)


@given(mariadb_positions)
def test_mariadb_text_round_trip(position: MariadbGtidPosition) -> None:
    assert MariadbGtidPosition.parse(str(position)) == position


@given(mariadb_positions, st.integers(0, 9), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))
def test_mariadb_advance_then_contains(
    position: MariadbGtidPosition, domain: int, server: int, seq: int
) -> None:
    advanced = position.advance(domain, server, seq)
    assert MariadbGtid(domain, server, seq) in advanced
    assert advanced.get(domain) == MariadbGtid(domain, server, seq)
    assert set(advanced.domains()) == set(position.domains()) | {domain}


def test_parse_gtid_position_by_flavor() -> None:
    assert parse_gtid_position(f"{UUID_A}:1-3", "mysql") == MysqlGtidSet.parse(f"{UUID_A}:1-3")
    assert parse_gtid_position("0-1-3", "mariadb") == MariadbGtidPosition.parse("0-1-3")
    with pytest.raises(ValueError, match="expected 'mysql' or 'mariadb'"):
        parse_gtid_position("0-1-3", "postgres")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a MariaDB GTID position"):
        parse_gtid_position(f"{UUID_A}:1-3", "mariadb")
