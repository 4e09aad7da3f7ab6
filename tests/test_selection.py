"""Table selection: entries are anchored, case-insensitive regular expressions over the
qualified name (as Debezium's include lists), or inline tables naming one literally."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdcd.selection import TableFilter, parse_entry


def selection(tables=None, exclude_tables=(), databases=None, exclude_databases=()):
    return TableFilter(tables, exclude_tables, databases, exclude_databases)


def test_a_plain_name_keeps_working_and_matches_the_whole_name_only():
    chosen = selection(["shop.orders"])
    assert chosen.includes("shop", "orders")
    # Anchored at both ends: Debezium matches with Matcher.matches(), not find().
    assert not chosen.includes("shop", "orders_archive")
    assert not chosen.includes("myshop", "orders")


def test_case_insensitive_for_ascii_letters_as_javas_case_insensitive():
    chosen = selection(["Shop.ORDERS", "public.ünï"])
    assert chosen.includes("shop", "orders") and chosen.includes("SHOP", "Orders")
    assert chosen.includes("public", "ünï")
    assert not chosen.includes("public", "ÜNÏ")  # Java folds ASCII only (no UNICODE_CASE)


def test_patterns_select_several_tables_and_exclusions_win():
    chosen = selection([r"shop\.order_.*", "crm.(people|firms)"], exclude_tables=[r".*\.order_tmp"])
    assert chosen.includes("shop", "order_lines") and chosen.includes("crm", "firms")
    assert not chosen.includes("shop", "order_tmp")
    assert not chosen.includes("shop", "orders")
    assert not chosen.includes("crm", "peoplefirms")


def test_database_patterns():
    chosen = selection(databases=["shop_.*"], exclude_databases=["shop_test"])
    assert chosen.includes("shop_eu", "x") and chosen.includes("SHOP_US", "y")
    assert not chosen.includes("shop_test", "x") and not chosen.includes("crm", "x")
    assert chosen.includes_database("shop_eu") and not chosen.includes_database("shop")


def test_a_literal_entry_names_one_table_exactly():
    chosen = selection(
        [
            {"schema": "public", "table": "with.dot"},
            {"database": "my-db", "table": "T 1"},
            {"schema": "public", "table": 'quo"te'},
        ]
    )
    assert chosen.includes("public", "with.dot") and not chosen.includes("public", "withxdot")
    assert chosen.includes("my-db", "T 1") and not chosen.includes("my-db", "t 1")
    assert chosen.includes("public", 'quo"te')
    assert selection(databases=[{"schema": "a.b"}]).includes("a.b", "t")
    assert not selection(databases=[{"schema": "a.b"}]).includes("axb", "t")


def test_a_name_with_a_space_is_a_plain_pattern():
    # Refused before ("must be written as 'schema.table'").
    assert selection(["public.with space"]).includes("public", "with space")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tables", "public.(", "'public.(' is not a valid regular expression (missing ), unterminated subpattern at position 7)"),
        ("tables", "", "an entry is empty"),
        ("tables", {"table": "t"}, "must be written {schema = \"...\", table = \"...\"}"),
        ("tables", {"schema": "s", "database": "s", "table": "t"}, "must be written"),
        ("tables", {"schema": "s", "table": ""}, "the names must be non-empty strings"),
        ("databases", {"schema": "s", "table": "t"}, "must be written {schema = \"...\"}"),
        ("databases", 7, "7 is neither a regular expression"),
    ],
)
def test_invalid_entries_say_what_is_wrong(key, value, message):
    with pytest.raises(ValueError) as info:
        parse_entry(key, value)
    assert message in str(info.value)


def test_unmatched_entries_are_named():
    existing = [("shop", "orders"), ("shop", "secrets"), ("crm", "people")]
    chosen = selection(
        ["shop.orders", "shop.nope", "shop.secrets", {"schema": "crm", "table": "People"}],
        exclude_tables=["shop.secrets"],
        databases=["shop", "crm", "hr"],
    )
    assert chosen.unmatched(existing, ["shop", "crm", "public"]) == [
        ("tables", "'shop.nope'", []),
        ("tables", "'shop.secrets'", ["shop.secrets"]),  # matches only an excluded table
        ("tables", '"crm"."People"', []),  # literal: exact case
        ("databases", "'hr'", []),
    ]


def test_results_are_cached_per_table():
    chosen = selection([r"shop\..*"])
    assert chosen.includes("shop", "a")
    chosen.tables = ()  # a second lookup does not match again
    assert chosen.includes("shop", "a")


names = st.text(min_size=1, max_size=12)


@given(names, names)
def test_an_escaped_name_selects_itself_and_nothing_longer(schema, table):
    chosen = selection([f"{re.escape(schema)}\\.{re.escape(table)}"])
    assert chosen.includes(schema, table)
    assert not chosen.includes(schema, table + "x")
    literal = selection([{"schema": schema, "table": table}])
    assert literal.includes(schema, table) and not literal.includes(schema + "x", table)
