"""KVS.* endpoints: Apply (one KV write through consensus, with the leader's lock-delay pre-check) and the
Get / List / ListKeys reads, blocking when asked.

Imports: stdlib, consulpy.endpoints.query, consulpy.fsm, consulpy.state.
"""

from __future__ import annotations

import logging

from consulpy.endpoints.query import QueryMeta, QueryOptions, ServerContext, rpc_endpoint
from consulpy.fsm import KVSRequest
from consulpy.state import DirEntry, KVOp, StateError, WatchSet

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

    @rpc_endpoint("KVS.Get", read=True)
    async def get(self, opts: QueryOptions, key: str) -> tuple[QueryMeta, DirEntry | None]:
        return await self.ctx.blocking(opts, lambda ws: self.ctx.store.kv_get(key, ws))

    @rpc_endpoint("KVS.List", read=True)
    async def list_entries(self, opts: QueryOptions, prefix: str) -> tuple[QueryMeta, list[DirEntry]]:
        return await self.ctx.blocking(opts, lambda ws: self.ctx.store.kv_list(prefix, ws))

    @rpc_endpoint("KVS.ListKeys", read=True)
    async def list_keys(self, opts: QueryOptions, prefix: str, separator: str) -> tuple[QueryMeta, list[str]]:
        def query(ws: WatchSet) -> tuple[int, list[str]]:
            return self.ctx.store.kv_keys(prefix, separator, ws)

        return await self.ctx.blocking(opts, query)
