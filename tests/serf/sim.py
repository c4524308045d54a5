"""The gossip simulator (tests/gossip/sim.py) with a `Serf` in place of each bare `Memberlist`: Serf is
driven exactly like the core, so the network, clock, loss and partitions are the gossip simulator's.
Members may sit on a plane where one-way delay grows with distance (for network coordinates), each may hold
a keyring of its own (for the keyring queries) and an answer for user queries, and each records the Serf
events it handed out. Imports: stdlib, consulpy.gossip, consulpy.serf, tests.gossip.sim.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from consulpy.gossip import LogLine
from consulpy.gossip.keyring import Keyring
from consulpy.serf import (
    Event,
    JoinDone,
    KeyringChanged,
    LeaveDone,
    MemberEvent,
    MemberEventKind,
    MemberStatus,
    Query,
    QueryAck,
    QueryDone,
    QueryResponse,
    Serf,
    SerfConfig,
    SnapshotState,
    UserEvent,
)
from tests.gossip.sim import Sim, SimMember

# On the plane, one-way delay is this base plus the distance (a plane 20 ms across).
BASE_DELAY = 0.0005
PLANE_SIZE = 0.020


@dataclass
class SerfMember(SimMember):
    serf_events: list[tuple[float, Event]] = field(default_factory=list)
    position: tuple[float, float] = (0.0, 0.0)
    log_lines: list[str] = field(default_factory=list)

    @property
    def serf(self) -> Serf:
        assert isinstance(self.core, Serf)
        return self.core

    def user_events(self) -> list[UserEvent]:
        return [e for _, e in self.serf_events if isinstance(e, UserEvent)]

    def query_events(self, query_id: int) -> list[tuple[float, QueryResponse | QueryAck | QueryDone]]:
        return [(t, e) for t, e in self.serf_events
                if isinstance(e, QueryResponse | QueryAck | QueryDone) and e.query_id == query_id]

    def member_events(self, subject: str, kind: MemberEventKind | None = None) -> list[tuple[float, MemberEvent]]:
        return [(t, e) for t, e in self.serf_events if isinstance(e, MemberEvent) and e.member.name == subject
                and (kind is None or e.kind == kind)]


class SerfSim(Sim):
    def __init__(self, seed: int, n: int, serf_config: SerfConfig | None = None, loss: float = 0.0,
                 plane: bool = False, keys: list[bytes] | None = None) -> None:
        """With `keys`, every member starts with a keyring of its own holding them (primary first)."""
        self.serf_config = serf_config or SerfConfig()
        self.plane = plane
        self.tags: dict[str, dict[str, str]] = {}
        self.keyrings: dict[str, Keyring] = {}
        self.keys = keys
        # How members answer user queries: (member name, query) -> payload, or None to stay silent.
        self.answer: Callable[[str, Query], bytes | None] | None = None
        super().__init__(seed, n, config=self.serf_config.gossip, loss=loss)

    def add_member(self, name: str, address: str, previous: SnapshotState | None = None) -> SimMember:
        member = SerfMember(name, address, None)
        if self.plane:
            member.position = (self.rng.uniform(0, PLANE_SIZE), self.rng.uniform(0, PLANE_SIZE))
        tags = self.tags.setdefault(name, {"role": "node", "id": name})
        if self.keys is not None:
            self.keyrings.setdefault(name, Keyring(self.keys))
        member.core = Serf(self.serf_config, name, address, rng=random.Random(self.rng.getrandbits(64)),  # type: ignore[assignment]
                           now=self.now, tags=tags, previous=previous, keyring=self.keyrings.get(name))
        self.members[name] = member
        self.by_address[address] = member
        self._flush(member)
        return member

    def restart(self, name: str, previous: SnapshotState) -> SerfMember:
        """A crashed member starts again at its address, from its snapshot (so it rejoins by itself)."""
        old = self.member(name)
        self.crashed.discard(name)
        new = self.add_member(name, old.address, previous)
        assert isinstance(new, SerfMember)
        new.position = old.position
        return new

    def act(self, name: str, action: Callable[[Serf], None]) -> None:
        """Run an operation on a member's Serf now and send what it produced."""
        self._call(self.member(name), lambda core: action(self.member(name).serf))

    def fire(self, source: str, name: str, payload: bytes, coalesce: bool = True) -> None:
        self.act(source, lambda serf: serf.user_event(name, payload, coalesce))

    def member(self, name: str) -> SerfMember:
        member = self.members[name]
        assert isinstance(member, SerfMember)
        return member

    def serf_members(self) -> list[SerfMember]:
        return [self.member(m.name) for m in self.live()]

    def statuses(self, observer: str) -> dict[str, MemberStatus]:
        return {m.name: m.status for m in self.member(observer).serf.members()}

    def all_see(self, subject: str, status: MemberStatus | None) -> bool:
        """Every live member shows `subject` with `status` (None: not at all)."""
        return all(self.statuses(m.name).get(subject) == status for m in self.serf_members() if m.name != subject)

    def all_alive(self) -> bool:
        expected = {m.name: MemberStatus.ALIVE for m in self.serf_members()}
        return all(self.statuses(m.name) == expected for m in self.serf_members())

    def true_rtt(self, a: str, b: str) -> float:
        pa, pb = self.member(a).position, self.member(b).position
        return 2 * (BASE_DELAY + math.dist(pa, pb))

    def _latency(self, src: SimMember, dst: SimMember | None) -> float:
        if not self.plane or not isinstance(src, SerfMember) or not isinstance(dst, SerfMember):
            return super()._latency(src, dst)
        # A little jitter on top of the distance, as real paths have.
        return (BASE_DELAY + math.dist(src.position, dst.position)) * self.rng.uniform(1.0, 1.1)

    def _record(self, member: SimMember, event: object) -> None:
        assert isinstance(member, SerfMember)
        if isinstance(event, MemberEvent | UserEvent | JoinDone | LeaveDone | Query | QueryResponse | QueryAck
                      | QueryDone | KeyringChanged):
            member.serf_events.append((self.now, event))
        if isinstance(event, Query) and self.answer is not None:
            payload = self.answer(member.name, event)
            if payload is not None:
                self.act(member.name, lambda serf: serf.respond(event, payload, self.now))
        elif isinstance(event, LogLine):
            member.log_lines.append(event.text)
        if isinstance(event, LeaveDone):
            member.leave_completes += 1
