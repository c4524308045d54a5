"""Membership over real sockets: join through a seed, push-pull on join, failure detection after a hard stop,
graceful leave, and join errors in Consul's words."""

from __future__ import annotations

import asyncio
import math

import pytest

from consulpy.gossip import MemberEvent, MemberEventKind, MemberState, PingComplete, local_config
from consulpy.gossip.suspicion import suspicion_timeout
from consulpy.gossip.transport import GossipTransport, JoinError
from tests.gossip_transport.pool import Pool, run, until, view

NAMES = [f"node-{h}" for h in range(2, 7)]


async def five(pool: Pool) -> float:
    """Five members, each joined through node-2 only; seconds from the last join until all see all alive."""
    seed = await pool.start(2)
    for host in range(3, 7):
        member = await pool.start(host)
        assert await member.join([pool.seed()]) == 1
    assert seed.port == 8301
    return await until(lambda: all_alive(pool, NAMES), 10, "every member sees all five alive")


def everyone_shows(pool: Pool, name: str, state: MemberState) -> bool:
    return all(view(m).get(name) == state for m in pool.members.values())


def all_alive(pool: Pool, names: list[str]) -> bool:
    return all(view(m) == dict.fromkeys(names, MemberState.ALIVE) for m in pool.members.values())


def test_five_members_join_through_one_seed_and_converge(loopback: str) -> None:
    async def body(pool: Pool) -> float:
        took = await five(pool)
        # Each member reported a join event for each of the other four.
        for name, events in pool.events.items():
            joined = {e.member.name for e in events if isinstance(e, MemberEvent) and e.kind == MemberEventKind.JOIN}
            assert joined == set(NAMES), name
        # Probes are acked over UDP: each member sees ping round trips (what network coordinates use).
        await until(lambda: all(any(isinstance(e, PingComplete) for e in events) for events in pool.events.values()),
                    5, "every member has an acked probe")
        return took

    took = run(loopback, body)
    print(f"five members converged {took:.2f} s after the last join")


def test_push_pull_on_join_gives_the_joiner_the_whole_view_at_once(loopback: str) -> None:
    async def body(pool: Pool) -> None:
        await five(pool)
        late = await pool.start(7)
        assert await late.join([pool.seed()]) == 1
        # Straight after join returns, before any gossip round: the seed's state arrived by push-pull,
        # and the seed took in the joiner from the same exchange.
        assert set(view(late)) == {*NAMES, "node-7"}
        assert "node-7" in view(pool.members["node-2"])
        assert late.stats["streams_sent"] >= 1 and pool.members["node-2"].stats["streams_received"] >= 1

    run(loopback, body)


def test_member_stopped_hard_is_declared_failed_within_the_preset_bound(loopback: str) -> None:
    async def body(pool: Pool) -> float:
        await five(pool)
        await pool.stop("node-6")
        config = pool.config
        # A live member probes the stopped one within a round over the others, then suspicion runs at
        # most its Lifeguard maximum before the member is declared dead; gossip then carries it.
        minimum = suspicion_timeout(config.suspicion_mult, len(NAMES), config.probe_interval)
        bound = len(NAMES) * config.probe_interval + config.suspicion_max_timeout_mult * minimum + 2.0
        took = await until(lambda: everyone_shows(pool, "node-6", MemberState.DEAD), bound,
                           "every live member declares node-6 failed")
        for name, member in pool.members.items():
            assert any(isinstance(e, MemberEvent) and e.kind == MemberEventKind.FAIL and e.member.name == "node-6"
                       for e in pool.events[name])
            # and nobody else was declared failed
            assert {n for n, s in view(member).items() if s == MemberState.ALIVE} == set(NAMES[:-1])
        print(f"bound {bound:.1f} s (minimum suspicion {minimum:.1f} s)")
        return took

    took = run(loopback, body)
    print(f"node-6 declared failed by all four others after {took:.2f} s")


def test_graceful_leave_is_seen_as_left_by_everyone(loopback: str) -> None:
    async def body(pool: Pool) -> None:
        await five(pool)
        leaving = pool.members["node-4"]
        assert await leaving.leave(timeout=5.0)
        await pool.stop("node-4")
        await until(lambda: everyone_shows(pool, "node-4", MemberState.LEFT), 5, "every member shows node-4 left")
        for name in pool.members:
            kinds = {e.kind for e in pool.events[name] if isinstance(e, MemberEvent) and e.member.name == "node-4"}
            assert MemberEventKind.LEAVE in kinds and MemberEventKind.FAIL not in kinds

    run(loopback, body)


def test_join_with_nobody_listening_fails_with_consuls_error(loopback: str) -> None:
    async def body(pool: Pool) -> None:
        member = await pool.start(2)
        with pytest.raises(JoinError) as raised:
            await member.join([f"{pool.ip(9)}", f"{pool.ip(10)}:8301"])
        assert str(raised.value) == (
            "2 errors occurred:\n"
            f"\t* Failed to join {pool.ip(9)}:8301: dial tcp {pool.ip(9)}:8301: connect: connection refused\n"
            f"\t* Failed to join {pool.ip(10)}:8301: dial tcp {pool.ip(10)}:8301: connect: connection refused\n\n")
        with pytest.raises(JoinError) as raised:
            await member.join(["bad:port:x:"])
        assert str(raised.value).startswith("1 error occurred:\n\t* Failed to resolve bad:port:x:: ")
        # One reachable address among unreachable ones is a success.
        other = await pool.start(3)
        assert await other.join([f"{pool.ip(9)}", pool.seed()]) == 1

    run(loopback, body, timeout=15)


def test_timer_loop_sleeps_between_deadlines(loopback: str) -> None:
    """The scheduling task sleeps until the core's next deadline instead of spinning: a member alone
    for a second wakes about as often as its timers fire (probe, gossip, push-pull), not thousands of times."""

    async def body(pool: Pool) -> None:
        member = await pool.start(2)
        ticks = 0
        tick = member.core.tick

        def counting(now: float) -> None:
            nonlocal ticks
            ticks += 1
            tick(now)

        member.core.tick = counting  # type: ignore[method-assign]
        await asyncio.sleep(1.0)
        config = pool.config
        expected = 1 / config.probe_interval + 1 / config.gossip_interval + 2
        assert 1 <= ticks <= math.ceil(expected * 2), ticks

    run(loopback, body, timeout=5)


def test_port_zero_binds_udp_and_tcp_on_one_free_port(loopback: str) -> None:
    async def body(pool: Pool) -> None:
        member = GossipTransport(local_config(), "solo", pool.ip(2), 0)
        await member.start()
        try:
            assert member.port != 0 and member.address == f"{pool.ip(2)}:{member.port}"
            other = await pool.start(3)
            assert await other.join([member.address]) == 1
            await until(lambda: set(view(member)) == {"solo", "node-3"}, 5, "the two members see each other")
        finally:
            await member.stop()
        with pytest.raises(ValueError, match="give an advertise address"):
            GossipTransport(local_config(), "anywhere", "0.0.0.0", 0)

    run(loopback, body, timeout=10)
