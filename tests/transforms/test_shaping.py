"""Routing and shaping on messages: every [shaping] and [flatten] option, and the
configuration errors, one line naming the key."""

from __future__ import annotations

import hashlib

import pytest
from messages import change, commit, messages

from cdcd.config import parse_config
from cdcd.envelope import CommitMark, Message
from cdcd.errors import ConfigError
from cdcd.transforms import build_transforms
from cdcd.transforms.builtin import DeleteTombstones
from cdcd.transforms.columns import ColumnShaper, java_serialized
from cdcd.transforms.config import FlattenConfig, ShapingConfig
from cdcd.transforms.flatten import ExtractNewRecordState
from cdcd.transforms.routing import Filter, RegexRouter, java_replacement

ROW = {"id": 1, "customer": "ann", "amount": 40, "email": "ann@example.com", "note": "x" * 30}


def _shaper(**options) -> ColumnShaper:
    return ColumnShaper(ShapingConfig.model_validate(options))


def test_debezium_hash_v1_bytes_are_java_serialisation_as_in_its_own_test():
    # MaskStringsTest: salt "salt", SHA-256, V1.
    digest = hashlib.sha256(b"salt" + java_serialized("hello")).hexdigest()
    assert digest == "af5843a0f0e728ab0332c8888b6e1190bfb79e584f0d40538de8f10df6ef29c6"
    assert java_serialized("a\0") == b"\xac\xed\x00\x05\x74\x00\x03a\xc0\x80"
    assert java_serialized("\U0001f600")[5:7] == b"\x00\x06"  # two 3-byte surrogates
    assert java_serialized("x" * 70_000)[4:5] == b"\x7c"  # TC_LONGSTRING


def test_mask_hash_truncate_and_exclude_change_copies_of_the_rows():
    event = change("u", dict(ROW), dict(ROW))
    shaper = _shaper(
        **{
            "column.mask.with.4.chars": "shop.orders.customer",
            "column.mask.hash.SHA-256.with.salt.pepper": ["shop.orders.email"],
            "column.mask.hash.v2.SHA-256.with.salt.pepper": "shop.orders.amount",  # not a string
            "column.truncate.to.5.chars": "shop\\.orders\\.no.*",
            "column.exclude.list": "shop.orders.id",
        }
    )
    (message,) = shaper.apply(messages(event))
    expected_hash = hashlib.sha256(b"pepper" + java_serialized("ann@example.com")).hexdigest()
    assert message.value["after"] == {
        "customer": "****",
        "amount": 40,
        "email": expected_hash,
        "note": "xxxxx",
    }
    assert message.value["before"] == message.value["after"]
    assert event.after == ROW  # the source's row untouched
    assert message.key == {"id": 1}  # the key keeps its columns


def test_hash_v2_is_the_values_bytes_alone_and_include_list_keeps_only_its_columns():
    shaper = _shaper(
        **{
            "column.mask.hash.v2.SHA-512.with.salt.s": "shop.orders.email",
            "column.include.list": ["shop.orders.(id|email)"],
        }
    )
    (message,) = shaper.apply(messages(change("c", dict(ROW))))
    digest = hashlib.sha512(b"s" + b"ann@example.com").hexdigest()
    assert message.value["after"] == {"id": 1, "email": digest}


def test_message_key_columns():
    shaper = _shaper(**{"message.key.columns": "shop.orders:customer,amount;other.t:x"})
    (message,) = shaper.apply(messages(change("c", dict(ROW))))
    assert message.key == {"customer": "ann", "amount": 40}
    with pytest.raises(ConfigError, match="shaping.message.key.columns: table shop.orders has no"):
        _shaper(**{"message.key.columns": "shop.orders:nope"}).apply(messages(change("c", ROW)))


def test_filter_by_operation_and_condition_drops_a_deletes_tombstone_with_it():
    config = ShapingConfig.model_validate(
        {"filter.condition": "amount >= 40 and customer != 'bob'", "filter.operations": "c,d"}
    )
    bob = {**ROW, "id": 2, "customer": "bob"}
    items = DeleteTombstones().apply(
        messages(
            change("c", ROW),
            change("c", bob),
            change("u", ROW, ROW),
            change("d", None, bob),
            change("d", None, ROW),
            commit(),
        )
    )
    filter_ = Filter(config)
    out = filter_.apply(items)
    kept = [(m.event.op, m.key["id"], m.value is None) for m in out if type(m) is Message]
    assert kept == [("c", 1, False), ("d", 1, False), ("d", 1, True)]
    assert type(out[-1]) is CommitMark
    assert filter_.dropped == 3
    with pytest.raises(ConfigError, match="shaping.filter.condition: table shop.orders has no"):
        Filter(ShapingConfig.model_validate({"filter.condition": "x == 1"})).apply(
            messages(change("c", ROW))
        )


def test_regex_router_with_java_replacement():
    assert java_replacement("$1-x-${name}\\$") == "\\g<1>-x-\\g<name>$"
    router = RegexRouter(r"p\.shop\.(.*)", "routed.$1")
    out = router.apply(messages(change("c", ROW), change("c", ROW, table="items")))
    assert [m.topic for m in out] == ["routed.orders", "routed.items"]
    untouched = RegexRouter("nomatch", "x").apply(messages(change("c", ROW)))
    assert untouched[0].topic == "p.shop.orders"


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("tombstone", [("c", False), ("d", True)]),
        ("drop", [("c", False)]),
        ("rewrite", [("c", "false"), ("d", "true")]),
        ("rewrite-with-tombstone", [("c", "false"), ("d", "true"), ("d", True)]),
        ("delete-to-tombstone", [("c", False), ("d", True)]),
    ],
)
def test_flatten_delete_tombstone_handling_modes(mode, expected):
    flatten = ExtractNewRecordState(
        FlattenConfig.model_validate({"delete.tombstone.handling.mode": mode})
    )
    items = DeleteTombstones().apply(messages(change("c", ROW), change("d", None, ROW)))
    out = [m for m in flatten.apply(items) if type(m) is Message]

    def shape(m):
        if m.value is None:
            return (m.event.op, True)
        return (m.event.op, m.value.get("__deleted", False))

    assert [shape(m) for m in out] == expected
    if mode == "rewrite":
        assert out[1].value == {**ROW, "__deleted": "true"}


def test_flatten_add_fields_and_headers_with_the_prefix():
    flatten = ExtractNewRecordState(
        FlattenConfig.model_validate(
            {"add.fields": "op,table,lsn,source.ts_ms", "add.headers": "db"}
        )
    )
    (message,) = flatten.apply(messages(change("c", ROW)))
    assert message.value == {
        **ROW,
        "__op": "c",
        "__table": "orders",
        "__lsn": 1234,
        "__source_ts_ms": 1_700_000_000_123,
    }
    assert message.headers == [("__db", b"app")]
    bad = ExtractNewRecordState(FlattenConfig.model_validate({"add.fields": "nope"}))
    with pytest.raises(ConfigError, match="flatten.add.fields: 'nope' is neither"):
        bad.apply(messages(change("c", ROW)))


def _config(**sections):
    return {
        "name": "t",
        "source": {"kind": "postgres", "dsn": "postgresql://x/y", "tables": ["shop\\..*"]},
        "sink": {"kind": "kafka", "bootstrap_servers": "k:9092", "topic_prefix": "p"},
        **sections,
    }


@pytest.mark.parametrize(
    "sections, needle",
    [
        (
            {"shaping": {"column.mask.with.x.chars": "a.b.c"}},
            '"column.mask.with.x.chars" is not a known option',
        ),
        ({"shaping": {"colum.include.list": "a"}}, "is not a known option"),
        ({"shaping": {"column.mask.hash.SHA-999.with.salt.s": "a.b.c"}}, "is not a hash algorithm"),
        ({"shaping": {"regex": "a("}}, "is not a regular expression"),
        ({"shaping": {"regex": "a"}}, "regex and replacement go together"),
        ({"shaping": {"filter.condition": "amount >> 3"}}, "cannot read 'amount >> 3'"),
        ({"shaping": {"filter.operations": ["x"]}}, "shaping.filter_operations"),
        ({"shaping": {"message.key.columns": "nocolumns"}}, "message.key.columns: 'nocolumns'"),
        ({"flatten": {"delete.tombstone.handling.mode": "keep"}}, "'keep' is not one of"),
        ({"flatten": {"add.field": "op"}}, "flatten.add.field"),
        ({"outbox": {"tables": ["other.outbox"]}}, "outbox.tables: other.outbox is not captured"),
        ({"rollup": {"tables": ["other.t"]}}, "rollup.tables: other.t is not captured"),
        (
            {"outbox": {"tables": ["shop.o"]}, "rollup": {"tables": ["shop.o"]}},
            "rollup.tables: shop.o is an outbox",
        ),
        ({"rollup": {"tables": ["shop.t"], "max_changes": 0}}, "rollup.max_changes"),
        ({"rollup": {"tables": ["orders"]}}, "'orders' is not schema.table"),
        ({"transforms": {"hook": "no_such_module_x:f"}}, "cannot import no_such_module_x"),
        ({"transforms": {"hook": "json:nope"}}, "json has no function nope"),
    ],
)
def test_bad_options_are_one_line_naming_the_key(sections, needle):
    with pytest.raises(ConfigError) as err:
        parse_config(_config(**sections))
    message = str(err.value)
    assert needle in message and "\n" not in message, message


def test_nothing_configured_is_todays_four_rules():
    kinds = [type(t).__name__ for t in build_transforms(parse_config(_config()))]
    assert kinds == ["TableTopics", "DeleteTombstones"]
    everything = parse_config(
        _config(
            shaping={
                "column.exclude.list": "a.b.c",
                "filter.operations": "c",
                "regex": "a",
                "replacement": "b",
            },
            flatten={},
            outbox={"tables": ["shop.outbox"]},
            rollup={"tables": ["shop.orders"]},
            transforms={"hook": "json:dumps"},
        )
    )
    kinds = [type(t).__name__ for t in build_transforms(everything)]
    assert kinds == [
        "ColumnShaper",
        "TableTopics",
        "DeleteTombstones",
        "OutboxRouter",
        "Filter",
        "TransactionRollup",
        "ExtractNewRecordState",
        "RegexRouter",
        "Hook",
    ]
