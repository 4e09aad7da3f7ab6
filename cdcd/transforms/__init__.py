"""The transform stage: between the envelope and serialisation.

events -> ``EnvelopeBuilder`` -> messages -> transforms, in order -> serializer -> records

A transform takes the messages of one chunk of the stream, in order, and returns the
messages to publish (the same list changed, or a new one): it may drop, reshape, route,
or add messages. Between the messages of a chunk stand ``CommitMark``s, one at each
source commit, which every transform passes on in place (``TransactionMetadata`` ends
its transaction there). Working on whole chunks keeps the stage off the per-event
budget: one call per transform per chunk.

The first transforms are today's rules (``builtin``); ``build_transforms`` puts them in
order from the configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from cdcd.envelope import CommitMark, Message
from cdcd.events import TableSchema

if TYPE_CHECKING:
    from cdcd.config import Config


__all__ = ["CommitMark", "Item", "Transform", "build_transforms"]

# A TableSchema stands among the messages when the serializer writes schemas: passed on.
Item = Message | CommitMark | TableSchema


class Transform(Protocol):
    def apply(self, items: list[Item]) -> list[Item]:
        """The messages (and commit marks, in place) to pass on."""
        ...


# Optional: ``dropped: int``, the change events a transform that filters dropped in its
# last ``apply`` (counted as filtered events by the metrics).


def build_transforms(config: Config, *, restore: dict[str, Any] | None = None) -> list[Transform]:
    """The transforms, in order: operations skipped before anything counts them; the
    connector-level column options (``[shaping]``: include/exclude, masking, hashing,
    truncation, ``message.key.columns``); each change routed to its table's topic;
    transaction metadata; tombstones after deletes; then the SMTs: the outbox router
    (``[outbox]``), the filter, the transaction roll-up (``[rollup]``), the flattening
    (``[flatten]``), the topic regex, and last the Python hook (``[transforms] hook``).
    With none of the new sections configured the list is today's four rules.
    ``restore``: the stored offset's record of a transaction it cuts (the metadata
    counters, the roll-up's next part)."""
    from cdcd.topics import TopicNaming
    from cdcd.transforms.builtin import (
        DeleteTombstones,
        DropOperations,
        TableTopics,
        TransactionMetadata,
    )

    shaping = config.shaping
    transforms: list[Transform] = []
    if config.pipeline.skipped_operations:
        transforms.append(DropOperations(frozenset(config.pipeline.skipped_operations)))
    if shaping is not None and shaping.shapes_columns():
        from cdcd.transforms.columns import ColumnShaper

        transforms.append(ColumnShaper(shaping))
    transforms.append(TableTopics(TopicNaming(config.sink.topic_prefix)))
    if config.transactions.metadata:
        topic = config.transactions.topic or f"{config.sink.topic_prefix}.transaction"
        transforms.append(TransactionMetadata(topic, restore=restore))
    if config.sink.tombstones_on_delete:
        transforms.append(DeleteTombstones())
    if config.outbox.tables:
        from cdcd.transforms.outbox import OutboxRouter

        transforms.append(OutboxRouter(config.outbox))
    if shaping is not None and (shaping.filter_condition or shaping.filter_operations):
        from cdcd.transforms.routing import Filter

        transforms.append(Filter(shaping))
    if config.rollup.tables:
        from cdcd.transforms.rollup import TransactionRollup

        prefix = config.sink.topic_prefix
        topic = config.rollup.topic or f"{prefix}.transactions.rollup"
        transforms.append(TransactionRollup(config.rollup, topic, prefix, restore=restore))
    if config.flatten is not None:
        from cdcd.transforms.flatten import ExtractNewRecordState

        transforms.append(ExtractNewRecordState(config.flatten))
    if shaping is not None and shaping.regex is not None:
        from cdcd.transforms.routing import RegexRouter

        transforms.append(RegexRouter(shaping.regex, shaping.replacement or ""))
    if config.transforms.hook:
        from cdcd.transforms.hook import Hook

        transforms.append(Hook(config.transforms.hook))
    return transforms
