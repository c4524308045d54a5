"""KV operations with Consul's semantics, evaluated on an overlay so a batch applies all-or-nothing.

Single KV writes and `/v1/txn` share this one path. An op that "returns false" in Consul's KV API
(a CAS miss, a lock held elsewhere) raises `KVOpFailed`; other refusals raise `StateError`.
Imports: stdlib, consulpy.codec, consulpy.state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from consulpy.codec import wire
from consulpy.state.errors import KVOpFailed, StateError
from consulpy.state.records import DirEntry

if TYPE_CHECKING:
    from consulpy.state.store import StateStore

TxnResult = DirEntry

KV_VERBS = (
    "set", "cas", "lock", "unlock", "get", "get-or-empty", "get-tree", "check-index", "check-session",
    "check-not-exists", "delete", "delete-tree", "delete-cas",
)
WRITE_VERBS = frozenset(("set", "cas", "lock", "unlock", "delete", "delete-cas", "delete-tree"))


def go_quote(text: str) -> str:
    """Go's %q of a string, as Consul's error messages print keys and sessions."""
    return json.dumps(text, ensure_ascii=False)


@wire(10)
@dataclass(slots=True, frozen=True)
class KVOp:
    """One KV operation; `index` is the CAS / check index, as Consul's DirEnt.ModifyIndex."""

    verb: str
    key: str
    value: bytes | None = None
    flags: int = 0
    index: int = 0
    session: str = ""


class KVOverlay:
    """Uncommitted KV changes layered over the store; `changes` maps key to entry (None = deleted)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.changes: dict[str, DirEntry | None] = {}

    def get(self, key: str) -> DirEntry | None:
        if key in self.changes:
            return self.changes[key]
        return self.store.kv_get(key)[1]

    def keys_under(self, prefix: str) -> list[str]:
        keys = {e.key for e in self.store.kv_list(prefix)[1]}
        for key, entry in self.changes.items():
            if key.startswith(prefix):
                if entry is None:
                    keys.discard(key)
                else:
                    keys.add(key)
        return sorted(keys)

    def put(self, entry: DirEntry) -> None:
        self.changes[entry.key] = entry

    def remove(self, key: str) -> None:
        if self.get(key) is not None:
            self.changes[key] = None


def _stored(existing: DirEntry | None, op: KVOp, index: int, *, session: str, lock_index: int) -> DirEntry:
    """The entry a write leaves behind; an unchanged entry keeps its indexes, so nothing is written or woken."""
    entry = DirEntry(
        key=op.key, value=op.value or None, flags=op.flags, session=session, lock_index=lock_index,
        create_index=existing.create_index if existing is not None else index, modify_index=index,
    )
    if existing is not None and _same(existing, entry):
        return existing
    return entry


def _same(a: DirEntry, b: DirEntry) -> bool:
    """Consul's DirEntry.Equal: lock index, key, flags, value (nil equals empty) and session."""
    return (a.lock_index, a.key, a.flags, a.value or b"", a.session) == (
        b.lock_index, b.key, b.flags, b.value or b"", b.session)


def _put(kv: KVOverlay, existing: DirEntry | None, entry: DirEntry) -> DirEntry:
    if entry is not existing:
        kv.put(entry)
    return entry


def _blank(entry: DirEntry) -> DirEntry:
    return replace(entry, value=None)


def _require_session(op: KVOp) -> None:
    if not op.session:
        raise StateError("missing session")


def run_kv_op(kv: KVOverlay, index: int, op: KVOp) -> Iterator[TxnResult]:
    """Apply one op to the overlay, yielding its txn results; raises KVOpFailed or StateError.

    A plain set or CAS does not carry the lock index (Consul's HTTP and txn APIs have no field for it), so
    it stores 0 while keeping the holder's session; lock and unlock manage the lock index themselves.
    """
    existing = kv.get(op.key)
    key = go_quote(op.key)
    verb = op.verb
    if verb == "set":
        entry = _stored(existing, op, index, session=existing.session if existing else "", lock_index=0)
        yield _blank(_put(kv, existing, entry))
    elif verb == "cas":
        if (op.index == 0 and existing is not None) or (
                op.index != 0 and (existing is None or existing.modify_index != op.index)):
            raise KVOpFailed(f"failed to set key {key}, index is stale")
        entry = _stored(existing, op, index, session=existing.session if existing else "", lock_index=0)
        yield _blank(_put(kv, existing, entry))
    elif verb == "lock":
        _require_session(op)
        if not kv.store.has_session(op.session):
            raise StateError(f"invalid session {go_quote(op.session)}")
        if existing is not None and existing.session and existing.session != op.session:
            raise KVOpFailed(f"failed to lock key {key}, lock is already held")
        if existing is not None and existing.session == op.session:
            lock_index = existing.lock_index
        else:
            lock_index = (existing.lock_index if existing else 0) + 1
        entry = _stored(existing, op, index, session=op.session, lock_index=lock_index)
        yield _blank(_put(kv, existing, entry))
    elif verb == "unlock":
        _require_session(op)
        if existing is None or existing.session != op.session:
            raise KVOpFailed(f"failed to unlock key {key}, lock isn't held, or is held by another session")
        entry = _stored(existing, op, index, session="", lock_index=existing.lock_index)
        yield _blank(_put(kv, existing, entry))
    elif verb == "get":
        if existing is None:
            raise StateError(f"key {key} doesn't exist")
        yield existing
    elif verb == "get-or-empty":
        if existing is None:
            existing = DirEntry(key=op.key, flags=op.flags, session=op.session, modify_index=op.index)
        yield existing
    elif verb == "get-tree":
        for found_key in kv.keys_under(op.key):
            found = kv.get(found_key)
            if found is not None:
                yield found
    elif verb == "check-index":
        if existing is None:
            raise StateError(f"failed to check index, key {key} doesn't exist")
        if existing.modify_index != op.index:
            raise StateError(
                f"failed index check for key {key}, current modify index {existing.modify_index} != {op.index}")
        yield _blank(existing)
    elif verb == "check-session":
        if existing is None:
            raise StateError(f"failed to check session, key {key} doesn't exist")
        if existing.session != op.session:
            raise StateError(f"failed session check for key {key}, current session "
                             f"{go_quote(existing.session)} != {go_quote(op.session)}")
        yield _blank(existing)
    elif verb == "check-not-exists":
        if existing is not None:
            raise StateError(f"key {key} exists")
    elif verb == "delete":
        kv.remove(op.key)
    elif verb == "delete-cas":
        if existing is not None and existing.modify_index != op.index:
            raise KVOpFailed(f"failed to delete key {key}, index is stale")
        kv.remove(op.key)
    elif verb == "delete-tree":
        for found_key in kv.keys_under(op.key):
            kv.remove(found_key)
    else:
        raise StateError(f"unknown KV verb {go_quote(verb)}")
