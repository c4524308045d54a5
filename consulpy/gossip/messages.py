"""Gossip wire messages (codec ext codes 60-79) and the packet format: one message, or a compound of several.

A compound packet is a msgpack array of encoded messages, so broadcasts already encoded once can be
concatenated behind a header without re-encoding. Decoding checks every field's type, so a garbled or
hostile packet is rejected as a whole instead of failing deep in the core. Imports: stdlib, msgpack, codec.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from consulpy.codec import CodecError, decode, wire

Address = str  # "host:port", as the transport resolves and prints it


class MemberState(IntEnum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


@wire(60)
@dataclass(slots=True, frozen=True)
class Ping:
    """Are you `node`? The ack goes to `source_addr`, which may differ from the packet's source."""

    seq: int
    node: str
    source_addr: Address
    source_node: str


@wire(61)
@dataclass(slots=True, frozen=True)
class IndirectPing:
    """Probe `node` at `target` for me and forward its ack; with `nack`, say so if it stays silent."""

    seq: int
    target: Address
    node: str
    nack: bool
    source_addr: Address
    source_node: str


@wire(62)
@dataclass(slots=True, frozen=True)
class Ack:
    seq: int
    payload: bytes


@wire(63)
@dataclass(slots=True, frozen=True)
class Nack:
    seq: int


@wire(64)
@dataclass(slots=True, frozen=True)
class Suspect:
    incarnation: int
    node: str
    from_node: str


@wire(65)
@dataclass(slots=True, frozen=True)
class Alive:
    incarnation: int
    node: str
    address: Address
    meta: bytes


@wire(66)
@dataclass(slots=True, frozen=True)
class Dead:
    """`from_node == node` means the member announced its own graceful leave."""

    incarnation: int
    node: str
    from_node: str


@wire(67)
@dataclass(slots=True, frozen=True)
class UserMsg:
    """A payload of the layer above (Serf), carried by gossip or sent best-effort to one member."""

    payload: bytes


@wire(68)
@dataclass(slots=True, frozen=True)
class PushNodeState:
    name: str
    address: Address
    meta: bytes
    incarnation: int
    state: int


@wire(69)
@dataclass(slots=True, frozen=True)
class PushPull:
    """A full state exchange over a stream: the sender's view of every member plus the layer above's state."""

    join: bool
    nodes: tuple[PushNodeState, ...]
    user_state: bytes


PacketMessage = Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | UserMsg
PACKET_TYPES: tuple[type, ...] = (Ping, IndirectPing, Ack, Nack, Suspect, Alive, Dead, UserMsg)

# A compound header is at most 3 bytes (msgpack array16); entries cost nothing beyond their own bytes.
COMPOUND_OVERHEAD = 3


def _spec(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    """(field, exact type, element type of a tuple field) for each field of a record."""
    hints = typing.get_type_hints(cls, globalns={**globals(), "Address": str})
    spec = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) is tuple:
            spec.append((f.name, tuple, typing.get_args(hint)[0]))
        else:
            spec.append((f.name, hint, None))
    return tuple(spec)


_SPECS = {cls: _spec(cls) for cls in (*PACKET_TYPES, PushNodeState, PushPull)}


def well_formed(message: object) -> bool:
    """True when `message` is a known gossip record whose fields all have exactly their declared types
    (so a bool does not pass for an int) and whose integers are not negative."""
    spec = _SPECS.get(type(message))
    if spec is None:
        return False
    for name, kind, item in spec:
        value = getattr(message, name)
        if type(value) is not kind:
            return False
        if kind is int and value < 0:
            return False
        if item is not None and not all(type(v) is item and well_formed(v) for v in value):
            return False
    return True


def compound(parts: list[bytes]) -> bytes:
    """One packet holding several already-encoded messages (a msgpack array of them)."""
    n = len(parts)
    header = bytes([0x90 | n]) if n < 16 else b"\xdc" + n.to_bytes(2, "big")
    return header + b"".join(parts)


def decode_packet(data: bytes) -> list[PacketMessage] | None:
    """The messages of a packet, or None when it is not a well-formed gossip packet."""
    try:
        value = decode(data)
    except CodecError:
        return None
    items = value if isinstance(value, tuple) else (value,)
    if not items or not all(isinstance(m, PACKET_TYPES) and well_formed(m) for m in items):
        return None
    return list(items)


def decode_stream(data: bytes) -> Ping | PushPull | Ack | None:
    """A stream payload: a push-pull, a fallback ping, or the ack answering one; None when malformed."""
    try:
        value = decode(data)
    except CodecError:
        return None
    if isinstance(value, PushPull | Ping | Ack) and well_formed(value):
        return value
    return None
