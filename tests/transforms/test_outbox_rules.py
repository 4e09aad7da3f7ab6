"""The outbox router on messages: defaults, placements, expansion, deletes and updates,
a missing column."""

from __future__ import annotations

import pytest
from messages import change, commit, messages

from cdcd.envelope import CommitMark, Message
from cdcd.errors import ConfigError
from cdcd.transforms.builtin import DeleteTombstones
from cdcd.transforms.config import OutboxConfig
from cdcd.transforms.outbox import OutboxRouter

ROW = {
    "id": "e-1",
    "aggregatetype": "Order",
    "aggregateid": "42",
    "type": "Created",
    "payload": '{"a": 1}',
    "tenant": 3,
}


def _router(**options) -> OutboxRouter:
    return OutboxRouter(OutboxConfig.model_validate({"tables": ["shop.outbox"], **options}))


def test_an_insert_becomes_the_payload_on_the_routed_topic_keyed_by_aggregateid():
    other = change("c", {"id": 1}, table="orders")
    out = _router().apply(messages(other, change("c", ROW, table="outbox"), commit()))
    assert [type(i) for i in out] == [Message, Message, CommitMark]
    routed = out[1]
    assert (routed.topic, routed.key, routed.value) == ("outbox.event.Order", "42", '{"a": 1}')
    assert routed.headers == [("id", b"e-1")]
    assert routed.event is None  # no longer a row change for the transforms after it
    assert out[0].topic == "p.shop.orders" and out[0].value["after"] == {"id": 1}


def test_debezium_option_names_placements_and_expansion():
    router = _router(
        **{
            "route.by.field": "type",
            "route.topic.replacement": "events.${routedByValue}",
            "table.field.event.key": "tenant",
            "table.expand.json.payload": True,
            "table.fields.additional.placement": "type:header:eventType,tenant:envelope",
        }
    )
    (routed,) = router.apply(messages(change("c", ROW, table="outbox")))
    assert routed.topic == "events.Created" and routed.key == 3
    assert routed.value == {"payload": {"a": 1}, "tenant": 3}
    assert routed.headers == [("id", b"e-1"), ("eventType", b"Created")]


def test_deletes_and_their_tombstones_publish_nothing_updates_are_warned_once(capsys):
    items = messages(
        change("d", None, ROW, table="outbox"),
        change("u", ROW, ROW, table="outbox"),
        change("u", ROW, ROW, table="outbox"),
        commit(),
    )
    router = _router()
    out = router.apply(DeleteTombstones().apply(items))
    assert [type(i) for i in out] == [CommitMark]
    assert router.dropped == 3
    warnings = [line for line in capsys.readouterr().out.splitlines() if "UPDATE" in line]
    assert len(warnings) == 1, warnings


def test_a_missing_column_stops_with_the_option_and_the_column():
    row = {k: v for k, v in ROW.items() if k != "aggregateid"}
    with pytest.raises(ConfigError) as err:
        _router().apply(messages(change("c", row, table="outbox")))
    assert str(err.value).startswith(
        "outbox.table_field_event_key: outbox table shop.outbox has no column 'aggregateid'"
    )


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"tables": ["outbox"]}, "is not schema.table"),
        ({"tables": ["a.b"], "additional_placement": ["type:body"]}, "column:header"),
        ({"tables": ["a.b"], "route_by_field": "x", "route.by.field": "y"}, "same setting"),
        ({"tables": ["a.b"], "table_field_event_idd": "x"}, "Extra inputs"),
    ],
)
def test_bad_options_are_refused(options, needle):
    with pytest.raises(ValueError, match=needle):
        OutboxConfig.model_validate(options)
