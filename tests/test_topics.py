"""Topic names: made valid for Kafka as Debezium's topic naming strategy does, and the
table -> topic map a daemon warns about and ``cdcd check`` prints."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from cdcd.topics import (
    TopicNaming,
    describe,
    kafka_topic_name,
    log_topics,
    shared_topics,
    table_topics,
)

# org.apache.kafka.common.internals.Topic.validate: legal characters, length, not . or ..
_VALID = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def _valid_kafka_name(topic: str) -> bool:
    return _VALID.fullmatch(topic) is not None and topic not in (".", "..")


def test_names_kafka_allows_are_kept():
    assert kafka_topic_name("shop.public.orders") == "shop.public.orders"
    assert kafka_topic_name("a-b_c.D9") == "a-b_c.D9"


def test_other_characters_become_underscores_as_debezium_writes_them():
    assert kafka_topic_name('q.public.quo"te') == "q.public.quo_te"
    assert kafka_topic_name("q.public.ünï") == "q.public._n_"
    assert kafka_topic_name("m.my-db.T 1") == "m.my-db.T_1"
    # Debezium replaces each UTF-16 unit: a character beyond the BMP is two.
    assert kafka_topic_name("p.s.a\U0001f600b") == "p.s.a__b"


def test_long_names_are_cut_to_249_and_reserved_names_replaced():
    assert kafka_topic_name("x" * 300) == "x" * 249
    assert kafka_topic_name(".") == "_" and kafka_topic_name("..") == "__"


@given(st.text(min_size=1, max_size=400))
def test_every_topic_name_produced_is_a_valid_kafka_name(name):
    assert _valid_kafka_name(kafka_topic_name(name))


@given(st.text(max_size=120), st.text(max_size=120))
def test_every_table_gets_a_valid_topic(namespace, table):
    topic = TopicNaming("shop").for_table(namespace, table)
    assert _valid_kafka_name(topic)


class _Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict]] = []

    def warning(self, message: str, **fields) -> None:
        self.warnings.append((message, fields))


def test_the_map_names_renamed_and_shared_topics():
    naming = TopicNaming("q")
    tables = [("public", "orders"), ("public", 'quo"te'), ("public", "quo'te"), ("public", "a.b")]
    tables.append(("public", "a_b"))
    mapping = table_topics(naming, tables)
    assert [(m.topic, m.renamed) for m in mapping] == [
        ("q.public.orders", False),
        ("q.public.quo_te", True),
        ("q.public.quo_te", True),
        ("q.public.a.b", False),
        ("q.public.a_b", False),
    ]
    groups = shared_topics(mapping)
    assert [[m.name for m in group] for group in groups] == [
        ['public.quo"te', "public.quo'te"],
        ["public.a.b", "public.a_b"],  # Kafka refuses the second: '.' and '_' collide
    ]
    log = _Log()
    log_topics(log, mapping)
    messages = [message for message, _ in log.warnings]
    assert messages[:2] == [
        'table public.quo"te is written to topic q.public.quo_te',
        "table public.quo'te is written to topic q.public.quo_te",
    ]
    assert "share the topic q.public.quo_te" in messages[2]
    assert "which Kafka takes for one" in messages[3]
    lines = describe(mapping)
    assert lines[0] == "tables -> topics (5):"
    assert lines[1] == "  public.orders -> q.public.orders"
    assert lines[2].startswith('  public.quo"te -> q.public.quo_te  (renamed: Kafka allows only')
    assert lines[-2].startswith("WARNING: tables public.quo\"te, public.quo'te share the topic")


def test_an_empty_map_says_so():
    assert describe([]) == ["tables -> topics: no existing table is captured"]
