"""Frames from the binlog reader process to the daemon: what goes in comes out."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdcd import frames
from cdcd.errors import DecodeError, SourceUnavailableError
from cdcd.events import ChangeEvent, Commit, SchemaChange
from cdcd.positions import MysqlPosition

# Text as decoded from the server's bytes: no lone surrogates.
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
# Values as the row decoder makes them: Debezium's JSON types.
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
    st.fixed_dictionaries({"wkb": text, "srid": st.none() | st.integers(0, 2**31)}),
)
rows = st.dictionaries(text, values, max_size=5)
sources = st.fixed_dictionaries(
    {
        "db": text,
        "table": text,
        "pos": st.integers(0, 2**40),
        "gtid": st.none() | text,
    }
)
changes = st.builds(
    ChangeEvent,
    st.sampled_from("cud"),
    text,
    text,
    st.none() | rows,
    st.none() | rows,
    st.none() | rows,
    sources,
    st.none() | text,
)
positions = st.builds(
    MysqlPosition,
    st.sampled_from(["mysql", "mariadb"]),
    st.none() | text,
    text,
    st.integers(0, 2**40),
    st.integers(0, 10**6),
)
commits = st.builds(
    Commit,
    positions,
    st.none() | text,
    st.integers(0, 2**45),
    st.integers(0, 10**6),
    st.dictionaries(text, st.integers(-(2**63), 2**63 - 1)),
)
schema_changes = st.builds(
    SchemaChange,
    text,
    text,
    sources,
    st.lists(st.dictionaries(text, text)),
)


def _payload(frame: bytes) -> bytes:
    length = int.from_bytes(frame[:4], "little")
    assert len(frame) == 4 + length
    return frame[4:]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(changes, commits, schema_changes), max_size=8))
def test_a_chunk_comes_out_as_it_went_in(items):
    frame = frames.encode(items)
    assert frame[4:5] == frames.JSON
    assert frames.decode(_payload(frame)) == items


def test_a_value_json_cannot_carry_goes_as_a_pickle():
    big = ChangeEvent("c", "db", "t", {"id": 1}, None, {"n": 2**70}, {"db": "db"}, None)
    frame = frames.encode([big])
    assert frame[4:5] == frames.PICKLE
    assert frames.decode(_payload(frame)) == [big]


def test_errors_keep_their_class_and_message():
    for error in (DecodeError("a compressed event at f:4"), SourceUnavailableError("lost")):
        back = frames.decode(_payload(frames.encode(error)))
        assert type(back) is type(error) and str(back) == str(error)


def _chunk(rows: list[ChangeEvent], done: bool = False) -> Any:
    from cdcd.snapshot import Chunk, SnapshotTable

    return Chunk(
        SnapshotTable("s", "t", ("id",), 7), rows, [rows[-1].key["id"]] if rows else None, done
    )


def test_a_snapshot_chunk_comes_out_as_it_went_in_its_source_block_sent_once_and_shared():
    from decimal import Decimal

    source = {"db": "d", "schema": "s", "table": "t", "lsn": 2**40, "txId": None}
    rows = [
        ChangeEvent(
            "r",
            "s",
            "t",
            {"id": i},
            None,
            {"id": i, "big": 2**70, "f": 0.1, "x": [1, None]},
            source,
        )
        for i in range(3)
    ]
    for chunk, format_ in (
        (_chunk(rows, True), frames.CHUNK),
        (_chunk([]), frames.CHUNK),
        # rows with sources of their own, or a value marshal cannot carry: pickled
        (
            _chunk([*rows[:2], ChangeEvent("r", "s", "t", {"id": 9}, None, {}, dict(source))]),
            frames.PICKLE,
        ),
        (
            _chunk([ChangeEvent("r", "s", "t", {"id": 1}, None, {"d": Decimal("1.5")}, source)]),
            frames.PICKLE,
        ),
    ):
        data = frames.encode_chunk(chunk)
        assert int.from_bytes(data[:4], "little") == len(data) - 4 and data[4:5] == format_
        back = frames.decode_chunk(data[4:])
        assert back == chunk
        if format_ == frames.CHUNK and chunk.rows:
            assert len({id(e.source) for e in back.rows}) == 1
    error = frames.decode_chunk(frames.encode(SourceUnavailableError("gone"))[4:])
    assert isinstance(error, SourceUnavailableError)
