"""Leader duties: keep the catalog true to the cluster's gossip members, in rounds.

An alive member has its node registered with a passing `serfHealth` check (and the `consul` service when it
is a server); a failed member's `serfHealth` goes critical, which invalidates the sessions tied to it; a member
that left is deregistered, and so is any node holding a `serfHealth` check that gossip no longer knows. Every
write is skipped when the catalog already agrees, so a round costs reads only. `Rounds` runs a round every
interval and at once when woken (a member event, leadership gained); servers and dev agents use it.
Imports: stdlib, consulpy.fsm, consulpy.serf, consulpy.state, consulpy.server.consensus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from consulpy.fsm import DeregisterRequest, RegisterRequest
from consulpy.serf import Member as SerfMember
from consulpy.serf import MemberStatus
from consulpy.server.consensus import Consensus
from consulpy.state import CRITICAL, PASSING, SERF_CHECK_ID, SERF_CHECK_NAME, HealthCheck, Node, NodeService

SERF_ALIVE_OUTPUT = "Agent alive and reachable"
SERF_FAILED_OUTPUT = "Agent not live or unreachable"
# How often the leader also reaps catalog nodes gossip no longer knows: Consul's reconcile_interval.
FULL_RECONCILE_INTERVAL = 60.0

log = logging.getLogger("consulpy.agent.server.leader")


@dataclass(slots=True, frozen=True)
class Member:
    """What the leader knows of a cluster member (from gossip)."""

    name: str
    node_id: str
    address: str
    server: bool
    server_port: int
    tags: dict[str, str] = field(default_factory=dict)


def catalog_member(member: SerfMember) -> Member:
    server = member.tags.get("role") == "consul"
    port = int(member.tags.get("port", "0") or 0) if server else 0
    return Member(name=member.name, node_id=member.tags.get("id", ""), address=member.address.rpartition(":")[0],
                  server=server, server_port=port, tags=member.tags)


class LeaderDuties:
    """Reconciles the LAN members into the catalog through the consensus seam."""

    def __init__(self, consensus: Consensus, datacenter: str, version: str, me: str,
                 members: Callable[[], list[SerfMember]], node_record: Callable[[Member], Node]) -> None:
        self.consensus = consensus
        self.datacenter = datacenter
        self.version = version
        self.me = me
        self.members = members
        self.node_record = node_record
        self._full_due = 0.0

    def want_full(self) -> None:
        """The next round also reaps nodes gossip no longer knows (leadership gained, a restore)."""
        self._full_due = 0.0

    async def reconcile(self) -> None:
        """One round: each member's node and serfHealth as its gossip status says; unknown serf nodes
        reaped every FULL_RECONCILE_INTERVAL."""
        members = self.members()
        for member in members:
            entry = catalog_member(member)
            if member.status == MemberStatus.ALIVE:
                await self.reconcile_member(entry, self.node_record(entry))
            elif member.status == MemberStatus.FAILED:
                await self.member_failed(entry, self.node_record(entry))
            elif member.status == MemberStatus.LEFT and member.name != self.me:
                await self.member_gone(member.name)
        loop = asyncio.get_running_loop()
        if loop.time() >= self._full_due:
            self._full_due = loop.time() + FULL_RECONCILE_INTERVAL
            await self.reap_unknown({member.name for member in members})

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


class Rounds:
    """Runs `round` every `interval()` seconds and at once when woken; a failed round is logged, not fatal."""

    def __init__(self, round_: Callable[[], Awaitable[None]], interval: Callable[[], float], name: str) -> None:
        self.round = round_
        self.interval = interval
        self.name = name
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("%s round failed", self.name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval()):
                    await self._wake.wait()
            self._wake.clear()
