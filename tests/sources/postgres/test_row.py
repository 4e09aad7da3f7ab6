"""The row converter generated per relation against the plain loop it replaces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdcd.encoding import Encoding
from cdcd.errors import DecodeError
from cdcd.sources.postgres import pgoutput
from cdcd.sources.postgres.rows import UNAVAILABLE_VALUE, Table
from cdcd.sources.postgres.types import make_converter

# int8, int4, varchar, numeric(12,2), text, timestamp(6), json, bool
_TYPES = [(20, -1), (23, -1), (1043, 20), (1700, (12 << 16 | 2) + 4), (25, -1), (1114, 6),
          (114, -1), (16, -1)]  # fmt: skip
_GOOD = [
    "0",
    "42",
    "-7",
    "12.50",
    "NaN",
    "t",
    "f",
    "2026-11-22 08:30:01.123456",
    '{"a": 1}',
    "text",
]


def _table(types: list[tuple[int, int]], names: list[str]) -> Table:
    converters = tuple(make_converter(oid, typmod, None) for oid, typmod in types)
    return Table("public", "t", True, tuple(names), converters, ())


def _outcome(call, values):
    try:
        return "ok", call(values)
    except DecodeError as exc:
        return "error", str(exc)


_value = st.one_of(
    st.none(),
    st.just(pgoutput.UNCHANGED_TOAST),
    st.sampled_from(_GOOD),
    st.sampled_from(_GOOD).map(str.encode),  # binary-format slot: decoded, then converted
    st.text(max_size=8),
)


@given(
    columns=st.lists(st.sampled_from(_TYPES), min_size=0, max_size=12),
    data=st.data(),
)
def test_the_generated_row_is_the_loop_s_row(columns, data):
    names = [f"c{i}'\"{{}}" for i in range(len(columns))]  # quotes and braces stay names
    table = _table(columns, names)
    count = data.draw(st.sampled_from([len(columns), len(columns), max(0, len(columns) - 1),
                                       len(columns) + 1]))  # fmt: skip
    values = tuple(data.draw(_value) for _ in range(count))
    lsn = data.draw(st.integers(0, 2**64 - 1))
    assert _outcome(lambda v: table.row(v, lsn), values) == _outcome(
        lambda v: table._row_checked(v, lsn), values
    )


def test_special_values_and_a_refused_value_named_by_its_column():
    table = _table([(20, -1), (25, -1), (114, -1)], ["id", "note", "meta"])
    assert table.row(("7", pgoutput.UNCHANGED_TOAST, None), 0) == {
        "id": 7,
        "note": UNAVAILABLE_VALUE,
        "meta": None,
    }
    assert table.row((b"8", b"x", '{"a": 1}'), 0) == {"id": 8, "note": "x", "meta": '{"a": 1}'}
    with pytest.raises(
        DecodeError, match=r"^cannot encode public\.t\.id at LSN 0/1A2B3C8: invalid literal"
    ):
        table.row(("seven", "x", None), 0x1A2B3C8)
    with pytest.raises(DecodeError, match=r"^cannot encode public\.t\.\w+ at LSN 16/B374D848: "):
        table.row(("7", "x"), 0x16_B374D848)  # one value short


def test_a_numeric_nan_in_precise_mode_names_table_column_position_and_setting():
    precise = _table([(20, -1), (1700, (10 << 16 | 2) + 4)], ["id", "amount"])
    with pytest.raises(DecodeError) as info:
        precise.row(("7", "NaN"), 0x1A2B3C8)
    assert str(info.value) == (
        "cannot encode public.t.amount at LSN 0/1A2B3C8: numeric value 'NaN' has no "
        'representation in decimal_handling_mode = "precise"; set [encoding] '
        'decimal_handling_mode = "string" (or "double") to encode it, then restart'
    )
    converters = tuple(
        make_converter(oid, -1, None, Encoding(decimal_mode="string")) for oid in (20, 1700)
    )
    as_string = Table("public", "t", True, ("id", "amount"), converters, ())
    assert as_string.row(("7", "NaN"), 0x1A2B3C8) == {"id": 7, "amount": "NAN"}
