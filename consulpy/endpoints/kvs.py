"""KVS.* endpoints: Apply (one KV write through consensus, with the leader's lock-delay pre-check) and the
Get / List / ListKeys reads, blocking when asked.

Imports: stdlib, consulpy.endpoints.query, consulpy.fsm, consulpy.state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from functools import partial

from consulpy.endpoints.query import QueryMeta, QueryOptions, ServerContext, rpc_endpoint
from consulpy.fsm import KVSRequest
from consulpy.state import DirEntry, KVOp, StateError

log = logging.getLogger("consulpy.kvs")


class KVS:
    """KVS.Apply / Get / List / ListKeys."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    def pre_apply(self, op: KVOp) -> bool:
        """Consul's kvsPreApply: refuse a keyless op, and report False for an acquire during lock-delay.

        Lock-delay is wall-clock state of the leader, so it is enforced here, before the op is proposed,
        never inside the replicated apply.
        """
        if not op.key and op.verb != "delete-tree":
            raise StateError("Must provide key")
        if op.verb == "lock" and self.ctx.store.kv_lock_delay_until(op.key):
            log.warning("kvs: rejecting lock of key due to lock-delay: key=%s", op.key)
            return False
        return True

    @rpc_endpoint("KVS.Apply")
    async def apply(self, op: KVOp) -> bool:
        """Propose one KV write; the result is Consul's true/false (false: CAS miss, lock held, lock-delay)."""
        if not self.pre_apply(op):
            return False
        result = await self.ctx.consensus.apply(KVSRequest(op))
        if isinstance(result, Exception):
            raise StateError(f"raft apply failed: {result}")
        return bool(result)

    # The reads hand back the blocking query rather than awaiting it, so a parked one keeps no frame of
    # theirs alive; each query is the store's own method with its arguments bound.

    @rpc_endpoint("KVS.Get", read=True)
    def get(self, opts: QueryOptions, key: str) -> Awaitable[tuple[QueryMeta, DirEntry | None]]:
        return self.ctx.blocking(opts, partial(self.ctx.store.kv_get, key))

    @rpc_endpoint("KVS.List", read=True)
    def list_entries(self, opts: QueryOptions, prefix: str) -> Awaitable[tuple[QueryMeta, list[DirEntry]]]:
        return self.ctx.blocking(opts, partial(self.ctx.store.kv_list, prefix))

    @rpc_endpoint("KVS.ListKeys", read=True)
    def list_keys(self, opts: QueryOptions, prefix: str, separator: str) -> Awaitable[tuple[QueryMeta, list[str]]]:
        return self.ctx.blocking(opts, partial(self.ctx.store.kv_keys, prefix, separator))
