"""Txn.* endpoints: Apply (a write transaction, proposed through consensus all-or-nothing) and Read (a
transaction of reads only, answered from this server's store in the requested consistency mode).

Imports: stdlib, consulpy.endpoints, consulpy.fsm, consulpy.state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consulpy.codec import wire
from consulpy.endpoints.kvs import KVS
from consulpy.endpoints.query import QueryMeta, QueryOptions, ServerContext, rpc_endpoint
from consulpy.fsm import TxnOutcome, TxnRequest
from consulpy.state import DirEntry, KVOp, StateError
from consulpy.state.kv_ops import WRITE_VERBS, go_quote


@wire(32)
@dataclass(slots=True, frozen=True)
class TxnResponse:
    """Results on commit, or errors as (op position, reason) when the transaction was rolled back."""

    results: tuple[DirEntry, ...]
    errors: tuple[tuple[int, str], ...]


def is_read_only(ops: Sequence[KVOp]) -> bool:
    """Consul routes a transaction without write verbs to Txn.Read, bypassing consensus."""
    return not any(op.verb in WRITE_VERBS for op in ops)


class Txn:
    """Txn.Apply / Txn.Read."""

    def __init__(self, ctx: ServerContext, kvs: KVS) -> None:
        self.ctx = ctx
        self.kvs = kvs

    def _pre_check(self, ops: Sequence[KVOp]) -> tuple[tuple[int, str], ...]:
        """Per-op checks made before proposing, as Consul's Txn.preCheck: keys present, no lock-delay."""
        errors: list[tuple[int, str]] = []
        for position, op in enumerate(ops):
            try:
                if not self.kvs.pre_apply(op):
                    errors.append((position, f"failed to lock key {go_quote(op.key)} due to lock delay"))
            except StateError as exc:
                errors.append((position, str(exc)))
        return tuple(errors)

    @rpc_endpoint("Txn.Apply")
    async def apply(self, ops: Sequence[KVOp]) -> TxnResponse:
        errors = self._pre_check(ops)
        if errors:
            return TxnResponse((), errors)
        outcome = await self.ctx.consensus.apply(TxnRequest(tuple(ops)))
        if isinstance(outcome, Exception):
            raise StateError(f"raft apply failed: {outcome}")
        assert isinstance(outcome, TxnOutcome)
        return TxnResponse(outcome.results, outcome.errors)

    @rpc_endpoint("Txn.Read", read=True)
    async def read(self, opts: QueryOptions, ops: Sequence[KVOp]) -> tuple[QueryMeta, TxnResponse]:
        meta = await self.ctx.prepare_read(opts)
        errors = self._pre_check(ops)
        if errors:
            return meta, TxnResponse((), errors)
        results, failures = self.ctx.store.kv_txn_read(ops)
        return meta, TxnResponse(tuple(results), tuple((pos, str(err)) for pos, err in failures))
