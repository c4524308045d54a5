"""Leader duties: keep the catalog true to the cluster's members (serfHealth, the `consul` service).

Until gossip lands the only member a server knows is itself; the gossip issue feeds real member events
into `reconcile_member`. Imports: stdlib, consulpy.fsm, consulpy.state, consulpy.server.consensus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consulpy.fsm import RegisterRequest
from consulpy.server.consensus import Consensus
from consulpy.state import PASSING, SERF_CHECK_ID, SERF_CHECK_NAME, HealthCheck, Node, NodeService

SERF_ALIVE_OUTPUT = "Agent alive and reachable"


@dataclass(slots=True, frozen=True)
class Member:
    """What the leader knows of a cluster member (a Serf member, once gossip exists)."""

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
        if current is not None and current.status == PASSING and (service is None or registered is not None):
            return
        result = await self.consensus.apply(RegisterRequest(node=node, service=service, checks=(check,)))
        if isinstance(result, Exception):
            raise result
