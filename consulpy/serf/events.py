"""What the Serf layer hands its caller: members with Serf's statuses, member and user events, and the
packets and stream exchanges of the gossip core underneath, in one `Output` batch per `Serf.poll()`.
Imports: stdlib, consulpy.gossip (Address, Packet, StreamRequest, LogLine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

from consulpy.gossip import Address, LogLine, Packet, StreamRequest


class MemberStatus(IntEnum):
    """serf's MemberStatus, with its numbering (Consul's API shows the number as `Status`)."""

    NONE = 0
    ALIVE = 1
    LEAVING = 2
    LEFT = 3
    FAILED = 4

    def __str__(self) -> str:
        return self.name.lower()


class SerfState(Enum):
    ALIVE = "alive"
    LEAVING = "leaving"
    LEFT = "left"


@dataclass(slots=True, frozen=True)
class Member:
    name: str
    address: Address
    tags: dict[str, str]
    status: MemberStatus


class MemberEventKind(Enum):
    JOIN = "member-join"
    LEAVE = "member-leave"
    FAILED = "member-failed"
    UPDATE = "member-update"
    REAP = "member-reap"


@dataclass(slots=True, frozen=True)
class MemberEvent:
    kind: MemberEventKind
    member: Member


@dataclass(slots=True, frozen=True)
class UserEvent:
    """A user event seen for the first time (the agent's user-event log ingests these)."""

    ltime: int
    name: str
    payload: bytes
    coalesce: bool


@dataclass(slots=True, frozen=True)
class JoinDone:
    """A `Serf.join` finished: how many of its addresses answered a push-pull (serf's Join return)."""

    addresses: tuple[Address, ...]
    contacted: int


@dataclass(slots=True, frozen=True)
class LeaveDone:
    """Our leave has been gossiped; wait `leave_propagate_delay`, then stop the transport."""


@dataclass(slots=True, frozen=True)
class Query:
    """A query from some member (ourselves included) for the application to answer with `Serf.respond`
    before `deadline`. Internal queries (`_serf_…`) are answered by Serf itself and never show up here."""

    ltime: int
    id: int
    name: str
    payload: bytes
    source_node: str
    source_address: Address
    relay_factor: int
    deadline: float


@dataclass(slots=True, frozen=True)
class QueryResponse:
    """A member's answer to a query we sent; one per member, later duplicates (relayed copies) dropped."""

    query_id: int
    node: str
    payload: bytes


@dataclass(slots=True, frozen=True)
class QueryAck:
    """A member received a query we sent with `request_ack`; one per member."""

    query_id: int
    node: str


@dataclass(slots=True, frozen=True)
class QueryDone:
    """A query we sent is closed: its timeout passed, or every member alive when it went out has answered.
    No `QueryResponse` for it follows."""

    query_id: int


@dataclass(slots=True, frozen=True)
class KeyringChanged:
    """An internal query installed, made primary or removed a key in our keyring: time to save the file."""


Event = (MemberEvent | UserEvent | JoinDone | LeaveDone | Query | QueryResponse | QueryAck | QueryDone
         | KeyringChanged | LogLine)


@dataclass(slots=True)
class Output:
    packets: list[Packet] = field(default_factory=list)
    streams: list[StreamRequest] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
