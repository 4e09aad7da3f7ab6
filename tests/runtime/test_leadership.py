"""The election's rules (cdcd.runtime.leadership) on heartbeats made here; the pair
itself on real servers: tests/test_ha.py."""

from __future__ import annotations

import asyncio
import os

import pytest

from cdcd.errors import SourceUnavailableError
from cdcd.positions import MysqlPosition, PgPosition, later
from cdcd.runtime.leadership import (
    ACTIVE,
    BOOT_ID,
    CLAIM,
    STANDBY,
    STOPPED,
    Heartbeat,
    Peers,
    instances,
    watched,
)

LEASE = 3.0


def beat(instance: str, role: str = STANDBY, epoch: int = 0, **more) -> Heartbeat:
    host = more.pop("host", f"host-{instance}")
    return Heartbeat(
        name="shop", instance=instance, host=host, pid=more.pop("pid", 1), role=role,
        epoch=epoch, **more,
    )  # fmt: skip


def peers(**more) -> Peers:
    return Peers("me", LEASE, host="host-me", pid_alive=more.pop("pid_alive", lambda pid: True))


def test_a_live_active_instance_is_seen_until_its_lease_runs_out():
    p = peers()
    p.observe(beat("a", ACTIVE, 3), at=100.0)
    assert p.active(100.0 + LEASE - 0.1).instance == "a"
    assert p.active(100.0 + LEASE + 0.1) is None
    assert p.max_epoch == 3


def test_a_leader_of_an_older_epoch_is_stale_once_a_later_one_claimed():
    p = peers()
    p.observe(beat("a", ACTIVE, 1), at=100.0)  # killed: its last heartbeat still young
    p.observe(beat("b", ACTIVE, 2), at=100.5)
    p.observe(beat("b", STOPPED, 2), at=101.0)  # the later leader handed over
    assert p.active(101.1) is None


def test_an_instance_that_said_it_stopped_leads_no_more():
    p = peers()
    p.observe(beat("a", ACTIVE, 3), at=100.0)
    p.observe(beat("a", STOPPED, 3), at=100.5)
    assert p.active(100.6) is None


def test_a_process_gone_on_this_host_holds_no_lease_but_another_hosts_does():
    gone = peers(pid_alive=lambda pid: pid != 4242)
    gone.observe(beat("a", ACTIVE, 1, host="host-me", pid=4242, boot_id=BOOT_ID), at=100.0)
    assert gone.active(100.1) is None
    # The same PID on another host (or after a reboot) says nothing about that process.
    other = peers(pid_alive=lambda pid: pid != 4242)
    other.observe(beat("a", ACTIVE, 1, host="elsewhere", pid=4242, boot_id=BOOT_ID), at=100.0)
    assert other.active(100.1) is not None
    rebooted = peers(pid_alive=lambda pid: pid != 4242)
    rebooted.observe(beat("a", ACTIVE, 1, host="host-me", pid=4242, boot_id="x"), at=100.0)
    assert rebooted.active(100.1) is not None


def test_succession_goes_by_priority_then_the_longest_running_and_skips_a_broken_source():
    p = peers()
    me = beat("me", started_ms=2000)
    p.observe(beat("old", started_ms=1000), at=100.0)
    assert not p.first_in_line(me, 100.1)  # the older standby goes first
    p.observe(beat("old", started_ms=1000, source_ok=False), at=100.2)
    assert p.first_in_line(me, 100.3)  # ... unless its source does not answer
    p.observe(beat("keen", started_ms=3000, priority=-1), at=100.4)
    assert not p.first_in_line(me, 100.5)  # a lower priority value comes first
    assert not p.first_in_line(beat("me", source_ok=False), 100.5)
    assert p.first_in_line(me, 100.4 + LEASE + 0.1)  # a silent standby is out of line


def test_the_first_claim_of_an_epoch_in_the_log_wins_for_every_reader():
    mine, theirs = peers(), Peers("b", LEASE, host="host-b")
    for p in (mine, theirs):
        p.observe(beat("b", CLAIM, 5, claim="cb"), at=100.0)
        p.observe(beat("me", CLAIM, 5, claim="cm"), at=100.01)
    assert not mine.won(5) and theirs.won(5)
    assert {"cb", "cm"} <= mine.claims_read
    # The winner's active heartbeats keep it the epoch's leader for a reader joining late.
    late = peers()
    late.observe(beat("b", ACTIVE, 5), at=101.0)
    assert late.first_claims[5] == "b"


def test_heartbeats_read_back_whatever_fields_a_newer_version_adds():
    sent = beat("a", ACTIVE, 2, position="0/16B3748#0", lag_ms=12, server="PostgreSQL at x")
    data = sent.to_json()[:-1] + b',"from_the_future":1}'
    assert Heartbeat.from_json(data) == sent


def test_status_rows_say_who_leads_now():
    now = 1_000_000
    beats = [
        beat("a", ACTIVE, 2, ts_ms=now - 400),
        beat("b", STANDBY, 0, ts_ms=now - 300),
        beat("c", ACTIVE, 1, ts_ms=now - 60_000),  # an old leader, silent since
        beat("d", STOPPED, 2, ts_ms=now - 100),
        Heartbeat(name="other", instance="z", host="h", pid=1, role=ACTIVE, epoch=9, ts_ms=now),
    ]
    rows = instances(beats, "shop", now, lease_ms=3000)
    assert [(r["instance"], r["role"]) for r in rows] == [
        ("a", "active"), ("d", "stopped"), ("b", "standby"), ("c", "gone"),
    ]  # fmt: skip
    assert rows[0]["age_ms"] == 400 and rows[-1]["said"] == ACTIVE


async def test_a_stalled_stream_fails_after_asking_for_a_heartbeat_halfway():
    asked = []

    async def stalls():
        yield [1]
        await asyncio.sleep(3600)
        yield [2]  # pragma: no cover

    seen = []
    with pytest.raises(SourceUnavailableError, match="sent nothing for 0.2 s"):
        async for chunk in watched(stalls(), 0.2, lambda: asked.append(1)):
            seen.append(chunk)
    assert seen == [[1]] and asked == [1]


async def test_a_heartbeat_asked_for_keeps_a_quiet_stream_alive():
    answered = asyncio.Event()

    async def quiet():
        for _ in range(3):
            await answered.wait()  # nothing until a heartbeat is asked for
            answered.clear()
            yield ["heartbeat"]

    chunks = [chunk async for chunk in watched(quiet(), 0.2, answered.set)]
    assert chunks == [["heartbeat"]] * 3


def test_positions_compare_within_a_stream_only():
    assert later(PgPosition(200), PgPosition(100, 5))
    assert later(PgPosition(100, 6), PgPosition(100, 5))
    assert not later(PgPosition(100, 5), PgPosition(100, 5))
    mariadb = lambda gtids, index=0: MysqlPosition("mariadb", gtids, "b.000001", 4, index)  # noqa: E731
    assert later(mariadb("0-1-12"), mariadb("0-1-10"))
    assert not later(mariadb("0-1-10"), mariadb("0-1-12"))
    assert later(mariadb("0-1-10", 3), mariadb("0-1-10", 2))
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    mysql = lambda gtids: MysqlPosition("mysql", gtids, "b.000001", 4)  # noqa: E731
    assert later(mysql(f"{uuid}:1-12"), mysql(f"{uuid}:1-10"))
    assert not later(mysql(f"{uuid}:1-10"), mysql(f"{uuid}:1-12"))
    assert not later(mysql(None), mysql(f"{uuid}:1-2"))  # no GTIDs: file/pos is per server
    assert not later(PgPosition(1), mysql(f"{uuid}:1-2"))


def test_instance_ids_name_the_host_and_the_process():
    from cdcd.runtime.leadership import Leadership

    class Nowhere:
        async def start(self, on_beat): ...
        async def publish(self, beat): ...
        async def close(self): ...

    from cdcd.config import HaConfig

    leadership = Leadership(HaConfig(), Nowhere(), name="shop", describe=dict, log=None)
    host, pid, token = leadership.me.instance.split(":")
    assert int(pid) == os.getpid() and host == leadership.me.host and len(token) == 6


async def test_a_quiet_stream_whose_server_answers_a_query_is_not_lost():
    async def quiet():
        yield ["first"]
        await asyncio.sleep(0.5)  # 2.5 timeouts of silence: no heartbeat comes
        yield ["second"]

    async def answers():
        return "0/16B3748"

    chunks = [c async for c in watched(quiet(), 0.2, lambda: None, answers)]
    assert chunks == [["first"], ["second"]]


async def test_a_quiet_stream_whose_server_does_not_answer_is_lost():
    async def quiet():
        yield ["first"]
        await asyncio.sleep(3600)
        yield ["never"]  # pragma: no cover

    async def hangs():
        await asyncio.sleep(3600)

    async def refuses():
        raise OSError("connection refused")

    for answers in (hangs, refuses):
        with pytest.raises(SourceUnavailableError, match="nor answered a query"):
            async for _chunk in watched(quiet(), 0.2, lambda: None, answers):
                pass
