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

if TYPE_CHECKING:
    from cdcd.config import Config


__all__ = ["CommitMark", "Item", "Transform", "build_transforms"]

Item = Message | CommitMark


class Transform(Protocol):
    def apply(self, items: list[Item]) -> list[Item]:
        """The messages (and commit marks, in place) to pass on."""
        ...


# Optional: ``dropped: int``, the change events a transform that filters dropped in its
# last ``apply`` (counted as filtered events by the metrics).


def build_transforms(config: Config, *, restore: dict[str, Any] | None = None) -> list[Transform]:
    """Today's rules, in order: operations skipped before anything counts them, each
    change routed to its table's topic, transaction metadata, tombstones after deletes.
    ``restore``: the metadata counters of a transaction cut by the stored offset."""
    from cdcd.topics import TopicNaming
    from cdcd.transforms.builtin import (
        DeleteTombstones,
        DropOperations,
        TableTopics,
        TransactionMetadata,
    )

    transforms: list[Transform] = []
    if config.pipeline.skipped_operations:
        transforms.append(DropOperations(frozenset(config.pipeline.skipped_operations)))
    transforms.append(TableTopics(TopicNaming(config.sink.topic_prefix)))
    if config.transactions.metadata:
        topic = config.transactions.topic or f"{config.sink.topic_prefix}.transaction"
        transforms.append(TransactionMetadata(topic, restore=restore))
    if config.sink.tombstones_on_delete:
        transforms.append(DeleteTombstones())
    return transforms
