"""HTTP handlers for /v1/operator/raft/*: read the Raft configuration, remove a peer, transfer leadership.

As in Consul, the endpoint looks the named server up in the configuration before acting, so an unknown ID
or address, removing the last voter, or transferring to itself fail with Consul's texts whatever the
consensus does. Transfer-leader is a gRPC call in Consul, so its errors carry gRPC's `rpc error:` prefix.
Imports: stdlib, aiohttp (request type), consulpy.http, consulpy.server.consensus, consulpy.state.kv_ops.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp.web import BaseRequest

from consulpy.endpoints.query import QueryOptions
from consulpy.http.errors import HTTPError, bad_request
from consulpy.http.params import query_options
from consulpy.http.server import Route
from consulpy.server.consensus import NoLeaderError, OperatorError, RaftPeer
from consulpy.state.kv_ops import go_quote

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

log = logging.getLogger("consulpy.http")

GRPC_UNKNOWN = "rpc error: code = Unknown desc = "


def raft_server_json(peer: RaftPeer) -> dict[str, Any]:
    return {"ID": peer.id, "Node": peer.node, "Address": peer.address, "Leader": peer.leader,
            "ProtocolVersion": peer.protocol_version, "Voter": peer.voter, "LastIndex": peer.last_index}


def _go_configuration(servers: list[RaftPeer]) -> str:
    """A raft.Configuration as Go's %v prints it: `{[{Voter id addr} {Nonvoter id addr}]}`."""
    entries = " ".join(f"{{{'Voter' if s.voter else 'Nonvoter'} {s.id} {s.address}}}" for s in servers)
    return f"{{[{entries}]}}"


def _check_dc(request: BaseRequest, agent: Agent) -> None:
    dc = request.query.get("dc", "")
    if dc and dc != agent.datacenter:
        raise HTTPError(500, "No path to datacenter")


async def _leading_configuration(agent: Agent) -> list[RaftPeer]:
    """The configuration a write acts on, read from the leader (Consul forwards writes to it first, so no
    leader is an error); from a client agent the read goes through a server."""
    _, (_, servers) = await agent.operator.raft_configuration(QueryOptions())
    return servers


async def raft_configuration(request: BaseRequest, agent: Agent, tail: str) -> Any:
    opts = query_options(request, agent.datacenter)
    _, (index, servers) = await agent.operator.raft_configuration(opts)
    return {"Servers": [raft_server_json(peer) for peer in servers] or None, "Index": index}


async def raft_peer_delete(request: BaseRequest, agent: Agent, tail: str) -> Any:
    query = request.query
    has_id, has_address = "id" in query, "address" in query
    if not has_id and not has_address:
        raise bad_request("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove")
    if has_id and has_address:
        raise bad_request("Must specify only one of ?id or ?address")
    _check_dc(request, agent)
    servers = await _leading_configuration(agent)
    if has_id:
        wanted = query.get("id", "")
        target = next((s for s in servers if s.id == wanted), None)
        missing = f"id {go_quote(wanted)} was not found in the Raft configuration"
    else:
        wanted = query.get("address", "")
        target = next((s for s in servers if s.address == wanted), None)
        missing = f"address {go_quote(wanted)} was not found in the Raft configuration"
    if target is None:
        raise HTTPError(500, missing)
    remaining = [s for s in servers if s is not target]
    if not any(s.voter for s in remaining):
        raise HTTPError(500, f"need at least one voter in configuration: {_go_configuration(remaining)}")
    try:
        await agent.operator.raft_remove_peer(target.id)
    except OperatorError as exc:
        raise HTTPError(500, str(exc)) from None
    log.warning("Removed Raft peer: id=%s address=%s", target.id, target.address)
    return None


async def raft_transfer_leader(request: BaseRequest, agent: Agent, tail: str) -> Any:
    peer_id = request.query.get("id", "")
    try:
        _check_transfer(await _leading_configuration(agent), peer_id)
        new_leader = await agent.operator.raft_transfer_leader(peer_id)
    except (OperatorError, NoLeaderError) as exc:
        raise HTTPError(500, GRPC_UNKNOWN + str(exc)) from None
    log.info("Transferred Raft leadership: to=%s", new_leader)
    return {"Success": True}


def _check_transfer(servers: list[RaftPeer], peer_id: str) -> None:
    """hashicorp/raft's refusals, decided from the configuration before any transfer starts."""
    leader = next((s for s in servers if s.leader), None)
    if peer_id:
        if all(s.id != peer_id for s in servers):
            raise OperatorError(f"Could not find address for server id {peer_id}")
        if leader is not None and leader.id == peer_id:
            raise OperatorError("cannot transfer leadership to itself")
    elif not any(s.voter and s is not leader for s in servers):
        raise OperatorError("cannot find peer")


ROUTES = [
    Route("/v1/operator/raft/configuration", ("GET",), raft_configuration),
    Route("/v1/operator/raft/peer", ("DELETE",), raft_peer_delete),
    Route("/v1/operator/raft/transfer-leader", ("POST",), raft_transfer_leader),
]
