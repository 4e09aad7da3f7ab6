"""The transaction roll-up: a source transaction's changes of chosen tables as one message.

    {"id": "<transaction id>", "ts_ms": ..., "position": {...}, "part": 1, "last": true,
     "changes_before": 0, "total_changes": 2,
     "changes": [{"table": "shop.orders", "op": "c", "key": {...}, "before": null,
                  "after": {...}}, ...]}

on ``[rollup] topic`` (``<topic_prefix>.transactions.rollup``), keyed by the topic prefix
so that every roll-up of a daemon lands on one partition, in commit order. The changes
are gathered until their transaction commits (the ``CommitMark``), so the roll-up is
written in the same Kafka transaction as the rest of it.

A transaction is rolled up in parts of at most ``max_changes``: a full part goes out
when one more change comes (so the last part is never empty when the transaction ends
on a rolled-up change), and whatever is gathered goes out at a ``CommitMark`` that cuts
the transaction (``split_after_events``): the source resumes after that cut, so nothing
gathered before it may wait. The next part's number and the changes published so far
then go with the stored offset (``CommitMark.transaction["rollup"]``) and come back as
``restore`` on a start inside the transaction: no part is repeated or lost. A
transaction whose last part was published at a cut ends with an empty last part.
Changes without a transaction (a snapshot's rows) are not rolled up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdcd.envelope import CommitMark, Message
from cdcd.events import ChangeEvent
from cdcd.transforms import Item
from cdcd.transforms.config import RollupConfig

# The source block's fields that say where a change is in the log (PostgreSQL: lsn and
# txId; MySQL/MariaDB: gtid, server_id, file, pos, row).
_POSITION_FIELDS = ("lsn", "txId", "gtid", "server_id", "file", "pos", "row")


@dataclass(slots=True)
class _Open:
    """The rolled-up transaction being gathered."""

    id: str
    part: int = 1  # the number of the next part
    changes_before: int = 0  # changes in the parts already published
    changes: list[dict[str, Any]] = field(default_factory=list)
    first: ChangeEvent | None = None  # the first change of the part being gathered


class TransactionRollup:
    """``restore``: the stored offset's transaction (its ``rollup`` entry: the next part
    and the changes published so far), continued by the first transaction."""

    def __init__(
        self, config: RollupConfig, topic: str, key: Any, *, restore: dict[str, Any] | None = None
    ) -> None:
        self.tables = frozenset(tuple(name.split(".", 1)) for name in config.tables)
        self.topic = topic
        self.key = key
        self.max_changes = config.max_changes
        self.keep_rows = config.keep_rows
        self._open: _Open | None = None
        state = restore.get("rollup") if restore else None
        if restore and state:
            self._open = _Open(str(restore["id"]), int(state["part"]), int(state["changes_before"]))

    def apply(self, items: list[Item]) -> list[Item]:
        tables = self.tables
        keep_rows = self.keep_rows
        out: list[Item] = []
        append = out.append
        for item in items:
            if type(item) is CommitMark:
                self._commit(item, out)
                continue
            if type(item) is Message:
                event = item.event
                if (
                    type(event) is ChangeEvent
                    and event.txid is not None
                    and (event.namespace, event.table) in tables
                ):
                    if item.value is not None:  # not a delete's tombstone
                        self._gather(item, event, out)
                    if not keep_rows:
                        continue
            append(item)
        return out

    def _gather(self, item: Message, event: ChangeEvent, out: list[Item]) -> None:
        assert event.txid is not None
        open_ = self._open
        if open_ is None or open_.id != event.txid:
            open_ = self._open = _Open(event.txid)
        elif len(open_.changes) >= self.max_changes:
            out.append(self._part(open_, last=False, ts_ms=0))
        if open_.first is None:
            open_.first = event
        value = item.value
        open_.changes.append(
            {
                "table": f"{event.namespace}.{event.table}",
                "op": event.op,
                "key": item.key,
                "before": value["before"],
                "after": value["after"],
            }
        )

    def _commit(self, mark: CommitMark, out: list[Item]) -> None:
        open_ = self._open
        if open_ is None or open_.id != mark.commit.txid:
            self._open = None
            out.append(mark)
            return
        if mark.partial:
            if open_.changes:
                out.append(self._part(open_, last=False, ts_ms=mark.commit.ts_ms))
            # The source resumes after this cut: the next part goes with the offset.
            transaction = mark.transaction or {"id": mark.commit.txid}
            state = {"part": open_.part, "changes_before": open_.changes_before}
            mark.transaction = {**transaction, "rollup": state}
        else:
            out.append(self._part(open_, last=True, ts_ms=mark.commit.ts_ms))
            self._open = None
        out.append(mark)

    def _part(self, open_: _Open, *, last: bool, ts_ms: int) -> Message:
        """The gathered changes as the next part (``ts_ms``: the commit's time, 0 when
        the part is not published at a commit)."""
        first = open_.first
        source = first.source if first is not None else {}
        changes, count = open_.changes, len(open_.changes)
        value = {
            "id": open_.id,
            "ts_ms": ts_ms or int(source.get("ts_ms") or 0),
            "position": {name: source[name] for name in _POSITION_FIELDS if name in source},
            "part": open_.part,
            "last": last,
            "changes_before": open_.changes_before,
            "total_changes": open_.changes_before + count if last else None,
            "changes": changes,
        }
        open_.part += 1
        open_.changes_before += count
        open_.changes = []
        open_.first = None
        return Message(self.topic, self.key, value)
