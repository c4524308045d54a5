"""Unit tests of the Serf layer's pieces: Lamport clocks, tag encoding and its limit, user event limits
and de-duplication, message checks, the Vivaldi client, and the snapshot format. Imports: stdlib,
pytest, consulpy.serf.
"""

from __future__ import annotations

import math
import random

import pytest

from consulpy.codec import encode
from consulpy.gossip.messages import Alive, Dead, UserMsg
from consulpy.serf import (
    LamportClock,
    MemberStatus,
    Serf,
    SerfConfig,
    SnapshotState,
    TagsTooLarge,
    UserEvent,
    UserEventTooLarge,
    VivaldiClient,
    VivaldiConfig,
    decode_snapshot,
    decode_tags,
    distance,
    encode_snapshot,
    encode_tags,
)
from consulpy.serf.coordinate import CoordinateRejected
from consulpy.serf.messages import (
    Coordinate,
    JoinIntent,
    LeaveIntent,
    UserEventMessage,
    decode_message,
    decode_push_pull,
)


def _serf(name: str = "a", **kwargs: object) -> Serf:
    return Serf(SerfConfig(**kwargs), name, "10.0.0.1:8301", rng=random.Random(1), now=0.0,  # type: ignore[arg-type]
                tags={"role": "node"})


def _deliver(serf: Serf, record: object, now: float = 1.0) -> None:
    """Hand `serf` a Serf message as the gossip core receives it from a peer."""
    serf.receive_packet("10.0.0.9:8301", encode(UserMsg(encode(record))), now)


def test_lamport_clock_increments_and_witnesses_past_what_it_sees() -> None:
    clock = LamportClock()
    assert clock.time() == 0
    assert clock.increment() == 1
    clock.witness(0)
    assert clock.time() == 1
    clock.witness(41)
    assert clock.time() == 42
    clock.witness(10)
    assert clock.time() == 42


def test_config_defaults_are_serfs_with_consuls_lan_reconnect_timeout() -> None:
    config = SerfConfig()
    assert config.reconnect_timeout == 72 * 3600.0
    assert config.tombstone_timeout == 24 * 3600.0
    assert (config.reap_interval, config.reconnect_interval) == (15.0, 30.0)
    assert (config.event_buffer, config.user_event_size_limit) == (512, 512)
    vivaldi = config.vivaldi
    assert (vivaldi.dimensionality, vivaldi.adjustment_window_size, vivaldi.latency_filter_size) == (8, 20, 3)
    assert (vivaldi.vivaldi_error_max, vivaldi.vivaldi_ce, vivaldi.vivaldi_cc) == (1.5, 0.25, 0.25)
    assert (vivaldi.height_min, vivaldi.gravity_rho) == (10.0e-6, 150.0)
    with pytest.raises(ValueError, match="9216 bytes"):
        SerfConfig(user_event_size_limit=10_000)


def test_tags_round_trip_and_refuse_more_than_512_bytes() -> None:
    tags = {"role": "consul", "dc": "dc1", "port": "8300", "build": "1.21.0:abc"}
    meta = encode_tags(tags)
    assert meta[0] == 0xFF and decode_tags(meta) == tags
    assert decode_tags(b"consul") == {"role": "consul"}
    assert decode_tags(b"\xff\xc1") == {}
    with pytest.raises(TagsTooLarge, match="exceeds limit of 512 bytes"):
        encode_tags({"big": "x" * 600})
    serf = _serf()
    with pytest.raises(TagsTooLarge):
        serf.set_tags({"big": "x" * 600}, 1.0)
    assert serf.tags == {"role": "node"}
    with pytest.raises(TagsTooLarge):
        Serf(SerfConfig(), "b", "10.0.0.2:8301", rng=random.Random(1), now=0.0, tags={"big": "x" * 600})


def test_user_event_limits_and_local_delivery_once() -> None:
    serf = _serf()
    serf.poll()
    with pytest.raises(UserEventTooLarge, match="exceeds configured limit of 512 bytes before encoding"):
        serf.user_event("deploy", b"x" * 510)
    with pytest.raises(UserEventTooLarge, match="after encoding"):
        serf.user_event("d", b"x" * 505)
    serf.user_event("deploy", b"v1")
    serf.user_event("deploy", b"v1")
    events = [e for e in serf.poll().events if isinstance(e, UserEvent)]
    assert [(e.ltime, e.name, e.payload) for e in events] == [(1, "deploy", b"v1"), (2, "deploy", b"v1")]
    assert serf.event_clock.time() == 3
    # The same event gossiped back to us is not delivered again; an unseen one is.
    for ltime in (1, 2, 5):
        _deliver(serf, UserEventMessage(ltime, "deploy", b"v1", True))
    again = [e for e in serf.poll().events if isinstance(e, UserEvent)]
    assert [e.ltime for e in again] == [5]
    assert serf.event_clock.time() == 6


def test_event_older_than_the_buffer_is_dropped() -> None:
    serf = _serf(event_buffer=4)
    serf.poll()
    _deliver(serf, UserEventMessage(10, "late", b"", False))
    _deliver(serf, UserEventMessage(3, "old", b"", False))
    assert [e.name for e in serf.poll().events if isinstance(e, UserEvent)] == ["late"]


def test_malformed_messages_are_dropped_whole() -> None:
    assert decode_message(b"\xc1") is None
    assert decode_message(encode(JoinIntent(-1, "a"))) is None
    assert decode_message(encode(JoinIntent(True, "a"))) is None
    assert decode_message(encode(UserEventMessage(1, "n", "text", False))) is None
    assert decode_message(encode(JoinIntent(3, "a"))) == JoinIntent(3, "a")
    assert decode_push_pull(encode(JoinIntent(3, "a"))) is None
    serf = _serf()
    serf.receive_packet("10.0.0.9:8301", encode(UserMsg(b"\x00garbage")), 1.0)
    assert serf.stats["malformed_messages"] == 1


def test_local_member_joins_itself_and_a_leave_intent_about_an_unknown_member_is_held() -> None:
    serf = _serf()
    [me] = serf.members()
    assert (me.name, me.status, me.tags) == ("a", MemberStatus.ALIVE, {"role": "node"})
    _deliver(serf, LeaveIntent(7, "b", False))
    assert serf.clock.time() == 8
    # When b then shows up through the core, it is leaving (the intent was newer than anything about it).
    serf.receive_packet("10.0.0.2:8301", encode(Alive(1, "b", "10.0.0.2:8301", encode_tags({}))), 2.0)
    assert serf.member("b").status == MemberStatus.LEAVING  # type: ignore[union-attr]
    serf.receive_packet("10.0.0.3:8301", encode(Dead(1, "b", "c")), 3.0)
    assert serf.member("b").status == MemberStatus.LEFT  # type: ignore[union-attr]


def test_vivaldi_two_members_converge_to_their_round_trip() -> None:
    config = VivaldiConfig()
    a, b = VivaldiClient(config, random.Random(1)), VivaldiClient(config, random.Random(2))
    for _ in range(200):
        a.update("b", b.coordinate(), 0.010)
        b.update("a", a.coordinate(), 0.010)
    assert math.isclose(distance(a.coordinate(), b.coordinate()), 0.010, rel_tol=0.05)
    assert a.coordinate().error < 0.1
    with pytest.raises(CoordinateRejected, match="round trip time not in valid range"):
        a.update("b", b.coordinate(), 11.0)
    with pytest.raises(CoordinateRejected, match="dimensions"):
        a.update("b", Coordinate((0.0,) * 3, 1.5, 0.0, 1e-5), 0.01)
    with pytest.raises(CoordinateRejected, match="invalid"):
        a.update("b", Coordinate((math.nan,) * 8, 1.5, 0.0, 1e-5), 0.01)


def test_snapshot_round_trip_and_serfs_append_log() -> None:
    state = SnapshotState(alive={"a": "10.0.0.1:8301", "b c": "10.0.0.2:8301"}, clock=7, event_clock=3,
                          query_clock=1)
    image = encode_snapshot(state)
    assert image == (b"alive: a 10.0.0.1:8301\nalive: b c 10.0.0.2:8301\nclock: 7\nevent-clock: 3\n"
                     b"query-clock: 1\n")
    assert decode_snapshot(image) == (state, [])
    # As serf appends it: later lines override earlier ones, unknown and torn lines are skipped.
    log = (b"# serf\nalive: a 10.0.0.1:8301\nalive: b 10.0.0.2:8301\nclock: 3\nnot-alive: b\n"
           b"coordinate: {}\nclock: 9\nbogus\nclock: x\nalive: torn")
    replayed, warnings = decode_snapshot(log)
    assert replayed == SnapshotState(alive={"a": "10.0.0.1:8301"}, clock=9)
    assert warnings == ["Unrecognized snapshot line: bogus", "Failed to convert clock time: clock: x"]
    # A leave forgets everything before it, unless rejoining after a leave is allowed.
    left = encode_snapshot(SnapshotState(alive={"a": "10.0.0.1:8301"}, clock=5, left=True))
    assert decode_snapshot(left)[0] == SnapshotState(left=True)
    assert decode_snapshot(left, rejoin_after_leave=True)[0].alive == {"a": "10.0.0.1:8301"}


def test_serf_resumes_clocks_from_a_snapshot_and_skips_events_it_had_seen() -> None:
    previous = SnapshotState(alive={"a": "10.0.0.1:8301"}, clock=20, event_clock=9, query_clock=4)
    serf = Serf(SerfConfig(), "a", "10.0.0.1:8301", rng=random.Random(1), now=0.0, previous=previous)
    assert (serf.clock.time(), serf.event_clock.time(), serf.query_clock.time()) == (21, 10, 5)
    serf.poll()
    _deliver(serf, UserEventMessage(9, "old", b"", False))
    assert not [e for e in serf.poll().events if isinstance(e, UserEvent)]
    state = serf.snapshot_state()
    assert (state.clock, state.event_clock, state.alive) == (20, 9, {"a": "10.0.0.1:8301"})
