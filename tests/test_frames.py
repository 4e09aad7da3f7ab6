"""Frames from the binlog reader process to the daemon: what goes in comes out."""

from __future__ import annotations

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
