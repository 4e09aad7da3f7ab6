"""The topics a daemon writes its tables' changes to: the table -> topic map that it logs
at start and ``cdcd check`` prints, with the tables whose names Kafka cannot carry as
they are, and the tables that would end up on one topic (or on two that Kafka takes for
one: it refuses a topic whose name differs from an existing one only in '.' and '_')."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cdcd.envelope import KAFKA_TOPIC_CHARS, MAX_TOPIC_LENGTH, EnvelopeEncoder


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


def table_topics(encoder: EnvelopeEncoder, tables: Iterable[tuple[str, str]]) -> list[TableTopic]:
    """Each table's topic, as the encoder names it when it writes the table's changes."""
    mapping = []
    for namespace, table in tables:
        topic = encoder.topic_for(namespace, table)
        renamed = topic != f"{encoder.topic_prefix}.{namespace}.{table}"
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


async def warn_about_topics(source: Any, encoder: EnvelopeEncoder, log: Any) -> None:
    """At start: the warnings of ``log_topics`` for the tables ``source`` captures."""
    log_topics(log, table_topics(encoder, await source.captured_tables()))
