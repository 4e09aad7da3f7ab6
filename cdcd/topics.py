"""The topics a daemon writes its tables' changes to: the table -> topic map that it logs
at start and ``cdcd check`` prints, with the tables whose names Kafka cannot carry as
they are, and the tables that would end up on one topic (or on two that Kafka takes for
one: it refuses a topic whose name differs from an existing one only in '.' and '_')."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# What Kafka allows in a topic name (org.apache.kafka.common.internals.Topic), and its
# longest; "." and ".." are reserved.
KAFKA_TOPIC_CHARS = "a-zA-Z0-9._-"
MAX_TOPIC_LENGTH = 249
_ILLEGAL_TOPIC_CHAR = re.compile(f"[^{KAFKA_TOPIC_CHARS}]")


def _underscores(match: re.Match[str]) -> str:
    # Debezium replaces each Java char, so a character beyond the BMP (two UTF-16 units)
    # becomes two underscores: the same topic as a Debezium connector writes.
    return "__" if ord(match.group()) > 0xFFFF else "_"


def kafka_topic_name(name: str) -> str:
    """``name`` as a valid Kafka topic name, as Debezium's topic naming strategy makes it
    (``sanitizedTopicName``): each character outside ``[a-zA-Z0-9._-]`` replaced by
    ``_``, cut to 249 characters; ``.`` and ``..`` become ``_`` and ``__``."""
    topic = _ILLEGAL_TOPIC_CHAR.sub(_underscores, name)[:MAX_TOPIC_LENGTH]
    if topic in (".", ".."):
        return "_" * len(topic)
    return topic


class TopicNaming:
    """Debezium's default topic naming: ``<topic_prefix>.<schema or database>.<table>``,
    made a valid Kafka name by ``kafka_topic_name`` (once per table, then cached)."""

    def __init__(self, topic_prefix: str) -> None:
        self.topic_prefix = topic_prefix
        self._topics: dict[tuple[str, str], str] = {}

    def for_table(self, namespace: str, table: str) -> str:
        key = (namespace, table)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = kafka_topic_name(f"{self.topic_prefix}.{namespace}.{table}")
        return topic


@dataclass(frozen=True, slots=True)
class TableTopic:
    """A captured table and its topic; ``renamed`` when that is not
    ``<topic_prefix>.<schema>.<table>`` (a character Kafka refuses, or too long)."""

    namespace: str
    table: str
    topic: str
    renamed: bool

    @property
    def name(self) -> str:
        return f"{self.namespace}.{self.table}"


def table_topics(naming: TopicNaming, tables: Iterable[tuple[str, str]]) -> list[TableTopic]:
    """Each table's topic, as the daemon names it when it writes the table's changes."""
    mapping = []
    for namespace, table in tables:
        topic = naming.for_table(namespace, table)
        renamed = topic != f"{naming.topic_prefix}.{namespace}.{table}"
        mapping.append(TableTopic(namespace, table, topic, renamed))
    return mapping


def shared_topics(mapping: Iterable[TableTopic]) -> list[list[TableTopic]]:
    """Groups of two or more tables whose changes would go to one topic, or to topics
    Kafka counts as one ('.' and '_' collide in its metric names)."""
    groups: dict[str, list[TableTopic]] = defaultdict(list)
    for entry in mapping:
        groups[entry.topic.replace(".", "_")].append(entry)
    return [group for group in groups.values() if len(group) > 1]


def _why(entry: TableTopic) -> str:
    if len(entry.topic) == MAX_TOPIC_LENGTH:
        return f"Kafka allows only [{KAFKA_TOPIC_CHARS}], at most {MAX_TOPIC_LENGTH} characters"
    return f"Kafka allows only [{KAFKA_TOPIC_CHARS}] in topic names"


def _shared(group: list[TableTopic]) -> str:
    names = ", ".join(entry.name for entry in group)
    topics = sorted({entry.topic for entry in group})
    if len(topics) == 1:
        return f"tables {names} share the topic {topics[0]}"
    return (
        f"tables {names} go to topics {', '.join(topics)}, which Kafka takes for one "
        "('.' and '_' collide): it refuses to create all but the first"
    )


def describe(mapping: list[TableTopic]) -> list[str]:
    """The lines ``cdcd check`` prints: each table and its topic, then the shared topics."""
    if not mapping:
        return ["tables -> topics: no existing table is captured"]
    lines = [f"tables -> topics ({len(mapping)}):"]
    for entry in mapping:
        note = f"  (renamed: {_why(entry)})" if entry.renamed else ""
        lines.append(f"  {entry.name} -> {entry.topic}{note}")
    lines += [f"WARNING: {_shared(group)}" for group in shared_topics(mapping)]
    return lines


def log_topics(log: Any, mapping: list[TableTopic]) -> None:
    """One warning per renamed table, naming it and its topic, and one per shared topic."""
    for entry in mapping:
        if entry.renamed:
            log.warning(
                f"table {entry.name} is written to topic {entry.topic}",
                table=entry.name,
                topic=entry.topic,
                reason=_why(entry),
            )
    for group in shared_topics(mapping):
        log.warning(_shared(group), tables=[entry.name for entry in group])


async def warn_about_topics(source: Any, naming: TopicNaming, log: Any) -> None:
    """At start: the warnings of ``log_topics`` for the tables ``source`` captures."""
    log_topics(log, table_topics(naming, await source.captured_tables()))
