"""The sign that a daemon is running: membership of the consumer group ``cdcd-<name>``.

A running daemon subscribes to the offsets topic with that group and pauses it
(membership, no consumption). That works across hosts: ``cdcd offsets`` asks the group
coordinator, wherever the daemon runs. A daemon killed with SIGKILL stays a member until
its session times out (10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from cdcd.errors import SinkError
from cdcd.sinks.kafka.client import group_id

if TYPE_CHECKING:
    from cdcd.config import Config
    from cdcd.sinks.kafka.offsets import OffsetsTopic

SESSION_TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class Member:
    client_id: str
    host: str

    def __str__(self) -> str:
        return f"{self.client_id} on {self.host.lstrip('/')}"


async def members(admin: AIOKafkaAdminClient, group: str) -> list[Member]:
    """The members of the daemon's group: one when it runs, none when it does not."""
    responses = await admin.describe_consumer_groups([group])
    members = []
    for response in responses:
        for described in response.groups:
            error_code, _group, state, *_rest = described
            group_members = described[5]
            if error_code != 0 or state in ("Dead", "Empty"):
                continue
            for member in group_members:
                # v0-v3: member_id, client_id, client_host, ...; v4+ adds group_instance_id
                first = 1 if len(member) == 5 else 2
                client_id, host = member[first], member[first + 1]
                members.append(Member(client_id, host))
    return members


class _PauseOnAssign(ConsumerRebalanceListener):
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned:
            self.consumer.pause(*assigned)


class Presence:
    """Membership of the daemon's consumer group for as long as it streams."""

    def __init__(self, offsets: OffsetsTopic, *, client_id: str, log: Any = None) -> None:
        self.offsets = offsets
        self.client_id = client_id
        self.log = log
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = self._consumer = AIOKafkaConsumer(
            **self.offsets.options,
            client_id=self.client_id,
            group_id=self.offsets.group_id,
            enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_S * 1000,
            heartbeat_interval_ms=3000,
        )
        await consumer.start()
        consumer.subscribe([self.offsets.topic], listener=_PauseOnAssign(consumer))
        self._task = asyncio.create_task(self._poll(consumer), name="cdcd-presence")

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        # aiokafka leaves the group when the application stops polling (max_poll_interval).
        while True:
            try:
                await consumer.getmany(timeout_ms=1000)
            except KafkaError as exc:
                if self.log is not None:
                    self.log.warning("consumer group membership interrupted", error=str(exc))
                await asyncio.sleep(1)

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), timeout_s)  # leaves the group at once


class DaemonRunningError(SinkError):
    """The daemon runs: its offsets must not be changed under it."""


def refuse_if_running(config: Config, members: list[Member]) -> None:
    if members:
        raise DaemonRunningError(
            f"cdcd {config.name!r} is running ({', '.join(map(str, members))}, a member of "
            f"consumer group {group_id(config.name)}): stop it first (systemctl stop "
            f"cdcd@{config.name}); a daemon killed a moment ago stays a member for "
            f"{SESSION_TIMEOUT_S} s"
        )
