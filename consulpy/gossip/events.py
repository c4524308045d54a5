"""What the gossip core hands its caller: packets and stream exchanges to perform, and events to act on.

`Output` is one batch of them, taken with `Memberlist.poll()` after each input. Imports: stdlib, and
`MemberState`/`Address` from this package's messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from consulpy.gossip.messages import Address, MemberState


@dataclass(slots=True, frozen=True)
class Member:
    name: str
    address: Address
    meta: bytes
    state: MemberState
    incarnation: int


class MemberEventKind(Enum):
    JOIN = "join"  # a member became alive (first seen, or back from dead/left)
    UPDATE = "update"  # an alive member's metadata changed
    LEAVE = "leave"  # a member announced its graceful leave: Serf shows it `left`
    FAIL = "fail"  # a member was declared dead by failure detection: Serf shows it `failed`


@dataclass(slots=True, frozen=True)
class MemberEvent:
    kind: MemberEventKind
    member: Member


@dataclass(slots=True, frozen=True)
class UserMessage:
    """A payload the layer above broadcast or sent to this member."""

    payload: bytes


@dataclass(slots=True, frozen=True)
class RemoteState:
    """The layer above's state from a push-pull (join: it was part of joining)."""

    payload: bytes
    join: bool


@dataclass(slots=True, frozen=True)
class PingComplete:
    """A probe was acked: round-trip time in seconds and the ack's payload (network coordinates)."""

    node: str
    rtt: float
    payload: bytes


@dataclass(slots=True, frozen=True)
class JoinResult:
    """The push-pull a `join` started with `address` completed (ok) or failed."""

    address: Address
    ok: bool


@dataclass(slots=True, frozen=True)
class LeaveComplete:
    """The leave announcement has been gossiped as often as a broadcast is, or nobody is left to tell."""


@dataclass(slots=True, frozen=True)
class LogLine:
    """A line for the agent log, with memberlist's wording (level is "DEBUG", "INFO", "WARN" or "ERR")."""

    level: str
    text: str


Event = MemberEvent | UserMessage | RemoteState | PingComplete | JoinResult | LeaveComplete | LogLine


@dataclass(slots=True, frozen=True)
class Packet:
    """A UDP datagram to send, best effort."""

    address: Address
    data: bytes


@dataclass(slots=True, frozen=True)
class StreamRequest:
    """Open a TCP stream to `address`, write `data` as one frame, read one reply frame, and pass it to
    `Memberlist.stream_reply(id, reply, now)`, or None there if it failed or `deadline` passed first."""

    id: int
    address: Address
    data: bytes
    deadline: float


@dataclass(slots=True)
class Output:
    packets: list[Packet] = field(default_factory=list)
    streams: list[StreamRequest] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
