"""Source items -> Kafka records: the envelope, the transforms, the serializer, in order.

``encode`` takes one chunk of the stream (events and the commits between them) and
returns its records, with a ``Checkpoint`` at the place of each commit: the pipeline cuts
its segments there. Stages run over the whole chunk, so each costs one call a chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cdcd.checkpoint import Checkpoint
from cdcd.connect_json import MessageSchemas, SchemaJsonSerializer
from cdcd.envelope import EnvelopeBuilder
from cdcd.events import SourceItem
from cdcd.maxwell import MaxwellSerializer
from cdcd.serialization import JsonSerializer, Record
from cdcd.transforms import CommitMark, Item, Transform, build_transforms

if TYPE_CHECKING:
    from typing import TypeAlias

    from cdcd.config import Config
    from cdcd.connect_avro import AvroSerializer

    Serializer: TypeAlias = (
        JsonSerializer | MaxwellSerializer | SchemaJsonSerializer | AvroSerializer
    )


@dataclass(slots=True)
class Encoded:
    """A chunk's records; ``marks``: (index in ``records`` where a commit falls, its
    checkpoint), in order; the counts of change events and of whole transactions;
    ``table_events``: change events by (namespace, table, operation); ``filtered``: change
    events the transforms dropped; ``unregistered``: ``EnvelopeEncoder.register_schemas``
    is to be awaited before the records are written."""

    records: list[Record] = field(default_factory=list)
    marks: list[tuple[int, Checkpoint]] = field(default_factory=list)
    events: int = 0
    transactions: int = 0
    table_events: dict[tuple[str, str, str], int] = field(default_factory=dict)
    filtered: int = 0
    unregistered: bool = False  # records wait for their schemas' ids: register_schemas()


class EnvelopeEncoder:
    """The pipeline's one call per chunk: build, transform, serialize."""

    def __init__(
        self,
        builder: EnvelopeBuilder,
        transforms: list[Transform],
        serializer: Serializer | None = None,
    ) -> None:
        self.builder = builder
        self.transforms = transforms
        self.serializer = serializer or JsonSerializer()
        # Transforms that drop change events say how many in their last apply() (``dropped``).
        self._filters = [t for t in transforms if hasattr(t, "dropped")]

    @classmethod
    def from_config(
        cls, config: Config, connector: str, *, restore: dict[str, Any] | None = None
    ) -> EnvelopeEncoder:
        """The encoder of the daemon ``config`` describes; ``restore``: the transaction
        metadata counters of a transaction cut by the stored offset."""
        sink = config.sink
        serializer = _serializer(config, connector)
        builder = EnvelopeBuilder(
            sink.topic_prefix,
            connector,
            config.notifications.topic or None,
            table_schemas=not isinstance(serializer, JsonSerializer | MaxwellSerializer),
        )
        return cls(builder, build_transforms(config, restore=restore), serializer)

    def encode(self, items: list[SourceItem], now_ns: int) -> Encoded:
        encoded = Encoded()
        messages: list[Item] = self.builder.messages(items, now_ns)
        for transform in self.transforms:
            messages = transform.apply(messages)
        marks = encoded.marks

        def mark(item: CommitMark, at: int) -> None:
            commit = item.commit
            if not item.partial and not (commit.extra and commit.extra.get("heartbeat")):
                encoded.transactions += 1
            marks.append((at, _checkpoint(item)))

        serializer = self.serializer
        serializer.serialize_all(messages, encoded.records, mark)
        if getattr(serializer, "pending", None):
            encoded.unregistered = True
        encoded.events = len(items) - len(marks) - self.builder.notices - self.builder.tables
        encoded.table_events = self.builder.counts
        for dropping in self._filters:
            encoded.filtered += dropping.dropped  # type: ignore[attr-defined]
        return encoded

    def register_schemas(self) -> Any:
        """Awaitable: the new schemas of the last ``encode`` registered (Avro), their
        records' headers patched."""
        register = getattr(self.serializer, "register_pending", None)
        return _no_schemas() if register is None else register()


async def _no_schemas() -> None:
    return None


def _serializer(config: Config, connector: str) -> Serializer:
    """The serializer ``[sink] format`` (and ``schemas_enable``) chooses."""
    sink = config.sink
    if sink.format == "maxwell":
        return MaxwellSerializer(sink.maxwell_topic)
    if sink.format == "avro":
        from cdcd.connect_avro import AvroSerializer

        assert sink.schema_registry_url is not None
        return AvroSerializer(
            MessageSchemas(sink.topic_prefix, connector), sink.schema_registry_url
        )
    keys, values = sink.schemas_for()
    if keys or values:
        return SchemaJsonSerializer(
            MessageSchemas(sink.topic_prefix, connector), keys=keys, values=values
        )
    return JsonSerializer()


def _checkpoint(mark: CommitMark) -> Checkpoint:
    commit = mark.commit
    transaction = mark.transaction
    if mark.partial and transaction is None:
        # Without metadata (or none counted yet) the cut transaction's id alone: a restart
        # checks that the source resumes inside that very transaction.
        transaction = {"id": commit.txid}
    snapshot = commit.extra.get("snapshot") if commit.extra else None
    return Checkpoint(
        commit.position, commit.ts_ms, commit.txid, transaction=transaction, snapshot=snapshot
    )
