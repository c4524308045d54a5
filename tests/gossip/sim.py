"""Deterministic simulator for the gossip core: N `Memberlist`s on a seeded fake network (delay, loss,
partitions that heal), a simulated clock, crashes and a slow member. Where the layer above matters it
plays Serf's part: re-gossiping user messages it has not seen, carrying them in push-pull state, and
reconnecting to failed members. Everything random comes from one seed, so a run replays exactly.
Imports: stdlib, consulpy.codec, consulpy.gossip.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from consulpy.codec import decode, encode
from consulpy.gossip import (
    Config,
    Event,
    LeaveComplete,
    MemberEvent,
    MemberEventKind,
    Memberlist,
    MemberState,
    Output,
    RemoteState,
    UserMessage,
    lan_config,
)

# Serf tries to reconnect to one failed member every reconnect_interval (30 s by default); the core alone
# never contacts a member it declared dead once gossip to the dead is over, so healing needs it.
RECONNECT_INTERVAL = 30.0
PORT = 8301


@dataclass(slots=True, frozen=True)
class Declared:
    """One member's verdict on another, as a FAIL or LEAVE event reported it."""

    at: float
    observer: str
    subject: str
    kind: MemberEventKind


@dataclass
class SimMember:
    name: str
    address: str
    core: Memberlist | None
    lag: float = 0.0  # a slow member processes what it receives this much later
    wake_at: float = math.inf
    failed: set[str] = field(default_factory=set)  # members it saw fail and not come back, for reconnect
    received: dict[bytes, float] = field(default_factory=dict)  # user payload -> first time it arrived
    leave_completes: int = 0


class Sim:
    def __init__(self, seed: int, n: int, config: Config | None = None, loss: float = 0.0,
                 delay: tuple[float, float] = (0.0005, 0.005), stream_loss: bool = True,
                 reconnect: bool = False) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config or lan_config()
        self.loss = loss
        self.delay = delay
        self.stream_loss = stream_loss
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.groups: dict[str, int] | None = None
        self.members: dict[str, SimMember] = {}
        self.by_address: dict[str, SimMember] = {}
        self.declared: list[Declared] = []
        self.joined_at: dict[tuple[str, str], float] = {}
        self.crashed: set[str] = set()
        self.left: set[str] = set()
        for i in range(n):
            self.add_member(f"node-{i}", f"10.0.{i // 250}.{i % 250 + 1}:{PORT}")
        if reconnect:
            for m in self.members.values():
                self._schedule(self.rng.uniform(0, RECONNECT_INTERVAL), partial(self._reconnect, m))

    # ---- cluster actions ------------------------------------------------------------------------------

    def add_member(self, name: str, address: str) -> SimMember:
        member = SimMember(name, address, None)
        # Like Serf's push-pull state, which carries its recent user events, ours carries every payload seen.
        member.core = Memberlist(self.config, name, address, rng=random.Random(self.rng.getrandbits(64)),
                                 now=self.now, meta=name.encode(),
                                 local_state=lambda join: encode(tuple(sorted(member.received))))
        self.members[name] = member
        self.by_address[address] = member
        self._flush(member)
        return member

    def join_all(self, seed_name: str = "node-0", spread: float = 5.0) -> None:
        """Every other member joins through `seed_name`, at random times within `spread` seconds."""
        seed = self.members[seed_name].address
        for m in self.members.values():
            if m.name != seed_name:
                self._schedule(self.now + self.rng.uniform(0, spread), partial(self._join, m, seed))

    def crash(self, name: str) -> None:
        member = self.members[name]
        member.core = None
        self.crashed.add(name)

    def leave(self, name: str) -> None:
        self.left.add(name)
        self._call(self.members[name], lambda c: c.leave(self.now))

    def broadcast(self, name: str, payload: bytes) -> None:
        self._call(self.members[name], lambda c: c.broadcast(payload))
        self.members[name].received.setdefault(payload, self.now)

    def update_meta(self, name: str, meta: bytes) -> None:
        self._call(self.members[name], lambda c: c.update_meta(meta, self.now))

    def deliver(self, source: str, destination: str, data: bytes) -> None:
        """Hand `destination` a packet as if `source` had sent it (to inject messages)."""
        self._receive(self.members[destination], self.members[source].address, data)

    def partition(self, groups: dict[str, int]) -> None:
        self.groups = groups

    def heal(self) -> None:
        self.groups = None

    def live(self) -> list[SimMember]:
        return [m for m in self.members.values() if m.core is not None and m.name not in self.left]

    def run_until(self, end: float) -> None:
        while self._queue and self._queue[0][0] <= end:
            when, _, action = heapq.heappop(self._queue)
            self.now = when
            action()
        self.now = end

    def run_until_true(self, condition: Callable[[], bool], limit: float, step: float = 0.5) -> bool:
        """Run in `step`s until `condition()` holds (True) or `limit` is reached (False)."""
        while self.now < limit:
            if condition():
                return True
            self.run_until(min(self.now + step, limit))
        return condition()

    # ---- observations ---------------------------------------------------------------------------------

    def view(self, member: SimMember) -> frozenset[str]:
        """The members `member` considers in the cluster (alive or suspect)."""
        assert member.core is not None
        return frozenset(m.name for m in member.core.members()
                         if m.state in (MemberState.ALIVE, MemberState.SUSPECT))

    def converged(self) -> bool:
        expected = frozenset(m.name for m in self.live())
        return all(self.view(m) == expected for m in self.live())

    def false_failures(self) -> list[Declared]:
        """FAIL verdicts on members that had neither crashed nor left when declared."""
        return [d for d in self.declared if d.kind == MemberEventKind.FAIL and d.subject not in self.crashed
                and d.subject not in self.left]

    def suspicions(self) -> int:
        return sum(m.core.stats["suspicions"] for m in self.members.values() if m.core is not None)

    def describe(self) -> str:
        return f"SEED={self.seed} (n={len(self.members)}, loss={self.loss:.0%})"

    # ---- the network ----------------------------------------------------------------------------------

    def _schedule(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, action))

    def _call(self, member: SimMember, action: Callable[[Memberlist], None]) -> None:
        if member.core is not None:
            action(member.core)
            self._flush(member)

    def _receive(self, member: SimMember, source: str, data: bytes) -> None:
        self._call(member, lambda c: c.receive_packet(source, data, self.now))

    def _join(self, member: SimMember, seed_address: str) -> None:
        self._call(member, lambda c: c.join([seed_address], self.now))

    def _latency(self, src: SimMember, dst: SimMember | None) -> float:
        """One-way delay from `src` to `dst`; uniform here, pairwise in simulators that model a topology."""
        return self.rng.uniform(*self.delay)

    def _reachable(self, src: SimMember, dst: SimMember | None) -> bool:
        if dst is None or dst.core is None:
            return False
        return self.groups is None or self.groups.get(src.name, -1) == self.groups.get(dst.name, -1)

    def _flush(self, member: SimMember) -> None:
        core = member.core
        if core is None:
            return
        out: Output = core.poll()
        for packet in out.packets:
            dst = self.by_address.get(packet.address)
            if self._reachable(member, dst) and self.rng.random() >= self.loss:
                assert dst is not None
                self._schedule(self.now + self._latency(member, dst) + dst.lag,
                               partial(self._receive, dst, member.address, packet.data))
        for request in out.streams:
            self._stream(member, request.id, request.address, request.data, request.deadline)
        for event in out.events:
            self._record(member, event)
        deadline = core.next_deadline()
        if deadline is not None and deadline < member.wake_at:
            wake = max(deadline, self.now)
            member.wake_at = wake
            self._schedule(wake, lambda: self._wake(member, wake))

    def _wake(self, member: SimMember, deadline: float) -> None:
        if member.wake_at != deadline:
            return
        member.wake_at = math.inf
        self._call(member, lambda c: c.tick(self.now))

    def _stream(self, src: SimMember, stream_id: int, address: str, data: bytes, deadline: float) -> None:
        """A TCP exchange. Under loss a lost SYN or SYN-ACK costs Linux's 1 s initial retransmission timeout,
        a lost data segment or its ack the 200 ms minimum one."""
        dst = self.by_address.get(address)
        there = self.now + self._latency(src, dst)
        if self.stream_loss:
            there += sum(1.0 for _ in range(2) if self.rng.random() < self.loss)
            there += sum(0.2 for _ in range(2) if self.rng.random() < self.loss)
        if not self._reachable(src, dst) or there > deadline:
            self._schedule(deadline, lambda: self._call(src, lambda c: c.stream_reply(stream_id, None, self.now)))
            return
        assert dst is not None

        def serve() -> None:
            if dst.core is None:
                self._schedule(deadline, lambda: self._call(src, lambda c: c.stream_reply(stream_id, None, self.now)))
                return
            reply = dst.core.handle_stream(src.address, data, self.now)
            self._flush(dst)
            back = self.now + self._latency(dst, src) + src.lag
            if back > deadline or not self._reachable(dst, src):
                reply = None
            self._schedule(min(back, deadline), lambda: self._call(src, lambda c: c.stream_reply(
                stream_id, reply, self.now)))

        self._schedule(there + dst.lag, serve)

    def _record(self, member: SimMember, event: Event) -> None:
        if isinstance(event, MemberEvent):
            subject = event.member.name
            if event.kind in (MemberEventKind.FAIL, MemberEventKind.LEAVE):
                self.declared.append(Declared(self.now, member.name, subject, event.kind))
                if event.kind == MemberEventKind.FAIL:
                    member.failed.add(subject)
            elif event.kind == MemberEventKind.JOIN:
                member.failed.discard(subject)
                self.joined_at.setdefault((member.name, subject), self.now)
        elif isinstance(event, UserMessage):
            self._user_payload(member, event.payload)
        elif isinstance(event, RemoteState):
            for payload in decode(event.payload):
                self._user_payload(member, payload)
        elif isinstance(event, LeaveComplete):
            member.leave_completes += 1

    def _user_payload(self, member: SimMember, payload: bytes) -> None:
        """As Serf does with a user event it has not seen: keep it and gossip it on."""
        if payload not in member.received:
            member.received[payload] = self.now
            if member.core is not None:
                member.core.broadcast(payload)

    def _reconnect(self, member: SimMember) -> None:
        self._schedule(self.now + RECONNECT_INTERVAL, lambda: self._reconnect(member))
        if member.core is not None and member.failed:
            target = self.members[self.rng.choice(sorted(member.failed))]
            self._call(member, lambda c: c.join([target.address], self.now))
