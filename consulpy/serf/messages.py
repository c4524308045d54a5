"""Serf's wire records (codec ext codes 70-79), carried by the gossip core as user broadcasts, direct user
packets (query responses and their relays), push-pull state and ack payloads, and the member tag encoding
(memberlist metadata).

Every decoded record is checked field by field, so a garbled or hostile message is dropped whole instead
of failing deep in the Serf layer. Tags use serf's encoding (a 0xff magic byte, then a msgpack map), so a
metadata blob without the magic byte reads as a bare `role` tag, as serf reads protocol 2 members.
Imports: stdlib, msgpack, consulpy.codec, consulpy.gossip (META_MAX_SIZE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import msgpack

from consulpy.codec import CodecError, decode, wire
from consulpy.gossip import META_MAX_SIZE

TAG_MAGIC_BYTE = 0xFF
_Record = TypeVar("_Record")


@wire(70)
@dataclass(slots=True, frozen=True)
class JoinIntent:
    """`node` is alive as of member-clock time `ltime` (serf's messageJoin)."""

    ltime: int
    node: str


@wire(71)
@dataclass(slots=True, frozen=True)
class LeaveIntent:
    """`node` is leaving as of `ltime`; with `prune`, forget it at once (serf's messageLeave)."""

    ltime: int
    node: str
    prune: bool


@wire(72)
@dataclass(slots=True, frozen=True)
class UserEventMessage:
    ltime: int
    name: str
    payload: bytes
    coalesce: bool


@wire(73)
@dataclass(slots=True, frozen=True)
class EventsAt:
    """The user events of one event-clock time, as (name, payload) pairs (serf's userEvents)."""

    ltime: int
    events: tuple[tuple[str, bytes], ...]


@wire(74)
@dataclass(slots=True, frozen=True)
class PushPullState:
    """Serf's messagePushPull: each member's status time, who has left, the clocks and the event buffer."""

    ltime: int
    status_ltimes: dict[str, int]
    left_members: tuple[str, ...]
    event_ltime: int
    events: tuple[EventsAt, ...]
    query_ltime: int


@wire(75)
@dataclass(slots=True, frozen=True)
class Coordinate:
    """A Vivaldi network coordinate; distances between coordinates estimate round trips in seconds."""

    vec: tuple[float, ...]
    error: float
    adjustment: float
    height: float

    def is_valid(self) -> bool:
        return all(math.isfinite(v) for v in (*self.vec, self.error, self.adjustment, self.height))


@wire(76)
@dataclass(slots=True, frozen=True)
class QueryMessage:
    """A query, gossiped to every member (serf's messageQuery): answers go straight to `address`."""

    ltime: int  # query-clock time; with `id` it names the query
    id: int
    address: str  # where the querier takes direct answers ("host:port")
    source_node: str
    flags: int  # QUERY_FLAG_ACK / QUERY_FLAG_NO_BROADCAST
    relay_factor: int  # answers are also relayed through this many other members
    timeout: float  # seconds the querier keeps the query open
    name: str
    payload: bytes


@wire(77)
@dataclass(slots=True, frozen=True)
class QueryResponseMessage:
    """One member's answer (or delivery ack) to a query, sent to the querier (serf's messageQueryResponse)."""

    ltime: int
    id: int
    from_node: str
    flags: int  # QUERY_FLAG_ACK for a delivery ack
    payload: bytes


@wire(78)
@dataclass(slots=True, frozen=True)
class RelayMessage:
    """An encoded query response for a relaying member to pass on to `address` (serf's relay header)."""

    address: str
    response: bytes


@wire(79)
@dataclass(slots=True, frozen=True)
class NodeKeyResponse:
    """A member's answer to an internal keyring query (serf's nodeKeyResponse): whether the operation
    succeeded there, its message, and for list-keys the installed keys (base64) and the primary key."""

    result: bool
    message: str
    keys: tuple[str, ...]
    primary_key: str


QUERY_FLAG_ACK = 1
QUERY_FLAG_NO_BROADCAST = 2

SerfMessage = JoinIntent | LeaveIntent | UserEventMessage | QueryMessage | QueryResponseMessage | RelayMessage


def _clock(value: object) -> bool:
    return type(value) is int and value >= 0


def _well_formed(message: object) -> bool:
    if isinstance(message, JoinIntent):
        return _clock(message.ltime) and type(message.node) is str
    if isinstance(message, LeaveIntent):
        return _clock(message.ltime) and type(message.node) is str and type(message.prune) is bool
    if isinstance(message, UserEventMessage):
        return (_clock(message.ltime) and type(message.name) is str and type(message.payload) is bytes
                and type(message.coalesce) is bool)
    if isinstance(message, QueryMessage):
        return (_clock(message.ltime) and _clock(message.id) and type(message.address) is str
                and type(message.source_node) is str and _clock(message.flags) and _clock(message.relay_factor)
                and type(message.timeout) is float and math.isfinite(message.timeout) and message.timeout > 0
                and type(message.name) is str and type(message.payload) is bytes)
    if isinstance(message, QueryResponseMessage):
        return (_clock(message.ltime) and _clock(message.id) and type(message.from_node) is str
                and _clock(message.flags) and type(message.payload) is bytes)
    if isinstance(message, RelayMessage):
        return type(message.address) is str and type(message.response) is bytes
    return False


def _events_well_formed(events: object) -> bool:
    return type(events) is tuple and all(
        type(e) is EventsAt and _clock(e.ltime) and type(e.events) is tuple
        and all(type(p) is tuple and len(p) == 2 and type(p[0]) is str and type(p[1]) is bytes for p in e.events)
        for e in events)


def decode_message(data: bytes) -> SerfMessage | None:
    """A broadcast or direct Serf message, or None when it is not a well-formed one."""
    try:
        value = decode(data)
    except CodecError:
        return None
    return value if _well_formed(value) else None


def _decode_as(data: bytes, kind: type[_Record]) -> _Record | None:
    """The record `data` encodes if it is a `kind`, else None."""
    try:
        value = decode(data)
    except CodecError:
        return None
    return value if isinstance(value, kind) else None


def decode_key_response(data: bytes) -> NodeKeyResponse | None:
    """A member's keyring query answer, or None when it is not a well-formed one."""
    value = _decode_as(data, NodeKeyResponse)
    if value is None:
        return None
    ok = (type(value.result) is bool and type(value.message) is str and type(value.keys) is tuple
          and all(type(k) is str for k in value.keys) and type(value.primary_key) is str)
    return value if ok else None


def decode_push_pull(data: bytes) -> PushPullState | None:
    value = _decode_as(data, PushPullState)
    if value is None:
        return None
    ok = (_clock(value.ltime) and _clock(value.event_ltime) and _clock(value.query_ltime)
          and type(value.status_ltimes) is dict
          and all(type(k) is str and _clock(v) for k, v in value.status_ltimes.items())
          and type(value.left_members) is tuple and all(type(n) is str for n in value.left_members)
          and _events_well_formed(value.events))
    return value if ok else None


def decode_coordinate(data: bytes, dimensionality: int) -> Coordinate | None:
    """A peer's coordinate from an ack payload, or None when absent, malformed or of other dimensions."""
    if not data:
        return None
    try:
        value = decode(data)
    except CodecError:
        return None
    if not isinstance(value, Coordinate) or type(value.vec) is not tuple or len(value.vec) != dimensionality:
        return None
    numbers = (*value.vec, value.error, value.adjustment, value.height)
    if not all(type(v) is float for v in numbers) or not value.is_valid():
        return None
    return value


class TagsTooLarge(ValueError):
    """Encoded tags would not fit the gossip metadata limit."""


def encode_tags(tags: dict[str, str]) -> bytes:
    """Tags as member metadata; refuses tags whose encoding exceeds memberlist's 512-byte limit."""
    packed: bytes = msgpack.packb(dict(sorted(tags.items())), use_bin_type=True)
    meta = bytes([TAG_MAGIC_BYTE]) + packed
    if len(meta) > META_MAX_SIZE:
        raise TagsTooLarge(f"Encoded length of tags exceeds limit of {META_MAX_SIZE} bytes")
    return meta


def decode_tags(meta: bytes) -> dict[str, str]:
    """A member's tags from its metadata; undecodable tags read as none, as serf logs and carries on."""
    if not meta or meta[0] != TAG_MAGIC_BYTE:
        return {"role": meta.decode("utf-8", "replace")}
    try:
        value = msgpack.unpackb(meta[1:], raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
