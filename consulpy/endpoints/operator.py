"""Operator.* endpoints for Raft (read the configuration, remove a server, transfer leadership) and the
snapshot save and restore.

All act on the leader (reads may be stale); the HTTP layer checks requests against the configuration or the
archive first, as Consul does. Imports: consulpy.endpoints.query, consulpy.fsm, consulpy.server.consensus,
consulpy.state.
"""

from __future__ import annotations

import asyncio

from consulpy.endpoints.query import QueryMeta, QueryOptions, ServerContext, rpc_endpoint
from consulpy.fsm import RestoreRequest
from consulpy.server.consensus import RaftPeer
from consulpy.state import StateError
from consulpy.state.snapshot import SnapshotMeta, write_archive


class Operator:
    """Operator.RaftGetConfiguration / RaftRemovePeer / RaftTransferLeader, Snapshot.Save / Restore."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    @rpc_endpoint("Operator.RaftGetConfiguration", read=True)
    async def raft_configuration(self, opts: QueryOptions) -> tuple[QueryMeta, tuple[int, list[RaftPeer]]]:
        meta = await self.ctx.prepare_read(opts)
        return meta, self.ctx.consensus.configuration()

    @rpc_endpoint("Operator.RaftRemovePeer")
    async def raft_remove_peer(self, peer_id: str) -> None:
        await self.ctx.consensus.remove_peer(peer_id=peer_id)

    @rpc_endpoint("Operator.RaftTransferLeader")
    async def raft_transfer_leader(self, peer_id: str) -> str:
        return await self.ctx.consensus.transfer_leader(peer_id)

    @rpc_endpoint("Snapshot.Save", read=True)
    async def snapshot_save(self, opts: QueryOptions) -> tuple[QueryMeta, bytes]:
        """Consul's snapshot archive of the whole state, taken on the leader unless stale (as Consul forwards
        it); the archive is built off the event loop."""
        meta = await self.ctx.prepare_read(opts)
        consensus = self.ctx.consensus
        store = self.ctx.store
        image = store.snapshot()
        index = store.last_index
        configuration_index, servers = consensus.configuration()
        snapshot = SnapshotMeta(index=index, term=consensus.term(), size=len(image),
                                servers=tuple((server.id, server.address, server.voter) for server in servers),
                                configuration_index=configuration_index)
        archive = await asyncio.get_running_loop().run_in_executor(None, write_archive, snapshot, image)
        meta.index = max(index, 1)
        return meta, archive

    @rpc_endpoint("Snapshot.Restore")
    async def snapshot_restore(self, image: bytes) -> None:
        """Replace the whole state with a verified image, through the log so every server applies it."""
        result = await self.ctx.consensus.apply(RestoreRequest(image))
        if isinstance(result, StateError):
            raise result
