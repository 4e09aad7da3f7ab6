"""Debezium's ExtractNewRecordState (``[flatten]``): a change's value becomes its row
(``after``), with ``add.fields`` (envelope or source fields, ``__`` prefixed) in it and
``add.headers`` as headers. Deletes as ``delete.tombstone.handling.mode`` says:

- ``tombstone`` (default): the delete's record dropped, its tombstone kept;
- ``drop``: both dropped;
- ``rewrite``: the delete's ``before`` with ``__deleted: "true"`` (``"false"`` on every
  other change), its tombstone dropped; ``rewrite-with-tombstone``: the tombstone kept;
- ``delete-to-tombstone``: the delete becomes a tombstone, the usual one dropped.

Truncates, which have no row, are dropped. Messages that are not row changes (an
outbox's, transaction metadata) pass as they are.
"""

from __future__ import annotations

from typing import Any

from cdcd.envelope import Message
from cdcd.errors import ConfigError
from cdcd.events import OP_DELETE, ChangeEvent
from cdcd.transforms import Item
from cdcd.transforms.config import FlattenConfig
from cdcd.transforms.outbox import header_bytes


class ExtractNewRecordState:
    def __init__(self, config: FlattenConfig) -> None:
        mode = config.delete_tombstone_handling_mode
        self.rewrite = mode in ("rewrite", "rewrite-with-tombstone")
        self.keep_deletes = self.rewrite
        self.keep_tombstones = mode in ("tombstone", "rewrite-with-tombstone")
        self.delete_to_tombstone = mode == "delete-to-tombstone"
        self.fields = [
            (name, self._as(name, config.add_fields_prefix)) for name in config.add_fields
        ]
        self.headers = [
            (name, self._as(name, config.add_headers_prefix)) for name in config.add_headers
        ]
        self._checked = False
        self.dropped = 0

    @staticmethod
    def _as(name: str, prefix: str) -> str:
        return prefix + name.replace(".", "_")

    def apply(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        append = out.append
        dropped = 0
        for item in items:
            if type(item) is not Message or type(item.event) is not ChangeEvent:
                append(item)
                continue
            event = item.event
            envelope = item.value
            if envelope is None:  # a delete's tombstone
                if self.keep_tombstones:
                    append(item)
                continue
            if event.op == OP_DELETE:
                if self.delete_to_tombstone:
                    append(Message(item.topic, item.key, None, item.headers, event))
                    continue
                if not self.keep_deletes:
                    dropped += 1
                    continue
                row = dict(envelope["before"] or {})
            elif envelope["after"] is None:
                dropped += 1  # a truncate
                continue
            else:
                row = dict(envelope["after"])
            if self.fields or self.headers:
                self._add(envelope, row, item)
            if self.rewrite:
                row["__deleted"] = "true" if event.op == OP_DELETE else "false"
            item.value = row
            append(item)
        self.dropped = dropped
        return out

    def _add(self, envelope: dict[str, Any], row: dict[str, Any], item: Message) -> None:
        if not self._checked:
            self._check(envelope)
        for name, field in self.fields:
            row[field] = _field(envelope, name)
        if self.headers:
            headers = list(item.headers or ())
            headers += [(h, header_bytes(_field(envelope, name))) for name, h in self.headers]
            item.headers = headers

    def _check(self, envelope: dict[str, Any]) -> None:
        source = envelope["source"]
        for key, names in (("add.fields", self.fields), ("add.headers", self.headers)):
            for name, _ in names:
                field = name.removeprefix("source.")
                if name not in envelope and field not in source:
                    known = ", ".join([*(k for k in envelope if k != "source"), *source])
                    raise ConfigError(
                        f"flatten.{key}: {name!r} is neither an envelope field nor a source "
                        f"field (known: {known})"
                    )
        self._checked = True


def _field(envelope: dict[str, Any], name: str) -> Any:
    if name in envelope and name != "source":
        return envelope[name]
    return envelope["source"].get(name.removeprefix("source."))
