"""Applies committed commands to the state store, in log order, one index at a time.

`apply` never raises for a refused command: it returns the `StateError` as the result, so a command
that fails on one replica fails identically on all. `snapshot`/`restore` give Raft the FSM's image for
log compaction and InstallSnapshot. Imports: stdlib, consulpy.codec, consulpy.state, consulpy.fsm.commands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from consulpy.codec import CodecError, decode, encode
from consulpy.fsm.commands import (
    Command,
    CoordinateBatchUpdate,
    DeregisterRequest,
    KVSRequest,
    RegisterRequest,
    RestoreRequest,
    SessionRequest,
    TxnRequest,
)
from consulpy.state import DirEntry, KVOpFailed, StateError, StateStore
from consulpy.state.snapshot import SnapshotError


@dataclass(slots=True, frozen=True)
class TxnOutcome:
    """The result of a TxnRequest: results on commit, errors (op position, reason) on rollback."""

    results: tuple[DirEntry, ...]
    errors: tuple[tuple[int, str], ...]


class FSM:
    """The state machine that Raft (or, in dev mode, the agent directly) feeds committed commands.

    The store's indexes (CreateIndex, ModifyIndex, X-Consul-Index) are the Raft index plus `index_offset`,
    which is 0 until a RestoreRequest. Like hashicorp/raft's user restore, which moves the log to one past the
    higher of its own last index and the snapshot's, a restore applied at Raft index I happens at store index
    R = max(I + offset, image's last index + 1), every table and service index is set to R, and the offset
    becomes R - I. So store indexes never go backwards, commands after the restore get indexes above
    everything in the image (even one from a cluster further along), and every blocking query on a table or
    service sees the change. The image's own records keep their CreateIndex/ModifyIndex/LockIndex.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.index_offset = 0
        self._handlers: dict[type, Any] = {
            RegisterRequest: self._register,
            DeregisterRequest: self._deregister,
            KVSRequest: self._kvs,
            SessionRequest: self._session,
            TxnRequest: self._txn,
            RestoreRequest: self._restore,
            CoordinateBatchUpdate: self._coordinates,
        }

    def apply(self, index: int, command: Command) -> Any:
        """Apply one command at Raft `index`; returns its result or the StateError that refused it."""
        handler = self._handlers[type(command)]
        try:
            return handler(index + self.index_offset, command)
        except StateError as exc:
            return exc
        finally:
            self.store.commit(index + self.index_offset)

    def snapshot(self) -> bytes:
        """The FSM's image: its index offset and the store's image."""
        return encode((self.index_offset, self.store.snapshot()))

    def restore(self, data: bytes) -> None:
        """Become exactly the FSM that `snapshot()` imaged (InstallSnapshot, restart); SnapshotError if unsound."""
        try:
            offset, image = decode(data)
        except (CodecError, ValueError, TypeError) as exc:
            raise SnapshotError(f"not a consulpy FSM image: {exc}") from None
        if not isinstance(offset, int) or not isinstance(image, bytes):
            raise SnapshotError("not a consulpy FSM image")
        self.store.restore(image)
        self.index_offset = offset

    def _register(self, index: int, req: RegisterRequest) -> bool:
        store = self.store
        if not (req.skip_node_update and store.get_node(req.node.node) is not None):
            store.ensure_node(index, req.node)
        node_name = req.node.node
        if req.service is not None:
            store.ensure_service(index, node_name, req.service)
        for check in req.checks:
            store.ensure_check(index, replace(check, node=node_name))
        return True

    def _deregister(self, index: int, req: DeregisterRequest) -> bool:
        if req.service_id:
            self.store.delete_service(index, req.node, req.service_id)
        elif req.check_id:
            self.store.delete_check(index, req.node, req.check_id)
        else:
            self.store.delete_node(index, req.node)
        return True

    def _kvs(self, index: int, req: KVSRequest) -> bool:
        _, errors = self.store.kv_txn(index, [req.op])
        if not errors:
            return True
        error = errors[0][1]
        if isinstance(error, KVOpFailed):
            return False
        raise error

    def _session(self, index: int, req: SessionRequest) -> str:
        if req.op == "create":
            self.store.session_create(index, req.session)
        elif req.op == "destroy":
            self.store.session_destroy(index, req.session.id)
        else:
            raise StateError(f"Invalid session operation '{req.op}'")
        return req.session.id

    def _txn(self, index: int, req: TxnRequest) -> TxnOutcome:
        results, errors = self.store.kv_txn(index, req.ops)
        return TxnOutcome(tuple(results), tuple((pos, str(err)) for pos, err in errors))

    def _coordinates(self, index: int, req: CoordinateBatchUpdate) -> bool:
        self.store.coordinate_batch_update(index, req.updates)
        return True

    def _restore(self, index: int, req: RestoreRequest) -> bool:
        self.store.restore(req.data)
        restored_at = max(index, self.store.last_index + 1)
        self.index_offset += restored_at - index
        self.store.touch_all(restored_at)
        return True
