"""Who writes: one active instance per name, the others warm standbys (docs/ha.md).

Kafka is the only coordinator. Every instance publishes a heartbeat each
``[ha] heartbeat_ms`` on the status topic (one partition: one order for everyone) and
reads everyone's. The rules:

- A standby claims leadership when it has seen no heartbeat of an active instance for
  ``lease_ms`` (none at all on a first start; at once when the active one said it
  stopped, or when it ran on this host and its process is gone) and it is first in the
  order of succession: the live standbys whose source answers, by ``priority``, then
  the longest running.
- A claim is a heartbeat with the next epoch; several may race. The status topic's log
  decides: the first claim of an epoch read back wins, for every reader alike; the others
  stand by again.
- The winner then initialises the transactional producer (exactly-once), which fences
  the old writer at Kafka, and takes the source over (PostgreSQL: the old walsender is
  ended).
- An active instance holds its lease while its heartbeats reach Kafka: when none was
  acknowledged for ``LEASE_SAFETY * lease_ms`` (frozen, cut off from Kafka), or another
  instance claimed a later epoch, it stops writing at once and stands by: it never
  writes past the moment a standby may take over.

This module knows no Kafka client: the channel (``cdcd.sinks.kafka.status``) carries
``Heartbeat``s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from cdcd.errors import SourceUnavailableError

if TYPE_CHECKING:
    from cdcd.config import HaConfig

# The active one gives up this share of the lease before a standby may claim it: the
# heartbeat it counts from was sent before any standby received it.
LEASE_SAFETY = 0.75
ACTIVE, STANDBY, CLAIM, STOPPED = "active", "standby", "claim", "stopped"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One instance's state, as published on the status topic (also what ``cdcd status``
    prints)."""

    name: str
    instance: str  # host:pid:token, unique per process
    host: str
    pid: int
    role: str  # active | standby | claim | stopped
    epoch: int  # the leadership term the instance serves or claims
    priority: int = 0
    started_ms: int = 0
    ts_ms: int = 0
    boot_id: str = ""
    source_ok: bool = True  # the source answers (a standby that may take over)
    state: str = ""  # the daemon's state (streaming, snapshotting, standby ...)
    server: str = ""  # what it reads (redacted)
    position: str | None = None  # the last position Kafka holds
    lag_ms: int | None = None
    claim: str | None = None  # a claim's unique id

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> Heartbeat:
        value = orjson.loads(data)
        known = {name: value[name] for name in cls.__dataclass_fields__ if name in value}
        return cls(**known)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Peers:
    """What one instance knows of the others with its name, from the status topic."""

    me: str
    lease_s: float
    host: str = field(default_factory=socket.gethostname)
    pid_alive: Callable[[int], bool] = _pid_alive
    latest: dict[str, tuple[Heartbeat, float]] = field(default_factory=dict)
    max_epoch: int = 0
    first_claims: dict[int, str] = field(default_factory=dict)  # epoch -> first claimant
    claims_read: set[str] = field(default_factory=set)

    def observe(self, beat: Heartbeat, at: float) -> None:
        self.latest[beat.instance] = (beat, at)
        self.max_epoch = max(self.max_epoch, beat.epoch)
        if beat.role in (CLAIM, ACTIVE):
            self.first_claims.setdefault(beat.epoch, beat.instance)
        if beat.claim is not None:
            self.claims_read.add(beat.claim)

    def _alive(self, beat: Heartbeat, at: float, now: float) -> bool:
        if beat.role == STOPPED or now - at > self.lease_s:
            return False
        # Same host and boot: a process that is gone holds no lease.
        same = beat.boot_id == BOOT_ID and beat.host == self.host and bool(beat.boot_id)
        return not (same and not self.pid_alive(beat.pid))

    def live(self, now: float) -> list[Heartbeat]:
        return [beat for beat, at in self.latest.values() if self._alive(beat, at, now)]

    def active(self, now: float) -> Heartbeat | None:
        """Another instance that leads (or claimed) and is alive: the latest epoch's. A
        leader of an epoch older than the latest claimed is stale (a later one took over
        from it), whatever the age of its last heartbeat."""
        leaders = [
            beat
            for beat in self.live(now)
            if beat.instance != self.me
            and beat.role in (ACTIVE, CLAIM)
            and beat.epoch >= self.max_epoch
        ]
        return max(leaders, key=lambda beat: beat.epoch, default=None)

    def first_in_line(self, me: Heartbeat, now: float) -> bool:
        """Whether ``me`` comes first among the live standbys whose source answers."""
        if not me.source_ok:
            return False
        waiting = [
            beat
            for beat in self.live(now)
            if beat.instance != me.instance and beat.role == STANDBY and beat.source_ok
        ]
        order = sorted([*waiting, me], key=lambda b: (b.priority, b.started_ms, b.instance))
        return order[0].instance == me.instance

    def won(self, epoch: int) -> bool:
        return self.first_claims.get(epoch) == self.me


class StatusChannel(Protocol):
    """The heartbeats of every instance (``cdcd.sinks.kafka.status``)."""

    async def start(self, on_beat: Callable[[Heartbeat], None]) -> None:
        """Read the recent heartbeats up to now (``on_beat`` each), then follow."""

    async def publish(self, beat: Heartbeat) -> None:
        """Write ``beat``; returns once Kafka holds it."""

    async def close(self) -> None: ...


class LeadershipLost(Exception):
    """This instance may no longer write: it stands by."""


class Leadership:
    """One instance's part in the election, for one start of the daemon."""

    def __init__(
        self,
        config: HaConfig,
        channel: StatusChannel,
        *,
        name: str,
        describe: Callable[[], dict[str, Any]],
        log: Any,
        started_ms: int | None = None,
        instance: str | None = None,
    ) -> None:
        self.config = config
        self.channel = channel
        self.describe = describe
        self.log = log
        host = socket.gethostname()
        self.me = Heartbeat(
            name=name,
            instance=instance or f"{host}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
            host=host,
            pid=os.getpid(),
            role=STANDBY,
            epoch=0,
            priority=config.priority,
            started_ms=started_ms or int(time.time() * 1000),
            boot_id=BOOT_ID,
        )
        self.lease_s = config.lease_ms / 1000
        self.interval_s = config.heartbeat_ms / 1000
        self.peers = Peers(self.me.instance, self.lease_s)
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self.source_ok = True
        self._changed = asyncio.Event()
        self._renewed = -1e18  # when the last acknowledged heartbeat was sent (monotonic)
        self._lapsed_at: float | None = None  # the lease ran out then: writes wait
        self._stood_by = False  # another instance led while this one waited
        self._catching_up = False  # reading the status topic's recent past
        self._renewal: tuple[str, float] | None = None  # (token, sent) of a renewing beat
        self._beating: asyncio.Task[None] | None = None

    # -- reading -------------------------------------------------------------------

    def _on_beat(self, beat: Heartbeat) -> None:
        if beat.name != self.me.name:
            return
        at = time.monotonic()
        if self._catching_up and beat.ts_ms:
            # Read from the last minute of the topic: as old as it says, not as new as
            # its reading (a dead leader's last heartbeat would hold a lease for nothing).
            at -= max(0.0, time.time() - beat.ts_ms / 1000)
        self.peers.observe(beat, at)
        if self._renewal is not None and beat.instance == self.me.instance:
            self._renew(beat)
        if (
            self.me.role == ACTIVE
            and beat.instance != self.me.instance
            and beat.role in (ACTIVE, CLAIM)
            and beat.epoch > self.me.epoch
        ):
            self._lose(f"{beat.instance} claimed leadership (epoch {beat.epoch})")
        self._changed.set()

    async def start(self) -> None:
        self._catching_up = True
        try:
            await self.channel.start(self._on_beat)
        finally:
            self._catching_up = False
        self._beating = asyncio.create_task(self._beat(), name="cdcd-heartbeat")

    # -- heartbeats ------------------------------------------------------------------

    def _beat_now(self) -> Heartbeat:
        details = self.describe()
        return replace(self.me, ts_ms=int(time.time() * 1000), source_ok=self.source_ok, **details)

    async def _beat(self) -> None:
        """A heartbeat each interval, never waiting for the last one: the lease counts
        from the last one Kafka acknowledged, and is checked each interval whatever
        Kafka does (a write to a cut-off broker may hang for ever)."""
        pending: set[asyncio.Future[None]] = set()
        while True:
            sent = time.monotonic()
            if self.me.role == ACTIVE and self._lapsed_at is None and not self._running():
                self._lapsed_at = sent
                self.log.warning(
                    "lease lapsed: writes wait until a heartbeat reaches Kafka again (a "
                    "standby may take over meanwhile)",
                    silent_s=round(sent - self._renewed, 1),
                )
            beat = self._beat_now()
            if self._lapsed_at is not None and (
                self._renewal is None or sent - self._renewal[1] > self.lease_s
            ):
                self._renewal = (uuid.uuid4().hex, sent)  # renews the lease once read back
                beat = replace(beat, claim=self._renewal[0])
            if len(pending) < 3:  # a few on their way at most
                task = asyncio.ensure_future(self.channel.publish(beat))
                pending.add(task)
                task.add_done_callback(
                    functools.partial(self._published, sent=sent, pending=pending)
                )
            await asyncio.sleep(max(0.0, sent + self.interval_s - time.monotonic()))

    def _published(self, beat: asyncio.Future[None], *, sent: float, pending: set[Any]) -> None:
        pending.discard(beat)
        if beat.cancelled():
            return
        error = beat.exception()
        if error is None:
            self._renewed = max(self._renewed, sent)
        else:
            self.log.debug("heartbeat not written", error=str(error))

    def _renew(self, beat: Heartbeat) -> None:
        """A lapsed lease's renewing heartbeat read back: no later claim came before it in
        the status topic's log (that would have ended the leadership), so the lease holds
        again from its sending."""
        assert self._renewal is not None and self._lapsed_at is not None
        token, sent = self._renewal
        if beat.claim != token or self.lost.is_set():
            return
        self.log.info("lease renewed: writing again", lapsed_s=round(sent - self._lapsed_at, 1))
        self._renewed = max(self._renewed, sent)
        self._lapsed_at = self._renewal = None

    def _running(self) -> bool:
        return time.monotonic() - self._renewed < LEASE_SAFETY * self.lease_s

    def held(self) -> bool:
        """Whether this instance may write now (checked before each write)."""
        return (
            self.me.role == ACTIVE
            and not self.lost.is_set()
            and self._lapsed_at is None
            and self._running()
        )

    async def until_held(self) -> None:
        """Wait while the lease has lapsed; ``LeadershipLost`` once another instance
        claimed leadership (or when this one stands by)."""
        while not self.held():
            if self.lost.is_set() or self.me.role != ACTIVE:
                raise LeadershipLost(self.lost_reason or "this instance does not lead")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.1)

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()
            self.log.warning("leadership lost: standing by", reason=reason)

    # -- claiming --------------------------------------------------------------------

    async def acquire(
        self, stopping: asyncio.Event, standing_by: Callable[[Heartbeat], None] | None = None
    ) -> bool:
        """Wait for this instance's turn and claim leadership; False when stopped first.
        ``standing_by(active)``: once, when another instance is first seen leading."""
        while not stopping.is_set():
            now = time.monotonic()
            active = self.peers.active(now)
            if active is not None and not self._stood_by and standing_by is not None:
                standing_by(active)
            self._stood_by |= active is not None
            if active is None and self.peers.first_in_line(self._beat_now(), now):
                if await self._claim():
                    return True
                continue
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.1)
        return False

    async def _claim(self) -> bool:
        epoch = self.peers.max_epoch + 1
        claim = uuid.uuid4().hex
        sent = time.monotonic()
        await self.channel.publish(replace(self._beat_now(), role=CLAIM, epoch=epoch, claim=claim))
        deadline = sent + self.lease_s
        while claim not in self.peers.claims_read:
            if time.monotonic() > deadline:
                self.log.warning("leadership claim not read back in time: standing by")
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.05)
        if not self.peers.won(epoch):
            winner = self.peers.first_claims[epoch]
            self.log.info("another instance claimed first: standing by", leader=winner)
            return False
        self.me = replace(self.me, role=ACTIVE, epoch=epoch)
        self._renewed = sent
        # A takeover is news; the start of an instance that waited for nobody is not.
        (self.log.info if self._stood_by else self.log.debug)(
            "leadership acquired", epoch=epoch, instance=self.me.instance
        )
        return True

    # -- leaving -----------------------------------------------------------------------

    async def close(self, role: str = STOPPED) -> None:
        """Stop the heartbeats, saying ``role`` last (stopped: a standby takes over now)."""
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(BaseException):
                await self._beating
            self._beating = None
        was_active = self.me.role == ACTIVE
        self.me = replace(self.me, role=role)
        if was_active or role == STOPPED:  # a standby need not wait out the lease
            await bounded(self.channel.publish(self._beat_now()), 2.0)
        await bounded(self.channel.close(), 5.0)


async def bounded(step: Awaitable[Any], timeout_s: float) -> None:
    """Run ``step`` for at most ``timeout_s``, then leave it cancelled without waiting for
    it (a Kafka client on a cut-off link may not even finish cancelling); its failure is
    ignored: what is bounded is a courtesy (a last heartbeat, a clean close)."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait([task], timeout=timeout_s)
    if not done:
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    elif not task.cancelled():
        task.exception()


async def watched(
    stream: AsyncIterator[Any],
    timeout_s: float,
    ask: Callable[[], None],
    answers: Callable[[], Awaitable[Any]] | None = None,
) -> AsyncIterator[Any]:
    """``stream``, failing with ``SourceUnavailableError`` when it yields nothing for
    ``timeout_s`` (a connection that stalls: a network cut drops packets, nothing tells
    the reader). Each ``timeout_s / 2`` of silence a heartbeat is asked for and, with
    ``answers``, the server is asked a query: a quiet database that answers it is not
    lost (PostgreSQL gives no heartbeat when its WAL does not move)."""
    iterator = stream.__aiter__()
    while True:
        step = asyncio.ensure_future(iterator.__anext__())
        try:
            while not (await asyncio.wait([step], timeout=timeout_s / 2))[0]:
                ask()
                if not await _answered(answers, step, timeout_s / 2):
                    raise SourceUnavailableError(
                        f"the source sent nothing for {timeout_s:g} s, not even a heartbeat "
                        "asked for, nor answered a query ([ha] source_timeout_s)"
                    )
        finally:
            if not step.done():
                step.cancel()
                with contextlib.suppress(BaseException):
                    await step
        try:
            chunk = step.result()
        except StopAsyncIteration:
            return
        yield chunk


async def _answered(
    answers: Callable[[], Awaitable[Any]] | None, step: asyncio.Future[Any], timeout_s: float
) -> bool:
    """Whether, within ``timeout_s``, the stream went on or the server answered."""
    if answers is None:
        done, _ = await asyncio.wait([step], timeout=timeout_s)
        return bool(done)
    query = asyncio.ensure_future(answers())
    done, _ = await asyncio.wait(
        [step, query], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    if step in done:
        query.cancel()
        return True
    if query in done:
        return query.exception() is None
    query.cancel()
    return False


def instances(
    beats: list[Heartbeat], name: str, now_ms: int, lease_ms: int
) -> list[dict[str, Any]]:
    """Each instance of ``name`` as ``cdcd status`` shows it: its last heartbeat, its age,
    and the role it holds now (``active`` only while its lease runs; a silent one is
    ``gone``). The leader first, then the others by age, the silent ones last."""
    latest: dict[str, Heartbeat] = {}
    for beat in beats:
        if beat.name == name:
            latest[beat.instance] = beat
    rows = []
    for beat in latest.values():
        age = max(0, now_ms - beat.ts_ms)
        role = beat.role if age <= lease_ms else "gone"
        if role == CLAIM:
            role = "claiming"
        rows.append({**asdict(beat), "role": role, "said": beat.role, "age_ms": age})
    rows.sort(key=lambda row: (row["role"] != ACTIVE, row["role"] == "gone", row["age_ms"]))
    return rows
