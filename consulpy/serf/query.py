"""Serf queries, the parts that need no member state (hashicorp/serf query.go and internal_query.go): the
default timeout, the buffer that makes a re-gossiped query run once per member, the querier's record of an
open query, and the internal keyring queries answered against this member's `Keyring`.

`Serf` (serf.py) gossips queries, sends and relays the answers and turns them into events; this module
decides what a member answers. Imports: stdlib, consulpy.codec, consulpy.gossip.keyring, this package's
messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from consulpy.gossip.keyring import Keyring, KeyringError, encode_key
from consulpy.serf.messages import NodeKeyResponse

# Queries whose name starts with this are Serf's own: answered inside Serf, never shown to the application.
INTERNAL_QUERY_PREFIX = "_serf_"
PING_QUERY = INTERNAL_QUERY_PREFIX + "ping"
INSTALL_KEY_QUERY = INTERNAL_QUERY_PREFIX + "install-key"
USE_KEY_QUERY = INTERNAL_QUERY_PREFIX + "use-key"
REMOVE_KEY_QUERY = INTERNAL_QUERY_PREFIX + "remove-key"
LIST_KEYS_QUERY = INTERNAL_QUERY_PREFIX + "list-keys"
KEY_QUERIES = (INSTALL_KEY_QUERY, USE_KEY_QUERY, REMOVE_KEY_QUERY, LIST_KEYS_QUERY)

# The smallest a base64 key can weigh in an encoded list-keys answer; the response size limit divided by it
# bounds how many keys one answer can carry before it must be truncated (serf's minEncodedKeyLength).
MIN_ENCODED_KEY_LENGTH = 25


def default_query_timeout(gossip_interval: float, timeout_mult: int, members: int) -> float:
    """serf's DefaultQueryTimeout: gossip_interval * query_timeout_mult * ceil(log10(N + 1)) seconds."""
    return gossip_interval * timeout_mult * math.ceil(math.log10(members + 1))


@dataclass(slots=True)
class _Slot:
    ltime: int
    ids: list[int]


class QueryBuffer:
    """The ids of recent queries by query-clock time, in `size` slots (serf's queryBuffer)."""

    def __init__(self, size: int) -> None:
        self._slots: list[_Slot | None] = [None] * size

    def __len__(self) -> int:
        return len(self._slots)

    def first_sight(self, ltime: int, query_id: int) -> bool:
        """Record the query; False when it was already recorded."""
        index = ltime % len(self._slots)
        slot = self._slots[index]
        if slot is not None and slot.ltime == ltime:
            if query_id in slot.ids:
                return False
            slot.ids.append(query_id)
        else:
            self._slots[index] = _Slot(ltime, [query_id])
        return True


@dataclass(slots=True, eq=False)
class OpenQuery:
    """A query we sent, until it closes: who has answered and acked, and who we expect answers from."""

    id: int
    expected: frozenset[str]  # the members alive when it went out, ourselves included
    wants_acks: bool
    responses: set[str] = field(default_factory=set)
    acks: set[str] = field(default_factory=set)

    def complete(self) -> bool:
        """Every expected member has answered (and acked, when acks were asked for): nothing is left to wait
        for except members that joined since, which a query does not wait for."""
        return self.expected <= self.responses and (not self.wants_acks or self.expected <= self.acks)


@dataclass(slots=True, frozen=True)
class KeyAnswer:
    """What a member answers a keyring query with, whether its keyring changed, and what to log."""

    response: NodeKeyResponse
    changed: bool
    logs: tuple[tuple[str, str], ...]


def answer_key_query(keyring: Keyring | None, name: str, key: bytes) -> KeyAnswer:
    """Run an internal keyring query against this member's keyring (the request payload is the raw key;
    list-keys has none). Failures are answered, not raised, with memberlist's and serf's messages."""
    operation = name.removeprefix(INTERNAL_QUERY_PREFIX)
    if keyring is None or not keyring:
        message = ("Keyring is empty (encryption not enabled)" if name == LIST_KEYS_QUERY
                   else "No keyring to modify (encryption not enabled)")
        return KeyAnswer(NodeKeyResponse(False, message, (), ""), False, (("ERR", message),))
    received = ("INFO", f"Received {operation} query")
    if name == LIST_KEYS_QUERY:
        primary = keyring.primary
        keys = tuple(map(encode_key, keyring.keys()))
        return KeyAnswer(NodeKeyResponse(True, "", keys, encode_key(primary) if primary else ""), False, (received,))
    change: Callable[[bytes], None]
    failure: str
    if name == INSTALL_KEY_QUERY:
        change, failure = keyring.install, "Failed to install key"
    elif name == USE_KEY_QUERY:
        change, failure = keyring.use, "Failed to change primary key"
    else:
        change, failure = keyring.remove, "Failed to remove key"
    try:
        change(key)
    except KeyringError as exc:
        return KeyAnswer(NodeKeyResponse(False, str(exc), (), ""), False, (received, ("ERR", f"{failure}: {exc}")))
    return KeyAnswer(NodeKeyResponse(True, "", (), ""), True, (received,))


def fit_key_list(response: NodeKeyResponse, encode_answer: Callable[[NodeKeyResponse], bytes],
                 limit: int) -> tuple[bytes, NodeKeyResponse] | None:
    """The encoded answer to a list-keys query within `limit` bytes: keys are dropped from the end, with a
    message saying so, until it fits (serf's keyListResponseWithCorrectSize). None if nothing fits."""
    actual = len(response.keys)
    candidate = response
    for shown in range(min(limit // MIN_ENCODED_KEY_LENGTH, actual), -1, -1):
        raw = encode_answer(candidate)
        if len(raw) <= limit:
            return raw, candidate
        candidate = NodeKeyResponse(response.result, f"truncated key list response, showing first {shown} of "
                                    f"{actual} keys", response.keys[:shown], response.primary_key)
    return None
