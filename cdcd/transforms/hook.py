"""The Python hook (``[transforms] hook = "package.module:function"``): what
configuration cannot say. ``function(message) -> list of messages`` is called for each
message (``cdcd.envelope.Message``: ``topic``, ``key``, ``value``, ``headers`` and
``event``, the row change it was made from, None for others); it returns what to
publish instead: ``[message]`` to keep it, ``[]`` to drop it, more to add some.

An exception in it stops the daemon (exit 1) with the hook's traceback and the event's
position: the chunk it was in is not written, so nothing past the last acknowledged
transaction is acknowledged, and a restart with the hook fixed reads the event again.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from typing import Any

from cdcd.envelope import Message
from cdcd.errors import CdcdError
from cdcd.events import ChangeEvent
from cdcd.transforms import Item

HookFunction = Callable[[Message], list[Message]]


class HookError(CdcdError):
    """The hook raised: the daemon stops at that event."""


def load_hook(spec: str) -> HookFunction:
    """The function ``package.module:function`` names; a ValueError says what is missing."""
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
        raise ValueError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"{module_name} has no function {name}")
    return function  # type: ignore[no-any-return]


def describe_position(event: Any) -> str:
    """Where the event is in the source's log, in its own terms."""
    if type(event) is not ChangeEvent:
        return "a message that is not a row change"
    source = event.source
    where = [f"{event.namespace}.{event.table} op {event.op}"]
    if source.get("lsn") is not None:
        where.append(f"lsn {source['lsn']}")
    if source.get("file"):
        where.append(f"binlog {source['file']}:{source.get('pos')} row {source.get('row')}")
    if source.get("gtid"):
        where.append(f"gtid {source['gtid']}")
    if event.txid is not None:
        where.append(f"transaction {event.txid}")
    return ", ".join(where)


class Hook:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.function = load_hook(spec)

    def apply(self, items: list[Item]) -> list[Item]:
        function = self.function
        out: list[Item] = []
        for item in items:
            if type(item) is not Message:
                out.append(item)
                continue
            try:
                produced = function(item)
                if not isinstance(produced, list) or any(type(m) is not Message for m in produced):
                    raise TypeError(
                        f"returned {type(produced).__name__}, not a list of cdcd.envelope.Message"
                    )
            except Exception as exc:
                trace = "".join(traceback.format_exception(exc)).rstrip()
                raise HookError(
                    f"transforms.hook {self.spec} failed at {describe_position(item.event)}: "
                    f"{type(exc).__name__}: {exc}; nothing from this event on is acknowledged, "
                    f"fix the hook and start again\n{trace}"
                ) from None
            out.extend(produced)
        return out
