"""Consul's Status RPCs: who leads and which servers vote, as the server answering sees it.

Callers pass stale QueryOptions, so a server answers from its own Raft state (as Consul's Status endpoint
does, without forwarding) while a client agent's router still sends the call to a server.
Imports: consulpy.endpoints.query.
"""

from __future__ import annotations

from consulpy.endpoints.query import QueryOptions, ServerContext, rpc_endpoint

STALE = QueryOptions(consistency="stale")


class Status:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    @rpc_endpoint("Status.Leader", read=True)
    async def leader(self, opts: QueryOptions) -> str:
        """The leader's server RPC address, or "" when there is none."""
        return self.ctx.consensus.leader_address()

    @rpc_endpoint("Status.Peers", read=True)
    async def peers(self, opts: QueryOptions) -> list[str]:
        """The voters' server RPC addresses (empty before this server holds Raft state)."""
        return self.ctx.consensus.peers()
