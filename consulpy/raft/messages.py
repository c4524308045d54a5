"""Raft wire records: log entries, messages, hard state, snapshots and configuration changes.

Frozen slotted dataclasses registered with `consulpy.codec.wire` (codes 40-49), so the transport and
the log store encode them with msgpack. Imports: stdlib, consulpy.codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from consulpy.codec import wire


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class MsgType(IntEnum):
    APPEND = 1
    APPEND_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    PRE_VOTE = 5
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAPSHOT = 9
    TIMEOUT_NOW = 10
    READ_INDEX = 11
    READ_INDEX_RESP = 12


class ConfChangeType(IntEnum):
    ADD_VOTER = 0
    ADD_LEARNER = 1
    REMOVE = 2


@wire(40)
@dataclass(slots=True, frozen=True)
class Entry:
    term: int
    index: int
    type: int = EntryType.NORMAL
    data: bytes = b""


@wire(41)
@dataclass(slots=True, frozen=True)
class ConfState:
    voters: tuple[int, ...]
    learners: tuple[int, ...] = ()


@wire(42)
@dataclass(slots=True, frozen=True)
class Snapshot:
    index: int
    term: int
    conf: ConfState
    data: bytes = b""


@wire(43)
@dataclass(slots=True, frozen=True)
class HardState:
    term: int = 0
    vote: int = 0
    commit: int = 0


@wire(44)
@dataclass(slots=True, frozen=True)
class ConfChange:
    """ADD_VOTER also promotes a learner; ADD_LEARNER on a voter is refused."""

    type: int
    node: int


@wire(45)
@dataclass(slots=True, frozen=True)
class Message:
    type: int
    to: int
    frm: int
    term: int
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""


@dataclass(slots=True, frozen=True)
class ReadState:
    """A linearizable read of `context` may be served once the local applied index reaches `index`."""

    index: int
    context: bytes
