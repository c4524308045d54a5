"""Leader duties: keep the catalog true to the cluster's gossip members.

An alive member has its node registered with a passing `serfHealth` check (and the `consul` service when it
is a server); a failed member's `serfHealth` goes critical, which invalidates the sessions tied to it; a member
that left or was reaped is deregistered, and so is any node holding a `serfHealth` check that gossip no
longer knows. Every write is skipped when the catalog already agrees, so a full pass is cheap.
Imports: stdlib, consulpy.fsm, consulpy.state, consulpy.server.consensus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consulpy.fsm import DeregisterRequest, RegisterRequest
from consulpy.server.consensus import Consensus
from consulpy.state import CRITICAL, PASSING, SERF_CHECK_ID, SERF_CHECK_NAME, HealthCheck, Node, NodeService

SERF_ALIVE_OUTPUT = "Agent alive and reachable"
SERF_FAILED_OUTPUT = "Agent not live or unreachable"


@dataclass(slots=True, frozen=True)
class Member:
    """What the leader knows of a cluster member (from gossip)."""

    name: str
    node_id: str
    address: str
    server: bool
    server_port: int
    tags: dict[str, str] = field(default_factory=dict)


class LeaderDuties:
    """Reconciles members into the catalog through the consensus seam."""

    def __init__(self, consensus: Consensus, datacenter: str, version: str) -> None:
        self.consensus = consensus
        self.datacenter = datacenter
        self.version = version

    async def _apply(self, command: RegisterRequest | DeregisterRequest) -> None:
        result = await self.consensus.apply(command)
        if isinstance(result, Exception):
            raise result

    async def reconcile_member(self, member: Member, node: Node) -> None:
        """Register an alive member: its node, a passing serfHealth check, and `consul` for servers."""
        store = self.consensus.fsm.store
        check = HealthCheck(node=member.name, check_id=SERF_CHECK_ID, name=SERF_CHECK_NAME, status=PASSING,
                            output=SERF_ALIVE_OUTPUT)
        service = None
        if member.server:
            service = NodeService(id="consul", service="consul", port=member.server_port,
                                  meta={"raft_version": "3", "serf_protocol_current": "2",
                                        "serf_protocol_max": "5", "serf_protocol_min": "1",
                                        "version": self.version})
        current = store.get_check(member.name, SERF_CHECK_ID)
        registered = store.get_service(member.name, "consul")
        stored = store.get_node(member.name)
        if (current is not None and current.status == PASSING and (service is None or registered is not None)
                and stored is not None and stored.address == node.address):
            return
        await self._apply(RegisterRequest(node=node, service=service, checks=(check,)))

    async def member_failed(self, member: Member, node: Node) -> None:
        """A failed member: its serfHealth critical (registering the node if the catalog lacks it)."""
        current = self.consensus.fsm.store.get_check(member.name, SERF_CHECK_ID)
        if current is not None and current.status == CRITICAL:
            return
        check = HealthCheck(node=member.name, check_id=SERF_CHECK_ID, name=SERF_CHECK_NAME, status=CRITICAL,
                            output=SERF_FAILED_OUTPUT)
        await self._apply(RegisterRequest(node=node, checks=(check,)))

    async def member_gone(self, name: str) -> None:
        """A member that left or was reaped: its node leaves the catalog."""
        if self.consensus.fsm.store.get_node(name) is not None:
            await self._apply(DeregisterRequest(node=name))

    async def reap_unknown(self, known: set[str]) -> None:
        """Deregister nodes that gossip put in the catalog (they hold serfHealth) but no longer knows."""
        store = self.consensus.fsm.store
        _, nodes = store.nodes()
        for node in nodes:
            if node.node not in known and store.get_check(node.node, SERF_CHECK_ID) is not None:
                await self._apply(DeregisterRequest(node=node.node))
