"""The gossip core's parts and protocol steps, one member or two driven by hand: presets, formulas, the
broadcast queue, awareness, wire checks, probe/ack, indirect probes with nack, the TCP fallback, push-pull.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import pytest

from consulpy.codec import encode
from consulpy.gossip import (
    Config,
    JoinResult,
    LeaveComplete,
    LogLine,
    Memberlist,
    MemberState,
    Output,
    PingComplete,
    lan_config,
    local_config,
    wan_config,
)
from consulpy.gossip.awareness import Awareness
from consulpy.gossip.broadcast import BroadcastQueue, retransmit_limit
from consulpy.gossip.messages import (
    Ack,
    Alive,
    IndirectPing,
    Nack,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    compound,
    decode_packet,
    decode_stream,
)
from consulpy.gossip.state import push_pull_interval
from consulpy.gossip.suspicion import Suspicion, suspicion_timeout


def _core(name: str, config: Config | None = None, **options: Any) -> Memberlist:
    return Memberlist(config or lan_config(), name, f"{name}:8301", rng=random.Random(name), now=0.0, **options)


def _pair(**b_options: Any) -> tuple[Memberlist, Memberlist]:
    """Two members that know each other (b joined a), with their outputs drained."""
    a, b = _core("a"), _core("b", **b_options)
    b.join(["a:8301"], 0.0)
    request = b.poll().streams[0]
    b.stream_reply(request.id, a.handle_stream("b:8301", request.data, 0.0), 0.0)
    a.poll(), b.poll()
    return a, b


def _run_until_probe(core: Memberlist, start: float) -> tuple[float, Output]:
    """Tick `core` forward until it sends a ping; returns the time and that output."""
    now = start
    while True:
        deadline = core.next_deadline()
        assert deadline is not None
        now = max(now, deadline)
        core.tick(now)
        out = core.poll()
        if any(isinstance(m, Ping) for p in out.packets for m in decode_packet(p.data) or []):
            return now, out


def test_presets_carry_memberlists_defaults() -> None:
    lan, wan, local = lan_config(), wan_config(), local_config()
    assert (lan.probe_interval, lan.probe_timeout, lan.indirect_checks, lan.suspicion_mult) == (1.0, 0.5, 3, 4)
    assert (lan.suspicion_max_timeout_mult, lan.retransmit_mult, lan.awareness_max_multiplier) == (6, 4, 8)
    assert (lan.gossip_interval, lan.gossip_nodes, lan.gossip_to_the_dead_time) == (0.2, 3, 30.0)
    assert (lan.push_pull_interval, lan.tcp_timeout, lan.udp_buffer_size, lan.lifeguard) == (30.0, 10.0, 1400, True)
    assert (wan.probe_interval, wan.probe_timeout, wan.suspicion_mult, wan.push_pull_interval) == (5.0, 3.0, 6, 60.0)
    assert (wan.gossip_nodes, wan.gossip_interval, wan.gossip_to_the_dead_time, wan.tcp_timeout) == (4, 0.5, 60.0, 30.0)
    assert (local.probe_timeout, local.indirect_checks, local.retransmit_mult, local.suspicion_mult) == (0.2, 1, 2, 3)
    assert (local.gossip_interval, local.push_pull_interval, local.tcp_timeout) == (0.1, 15.0, 1.0)


def test_suspicion_timeout_and_retransmit_limit_follow_memberlists_formulas() -> None:
    assert suspicion_timeout(4, 1, 1.0) == 4.0
    assert suspicion_timeout(4, 10, 1.0) == 4.0
    assert suspicion_timeout(4, 100, 1.0) == 8.0
    assert suspicion_timeout(4, 50, 1.0) == pytest.approx(4 * 1.698)
    assert [retransmit_limit(4, n) for n in (1, 9, 10, 99, 100)] == [4, 4, 8, 8, 12]
    assert [push_pull_interval(30.0, n) for n in (10, 32, 33, 64, 100, 200)] == [30, 30, 60, 60, 90, 120]


def test_suspicion_shrinks_from_max_to_min_with_independent_confirmations() -> None:
    s = Suspicion("x", k=2, minimum=8.0, maximum=48.0, start=100.0)
    assert s.deadline == 148.0
    assert not s.confirm("x"), "the first accuser does not confirm itself"
    assert s.confirm("y")
    expected = 48.0 - math.log(2) / math.log(3) * 40.0
    assert s.deadline == pytest.approx(100.0 + math.floor(expected * 1000) / 1000)
    assert not s.confirm("y"), "a confirmation counts once per accuser"
    assert s.confirm("z") and s.deadline == 108.0
    assert not s.confirm("w"), "beyond k confirmations nothing changes"
    assert Suspicion("x", k=0, minimum=4.0, maximum=24.0, start=0.0).deadline == 4.0


def test_awareness_saturates_and_scales_the_probe_interval() -> None:
    awareness = Awareness(8)
    awareness.apply_delta(-1)
    assert awareness.score == 0
    awareness.apply_delta(20)
    assert awareness.score == 7 and awareness.scale(1.0) == 8.0
    off = Awareness(8, enabled=False)
    off.apply_delta(3)
    assert off.scale(1.0) == 1.0


def test_broadcast_queue_prefers_fresh_large_news_and_drops_it_after_the_limit() -> None:
    queue = BroadcastQueue(retransmit_mult=1)
    queue.queue(b"old-a", key="a")
    queue.queue(b"bb", key="b")
    queue.queue(b"new-a", key="a")
    assert len(queue) == 2 and queue.has("a")
    assert queue.take(100, members=9) == [b"new-a", b"bb"]  # limit 1 * ceil(log10 10) = 1
    assert len(queue) == 0 and not queue.has("a")
    queue.queue(b"x" * 10)
    queue.queue(b"y" * 5)
    assert queue.take(12, members=99) == [b"x" * 10], "what does not fit waits for the next packet"
    assert queue.take(12, members=99) == [b"y" * 5, b"x" * 10][:1]
    queue.prune(1)
    assert len(queue) == 1


def test_packets_are_checked_field_by_field_and_compounds_split() -> None:
    ping, ack = Ping(1, "a", "b:1", "b"), Ack(1, b"")
    assert decode_packet(compound([encode(ping), encode(ack)])) == [ping, ack]
    assert decode_packet(encode(ping)) == [ping]
    for bad in (b"", b"\xc1", encode(Ping("1", "a", "b:1", "b")), encode(Ping(True, "a", "b:1", "b")),  # type: ignore[arg-type]
                encode(Ack(-1, b"")), encode([1, 2]), encode(PushPull(False, (), b"")),
                encode(Alive(1, "a", "a:1", "not bytes"))):  # type: ignore[arg-type]
        assert decode_packet(bad) is None, bad
    state = PushPull(True, (PushNodeState("a", "a:1", b"", 1, 0),), b"")
    assert decode_stream(encode(state)) == state
    assert decode_stream(encode(PushPull(True, ("a",), b""))) is None  # type: ignore[arg-type]


def test_a_garbled_packet_is_counted_and_dropped() -> None:
    a = _core("a")
    a.poll()
    a.receive_packet("x:1", b"\x93\x01\x02", 1.0)
    a.receive_packet("x:1", b"\xff" * 40, 1.0)
    assert a.stats["malformed_packets"] == 2
    assert a.handle_stream("x:1", b"garbage", 1.0) is None
    out = a.poll()
    assert not out.packets and all(isinstance(e, LogLine) for e in out.events)


def test_join_by_push_pull_exchanges_state_and_reports_the_result() -> None:
    a = _core("a", local_state=lambda join: b"serf-a" if join else b"")
    b = _core("b")
    b.join(["a:8301", "nowhere:8301"], 0.0)
    first, second = b.poll().streams
    reply = a.handle_stream("b:8301", first.data, 0.1)
    b.stream_reply(first.id, reply, 0.2)
    b.stream_reply(second.id, None, 0.2)
    events = b.poll().events
    assert JoinResult("a:8301", True) in events and JoinResult("nowhere:8301", False) in events
    assert {m.name for m in b.members()} == {"a", "b"} == {m.name for m in a.members()}
    assert any(getattr(e, "payload", None) == b"serf-a" for e in events), "the layer above gets a's state"


def test_probe_ack_reports_round_trip_and_payload() -> None:
    a, b = _pair(ack_payload=lambda: b"coord")
    now, out = _run_until_probe(a, 0.0)
    ping_packet = out.packets[0]
    assert ping_packet.address == "b:8301"
    b.receive_packet("a:8301", ping_packet.data, now + 0.01)
    ack_packet = b.poll().packets[0]
    a.receive_packet("b:8301", ack_packet.data, now + 0.02)
    (done,) = [e for e in a.poll().events if isinstance(e, PingComplete)]
    assert done.node == "b" and done.payload == b"coord" and done.rtt == pytest.approx(0.02)
    assert a.health_score == 0


def test_a_silent_target_gets_indirect_probes_a_tcp_fallback_then_suspicion() -> None:
    a = _core("a")
    for name in ("b", "c", "d", "e"):
        a.receive_packet(f"{name}:8301", encode(Alive(1, name, f"{name}:8301", b"")), 0.0)
    a.poll()
    now, out = _run_until_probe(a, 0.0)
    target = next(m.node for p in out.packets for m in decode_packet(p.data) or [] if isinstance(m, Ping))
    a.tick(now + 0.5)
    out = a.poll()
    requests = [m for p in out.packets for m in decode_packet(p.data) or [] if isinstance(m, IndirectPing)]
    assert len(requests) == 3 and {r.node for r in requests} == {target} and all(r.nack for r in requests)
    assert len(out.streams) == 1 and out.streams[0].address == f"{target}:8301"
    assert out.streams[0].deadline == now + 1.0
    # One helper nacks, the fallback fails; two helpers stayed silent, which Lifeguard blames on us.
    a.receive_packet("c:8301", encode(Nack(requests[0].seq)), now + 0.9)
    a.stream_reply(out.streams[0].id, None, now + 0.95)
    a.tick(now + 1.0)
    assert a.member(target) is not None and a.member(target).state == MemberState.SUSPECT  # type: ignore[union-attr]
    assert a.health_score == 2
    suspects = [m for p in a.poll().packets for m in decode_packet(p.data) or [] if isinstance(m, Suspect)]
    assert all(s.node == target and s.from_node == "a" for s in suspects)


def test_a_tcp_fallback_ack_saves_the_target() -> None:
    a, b = _pair()
    now, _ = _run_until_probe(a, 0.0)
    a.tick(now + 0.5)
    stream = a.poll().streams[0]
    a.stream_reply(stream.id, b.handle_stream("a:8301", stream.data, now + 0.6), now + 0.6)
    a.tick(now + 1.0)
    assert a.member("b").state == MemberState.ALIVE  # type: ignore[union-attr]
    assert any(isinstance(e, LogLine) and "over TCP" in e.text for e in a.poll().events)


def test_a_helper_forwards_the_ack_or_nacks_after_the_probe_timeout() -> None:
    _, helper = _pair()
    helper.receive_packet("p:8301", encode(IndirectPing(7, "a:8301", "a", True, "p:8301", "p")), 1.0)
    ping = decode_packet(helper.poll().packets[0].data)
    assert ping is not None and isinstance(ping[0], Ping)
    helper.receive_packet("a:8301", encode(Ack(ping[0].seq, b"")), 1.1)
    forwarded = helper.poll().packets[0]
    assert forwarded.address == "p:8301" and decode_packet(forwarded.data)[0] == Ack(7, b"")  # type: ignore[index]
    helper.receive_packet("p:8301", encode(IndirectPing(8, "a:8301", "a", True, "p:8301", "p")), 2.0)
    helper.poll()
    helper.tick(2.5)
    nacks = [m for p in helper.poll().packets for m in decode_packet(p.data) or [] if isinstance(m, Nack)]
    assert nacks == [Nack(8)]


def test_a_ping_for_another_name_is_not_acked() -> None:
    a = _core("a")
    a.receive_packet("x:1", encode(Ping(1, "someone-else", "x:1", "x")), 1.0)
    assert not a.poll().packets
    assert a.handle_stream("x:1", encode(Ping(2, "someone-else", "x:1", "x")), 1.0) is None
    assert decode_stream(a.handle_stream("x:1", encode(Ping(3, "a", "x:1", "x")), 1.0) or b"") == Ack(3, b"")


def test_limits_on_metadata_and_user_messages() -> None:
    with pytest.raises(ValueError):
        _core("a", meta=b"x" * 513)
    a = _core("a", meta=b"x" * 512)
    with pytest.raises(ValueError):
        a.update_meta(b"x" * 513, 1.0)
    with pytest.raises(ValueError):
        a.broadcast(b"x" * 1400)
    a.broadcast(b"x" * 1300)
    a.send_user("b:1", b"direct")
    assert decode_packet(a.poll().packets[0].data) is not None


def test_lifeguard_off_is_classic_swim() -> None:
    config = dataclasses.replace(lan_config(), lifeguard=False)
    a = _core("a", config)
    for name in ("b", "c", "d", "e"):
        a.receive_packet(f"{name}:8301", encode(Alive(1, name, f"{name}:8301", b"")), 0.0)
    now, _ = _run_until_probe(a, 0.0)
    a.tick(now + 0.5)
    out = a.poll()
    assert not any(m.nack for p in out.packets for m in decode_packet(p.data) or [] if isinstance(m, IndirectPing))
    a.tick(now + 1.0)
    assert a.health_score == 0, "no awareness without Lifeguard"


# The I/O around the core: the asyncio driver, and encryption with its keyring (nonces from os.urandom, key files).
IO_MODULES = {"transport.py", "security.py", "keyring.py"}


def test_the_core_does_no_io_and_reads_no_clock_or_global_random() -> None:
    package = Path(__file__).resolve().parents[2] / "consulpy" / "gossip"
    forbidden_modules = {"asyncio", "socket", "time", "threading", "selectors", "os", "asyncio_dgram"}
    for path in package.glob("*.py"):
        if path.name in IO_MODULES:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & forbidden_modules, path.name
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in forbidden_modules, path.name
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "random":
                assert node.attr == "Random", f"{path.name} uses random.{node.attr}"


def _messages(out: Output) -> list[object]:
    return [m for p in out.packets for m in decode_packet(p.data) or []]


def _gossip_for(core: Memberlist, seconds: float, start: float = 1.0, skip: str = "") -> list[object]:
    """Every message `core` sends (except to `skip`) while its timers run for `seconds`."""
    sent: list[object] = []
    now = start
    while now < start + seconds:
        deadline = core.next_deadline()
        assert deadline is not None
        now = max(now, deadline)
        core.tick(now)
        out = core.poll()
        sent += [m for p in out.packets if p.address != skip for m in decode_packet(p.data) or []]
    return sent


def test_a_suspected_member_refutes_with_a_higher_incarnation() -> None:
    a, _ = _pair()
    a.receive_packet("x:1", encode(Suspect(1, "a", "b")), 1.0)
    assert a.member("a").incarnation == 2 and a.health_score == 1  # type: ignore[union-attr]
    told = a.poll().packets
    assert sorted(p.address for p in told) == ["b:8301", "x:1"], "the relay and the accuser hear it directly"
    assert all(Alive(2, "a", "a:8301", b"") in _messages(Output(packets=[p])) for p in told)
    assert Alive(2, "a", "a:8301", b"") in _gossip_for(a, 1.0)


def test_an_outdated_accusation_is_answered_with_the_newer_alive() -> None:
    a, _ = _pair()
    a.receive_packet("b:8301", encode(Alive(3, "b", "b:8301", b"")), 1.0)
    a.poll()
    a.receive_packet("x:1", encode(Suspect(1, "b", "y")), 2.0)
    out = a.poll()
    assert [p.address for p in out.packets] == ["x:1"]
    assert Alive(3, "b", "b:8301", b"") in _messages(out)
    assert a.member("b").state == MemberState.ALIVE  # type: ignore[union-attr]


def test_a_suspicion_learnt_by_push_pull_is_not_gossiped_as_ours() -> None:
    a, _ = _pair()
    state = PushPull(False, (PushNodeState("c", "c:8301", b"", 1, int(MemberState.ALIVE)),), b"")
    a.handle_stream("c:8301", encode(state), 1.0)
    a.poll()
    suspect = PushPull(False, (PushNodeState("c", "c:8301", b"", 1, int(MemberState.SUSPECT)),), b"")
    a.handle_stream("b:8301", encode(suspect), 1.5)
    assert a.member("c").state == MemberState.SUSPECT  # type: ignore[union-attr]
    gossip = _gossip_for(a, 2.0, start=1.5, skip="c:8301")  # probes of c itself carry it (Lifeguard's buddy)
    assert not [m for m in gossip if isinstance(m, Suspect) and m.node == "c"]


def test_a_graceful_leave_announces_itself_as_left_and_reports_completion() -> None:
    alone = _core("z")
    alone.poll()
    alone.leave(1.0)
    assert LeaveComplete() in alone.poll().events
    a, _ = _pair()
    a.leave(1.0)
    assert a.member("a").state == MemberState.LEFT  # type: ignore[union-attr]
    a.poll()
    completions: list[object] = []
    now = 1.0
    while now < 6.0:
        now = max(now, a.next_deadline() or now)
        a.tick(now)
        out = a.poll()
        assert Alive(2, "a", "a:8301", b"") not in _messages(out), "a member that left does not refute"
        completions += [e for e in out.events if isinstance(e, LeaveComplete)]
    assert completions == [LeaveComplete()]
