"""Seeded simulations of the Serf layer over the gossip simulator: joining with tags, tag updates, graceful
leave, failure and reaping, force-leave, stale intents, user events (gossip and push-pull), Lamport
clocks, network coordinates and a restart that rejoins from its snapshot.

SEEDS=<n> runs each scenario with n seeds; SEED=<n> replays one seed exactly. A failure names its seed.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Callable

from consulpy.codec import encode
from consulpy.gossip import lan_config
from consulpy.gossip.messages import UserMsg
from consulpy.serf import (
    JoinDone,
    MemberEventKind,
    MemberStatus,
    SerfConfig,
    decode_snapshot,
    distance,
    encode_snapshot,
)
from consulpy.serf.messages import LeaveIntent, decode_push_pull
from tests.serf.sim import SerfSim

DEFAULT_SEEDS = int(os.environ.get("SEEDS", "1"))


def _each_seed(scenario: Callable[[int], None]) -> None:
    one = os.environ.get("SEED")
    for seed in range(int(one), int(one) + 1) if one else range(DEFAULT_SEEDS):
        try:
            scenario(seed)
        except AssertionError as exc:
            raise AssertionError(f"SEED={seed} replays this failure: {exc}") from exc


def _joined(seed: int, n: int, loss: float = 0.0, config: SerfConfig | None = None,
            plane: bool = False) -> SerfSim:
    sim = SerfSim(seed, n, serf_config=config, loss=loss, plane=plane)
    sim.join_all()
    assert sim.run_until_true(sim.all_alive, 60.0), f"{sim.describe()}: not everyone alive everywhere"
    return sim


def test_join_shows_every_member_alive_with_its_tags_everywhere() -> None:
    def scenario(seed: int) -> None:
        sim = _joined(seed, 8, loss=0.05)
        for m in sim.serf_members():
            seen = {x.name: x.tags for x in m.serf.members()}
            assert seen == {name: {"role": "node", "id": name} for name in sim.members}, f"{m.name}: {seen}"
            assert all(x.status == MemberStatus.ALIVE for x in m.serf.members())
        # Each member got one join event per member (itself included), never a failure.
        for m in sim.serf_members():
            for other in sim.members:
                assert len(m.member_events(other, MemberEventKind.JOIN)) == 1, (m.name, other)
                assert not m.member_events(other, MemberEventKind.FAILED), (m.name, other)

    _each_seed(scenario)


def test_tag_update_reaches_every_member() -> None:
    def scenario(seed: int) -> None:
        sim = _joined(seed, 6, loss=0.05)
        sim.act("node-3", lambda serf: serf.set_tags({"role": "consul", "dc": "dc2"}, sim.now))

        def updated() -> bool:
            return all(m.serf.member("node-3") is not None and m.serf.member("node-3").tags  # type: ignore[union-attr]
                       == {"role": "consul", "dc": "dc2"} for m in sim.serf_members())

        assert sim.run_until_true(updated, sim.now + 30.0), "tags did not reach everyone"
        for m in sim.serf_members():
            assert m.member_events("node-3", MemberEventKind.UPDATE), m.name

    _each_seed(scenario)


def test_graceful_leave_is_left_everywhere_never_failed_then_reaped_after_the_tombstone_timeout() -> None:
    config = SerfConfig(tombstone_timeout=600.0)

    def scenario(seed: int) -> None:
        sim = _joined(seed, 6, loss=0.05, config=config)
        sim.leave("node-2")
        assert sim.run_until_true(lambda: sim.all_see("node-2", MemberStatus.LEFT), sim.now + 30.0), \
            "leave did not reach everyone"
        leaver = sim.member("node-2")
        assert leaver.leave_completes == 1
        assert leaver.serf.snapshot_state().left
        sim.crash("node-2")  # the agent stops after its leave
        left_at = sim.now
        assert sim.run_until_true(lambda: sim.all_see("node-2", None), left_at + 700.0)
        for m in sim.serf_members():
            assert not m.member_events("node-2", MemberEventKind.FAILED), f"{m.name} saw node-2 fail"
            [(reaped, _)] = m.member_events("node-2", MemberEventKind.REAP)
            assert reaped - left_at >= 600.0 - 30.0, f"{m.name} reaped node-2 after {reaped - left_at:.0f} s"

    _each_seed(scenario)


def test_crashed_member_is_failed_everywhere_then_reaped_after_reconnect_timeout() -> None:
    config = SerfConfig(reconnect_timeout=300.0)

    def scenario(seed: int) -> None:
        sim = _joined(seed, 6, loss=0.05, config=config)
        sim.crash("node-4")
        crashed_at = sim.now
        assert sim.run_until_true(lambda: sim.all_see("node-4", MemberStatus.FAILED), crashed_at + 30.0), \
            "crash not detected everywhere"
        assert not any(sim.all_see(n, MemberStatus.FAILED) for n in sim.members if n != "node-4")
        sim.run_until(crashed_at + 250.0)
        assert sim.all_see("node-4", MemberStatus.FAILED), "reaped before reconnect_timeout"
        assert sim.run_until_true(lambda: sim.all_see("node-4", None), crashed_at + 400.0), "never reaped"
        for m in sim.serf_members():
            assert len(m.member_events("node-4", MemberEventKind.REAP)) == 1
            assert not m.member_events("node-4", MemberEventKind.LEAVE)

    _each_seed(scenario)


def test_force_leave_turns_a_failed_member_left_everywhere_even_where_the_gossip_was_lost() -> None:
    def scenario(seed: int) -> None:
        sim = _joined(seed, 6, loss=0.05)
        sim.crash("node-1")
        assert sim.run_until_true(lambda: sim.all_see("node-1", MemberStatus.FAILED), sim.now + 30.0)
        sim.act("node-0", lambda serf: serf.force_leave("node-1", sim.now))
        # A member that missed every gossip of the intent learns it from the left list of a push-pull.
        bound = sim.now + sim.config.push_pull_interval * 2
        assert sim.run_until_true(lambda: sim.all_see("node-1", MemberStatus.LEFT), bound)
        for m in sim.serf_members():
            assert m.member_events("node-1", MemberEventKind.LEAVE), m.name

    _each_seed(scenario)


def test_force_leave_with_prune_forgets_the_member_everywhere() -> None:
    # A pruned member leaves nothing for push-pull to carry (as in serf), so only gossip spreads the prune,
    # which misses someone in a small cluster about once in a hundred runs at memberlist's retransmit
    # multiplier; twice that makes a miss negligible, and the run is lossless.
    config = SerfConfig(gossip=dataclasses.replace(lan_config(), retransmit_mult=8))

    def scenario(seed: int) -> None:
        sim = _joined(seed, 6, config=config)
        sim.crash("node-5")
        assert sim.run_until_true(lambda: sim.all_see("node-5", MemberStatus.FAILED), sim.now + 30.0)
        sim.act("node-0", lambda serf: serf.force_leave("node-5", sim.now, prune=True))
        assert sim.run_until_true(lambda: sim.all_see("node-5", None), sim.now + 10.0)
        for m in sim.serf_members():
            assert m.member_events("node-5", MemberEventKind.REAP), m.name

    _each_seed(scenario)


def test_stale_leave_intent_is_ignored_and_one_about_a_live_member_is_refuted() -> None:
    def scenario(seed: int) -> None:
        sim = _joined(seed, 5)
        # A leave intent as old as the start of time: every member has seen node-3 join after it.
        victim = sim.member("node-3")
        victim_ltime = victim.serf.clock.time()
        stale = encode(UserMsg(encode(LeaveIntent(0, "node-3", False))))
        sim.deliver("node-1", "node-0", stale)
        assert sim.statuses("node-0")["node-3"] == MemberStatus.ALIVE
        # A newer one (someone force-leaves a live member): everyone marks it leaving, it refutes with a
        # newer join intent, and it ends alive everywhere.
        fresh = encode(UserMsg(encode(LeaveIntent(victim_ltime + 50, "node-3", False))))
        sim.deliver("node-1", "node-0", fresh)
        sim.deliver("node-1", "node-3", fresh)
        assert sim.run_until_true(lambda: sim.all_see("node-3", MemberStatus.ALIVE), sim.now + 30.0)
        assert victim.serf.clock.time() > victim_ltime + 50
        sim.run_until(sim.now + 60.0)
        assert sim.all_alive()
        for m in sim.serf_members():
            assert not m.member_events("node-3", MemberEventKind.LEAVE)

    _each_seed(scenario)


def test_user_events_reach_everyone_exactly_once_including_through_push_pull() -> None:
    config = SerfConfig(gossip=dataclasses.replace(lan_config(), push_pull_interval=15.0))

    def scenario(seed: int) -> None:
        sim = _joined(seed, 8, loss=0.05, config=config)
        # node-7 is cut off while the events are gossiped, and longer than gossip retransmits them.
        sim.partition({name: 1 if name == "node-7" else 0 for name in sim.members})
        fired = []
        for i in range(12):
            sim.fire(f"node-{i % 3}", "deploy", f"v{i}".encode(), coalesce=False)
            fired.append(f"v{i}".encode())
            sim.run_until(sim.now + 0.3)
        # Same name and payload fired twice: two events (different Lamport times), both delivered.
        sim.fire("node-4", "deploy", b"v0", coalesce=False)
        fired.append(b"v0")
        sim.run_until(sim.now + 20.0)
        # By now gossip has stopped retransmitting them, so what node-7 gets comes from push-pull.
        assert not sim.member("node-7").user_events()
        sim.heal()

        def delivered() -> bool:
            return all(len(m.user_events()) == len(fired) for m in sim.serf_members())

        assert sim.run_until_true(delivered, sim.now + 120.0), \
            {m.name: len(m.user_events()) for m in sim.serf_members()}
        sim.run_until(sim.now + 60.0)
        for m in sim.serf_members():
            events = m.user_events()
            assert sorted(e.payload for e in events) == sorted(fired), m.name
            assert len({(e.ltime, e.name, e.payload) for e in events}) == len(fired), f"{m.name} got a duplicate"

    _each_seed(scenario)


def test_lamport_clocks_order_events_and_move_past_everything_seen() -> None:
    def scenario(seed: int) -> None:
        sim = _joined(seed, 5)
        sources = ["node-0", "node-2", "node-0", "node-4", "node-0"]
        for i, name in enumerate(sources):
            sim.fire(name, "tick", str(i).encode())
            sim.run_until(sim.now + 5.0)
        sim.run_until(sim.now + 30.0)
        for m in sim.serf_members():
            events = m.user_events()
            assert len(events) == len(sources)
            # Each source had seen the event before its own, so each event is later than the one before.
            by_order = sorted(events, key=lambda e: int(e.payload))
            assert [e.ltime for e in by_order] == list(range(1, len(sources) + 1)), m.name
            assert m.serf.event_clock.time() > max(e.ltime for e in events)
        # Every member's clock is past every status time it holds (each join intent it has witnessed),
        # and everyone's join intents were witnessed (each joiner broadcast one after its join).
        for m in sim.serf_members():
            state = decode_push_pull(m.serf._local_state(False))
            assert state is not None
            assert m.serf.clock.time() > max(state.status_ltimes.values()), m.name
            assert sum(1 for t in state.status_ltimes.values() if t > 0) >= len(sim.members) - 1, m.name

    _each_seed(scenario)


def test_network_coordinates_estimate_the_simulated_round_trips() -> None:
    def scenario(seed: int) -> None:
        sim = _joined(seed, 8, loss=0.05, plane=True)
        # Vivaldi starts everyone at the origin and can take a few hundred probes per member to settle.
        sim.run_until(sim.now + 900.0)
        errors = []
        for a in sim.serf_members():
            mine = a.serf.coordinate()
            assert mine is not None
            for b in sim.serf_members():
                other = a.serf.cached_coordinate(b.name) if b is not a else None
                if other is None:
                    continue
                true = sim.true_rtt(a.name, b.name)
                errors.append(abs(distance(mine, other) - true) / true)
        assert len(errors) > 40
        median = statistics.median(errors)
        p90 = statistics.quantiles(errors, n=10)[-1]
        assert median < 0.2 and p90 < 0.5, f"relative RTT error: median {median:.0%}, p90 {p90:.0%}"

    _each_seed(scenario)


def test_restarted_member_rejoins_from_its_snapshot_and_resumes_its_clocks() -> None:
    def scenario(seed: int) -> None:
        sim = _joined(seed, 5)
        sim.fire("node-1", "before", b"restart")
        sim.run_until(sim.now + 20.0)
        member = sim.member("node-3")
        image = encode_snapshot(member.serf.snapshot_state())
        clock, event_clock = member.serf.clock.time(), member.serf.event_clock.time()
        sim.crash("node-3")
        assert sim.run_until_true(lambda: sim.all_see("node-3", MemberStatus.FAILED), sim.now + 30.0)
        previous, warnings = decode_snapshot(image)
        assert not warnings
        assert set(previous.alive) == set(sim.members)
        restarted = sim.restart("node-3", previous)
        assert restarted.serf.clock.time() >= clock and restarted.serf.event_clock.time() >= event_clock
        assert sim.run_until_true(sim.all_alive, sim.now + 30.0), "restarted member did not rejoin"
        sim.run_until(sim.now + 60.0)
        # The event it had already seen before the restart is not delivered again.
        assert not restarted.user_events()

    _each_seed(scenario)


def test_join_reports_who_answered_and_ignore_old_skips_earlier_events() -> None:
    def scenario(seed: int) -> None:
        sim = _joined(seed, 4)
        sim.fire("node-0", "old", b"1")
        sim.run_until(sim.now + 10.0)
        late = sim.member(sim.add_member("node-late", "10.0.9.1:8301").name)
        plain = sim.member(sim.add_member("node-plain", "10.0.9.2:8301").name)
        sim.act(late.name, lambda serf: serf.join([sim.member("node-1").address, "10.0.9.99:8301"], sim.now,
                                                  ignore_old=True))
        sim.act(plain.name, lambda serf: serf.join([sim.member("node-2").address], sim.now))
        assert sim.run_until_true(sim.all_alive, sim.now + 30.0)
        # The address nobody answers at fails when the stream times out (tcp_timeout).
        assert sim.run_until_true(lambda: any(isinstance(e, JoinDone) for _, e in late.serf_events),
                                  sim.now + 15.0)
        [(_, done)] = [(t, e) for t, e in late.serf_events if isinstance(e, JoinDone)]
        assert done.contacted == 1 and len(done.addresses) == 2
        assert [e.name for e in plain.user_events()] == ["old"]
        assert not late.user_events()
        sim.fire("node-0", "new", b"2")
        assert sim.run_until_true(lambda: [e.name for e in late.user_events()] == ["new"], sim.now + 20.0)

    _each_seed(scenario)


def test_reconnect_brings_back_a_member_cut_off_long_enough_to_be_failed_on_both_sides() -> None:
    def scenario(seed: int) -> None:
        sim = _joined(seed, 5, loss=0.05)
        sim.partition({name: 1 if name == "node-4" else 0 for name in sim.members})
        # Lifeguard makes the isolated member, which misses every ack, slow to declare the others failed.
        assert sim.run_until_true(
            lambda: sim.all_see("node-4", MemberStatus.FAILED) and all(
                s == MemberStatus.FAILED for n, s in sim.statuses("node-4").items() if n != "node-4"),
            sim.now + 120.0)
        # Past gossip to the dead: neither side would contact the other again without Serf's reconnects.
        sim.run_until(sim.now + sim.config.gossip_to_the_dead_time + 10.0)
        sim.heal()
        # Each side tries one failed member every reconnect_interval with probability failed/alive.
        assert sim.run_until_true(sim.all_alive, sim.now + 6 * sim.serf_config.reconnect_interval), \
            {m.name: sim.statuses(m.name) for m in sim.serf_members()}
        assert any(line.startswith("serf: attempting reconnect to ") for m in sim.serf_members()
                   for line in m.log_lines)

    _each_seed(scenario)
