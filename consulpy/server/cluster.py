"""How servers find each other through gossip and form one Raft cluster, and the leader's reconciliation
of gossip members into the Raft configuration and the catalog.

Servers are the LAN members tagged `role=consul` in this datacenter; their tags carry the server port, node
ID and `expect`. Each round (every second, at once after a member event or gaining leadership):
every server's RPC address goes to Raft; a server without Raft state bootstraps once `-bootstrap` is set, or
once `-bootstrap-expect` servers are alive and none of them reports Raft peers (`Status.Peers`), as Consul's
maybeBootstrap does; the leader adds alive servers as non-voters, promotes them once caught up, removes
servers that left or were reaped, and reconciles every member into the catalog (`LeaderDuties`).
Imports: stdlib, consulpy.raft, consulpy.serf, consulpy.server (leader, rpc), consulpy.endpoints.query,
consulpy.state.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from consulpy.endpoints.query import QueryOptions
from consulpy.raft.messages import ConfChange, ConfChangeType
from consulpy.raft.server import LeadershipLostError, RaftServer
from consulpy.serf import Member, MemberEvent, MemberEventKind, MemberStatus
from consulpy.server.leader import LeaderDuties, Rounds
from consulpy.server.rpc import CALL_ERRORS, RPCClient

ROUND_INTERVAL = 1.0
ROUND_INTERVAL_FORMING = 0.25
PEERS_TIMEOUT = 2.0

log = logging.getLogger("consulpy.agent.server.cluster")


@dataclass(slots=True, frozen=True)
class ServerInfo:
    """A server as its gossip tags describe it."""

    name: str
    node_id: str
    address: str  # server RPC address, ip:port
    datacenter: str
    bootstrap_expect: int
    status: MemberStatus

    @property
    def raft_id(self) -> int:
        return raft_id(self.node_id)


def raft_id(node_id: str) -> int:
    """A server's Raft id: 60 bits of its node ID (a UUID), never 0."""
    try:
        return int(uuid.UUID(node_id).hex[:15], 16) or 1
    except ValueError:
        return int(hashlib.sha256(node_id.encode()).hexdigest()[:15], 16) or 1


def server_info(member: Member, datacenter: str) -> ServerInfo | None:
    """The server a LAN member is, or None when it is not a server of `datacenter` (Consul's IsConsulServer)."""
    tags = member.tags
    if tags.get("role") != "consul" or tags.get("dc") != datacenter or not tags.get("id"):
        return None
    try:
        port = int(tags.get("port", ""))
        expect = int(tags.get("expect", "0") or 0)
    except ValueError:
        return None
    ip = member.address.rpartition(":")[0]
    return ServerInfo(member.name, tags["id"], f"{ip}:{port}", datacenter, expect, member.status)


class ServerCluster:
    """Bootstrap, Raft membership and catalog reconciliation, driven by the LAN pool's members."""

    def __init__(self, me: str, raft: RaftServer, client: RPCClient, members: Callable[[], list[Member]], *,
                 datacenter: str, bootstrap: bool, bootstrap_expect: int, leader: LeaderDuties) -> None:
        self.me = me
        self.raft = raft
        self.client = client
        self.members = members
        self.datacenter = datacenter
        self.bootstrap = bootstrap
        self.bootstrap_expect = bootstrap_expect
        self.leader = leader
        self.reaped: dict[int, str] = {}  # raft id -> name of servers reaped from gossip
        self.rounds = Rounds(self._round, self._interval, "server membership")

    async def start(self) -> None:
        self.rounds.start()

    async def stop(self) -> None:
        await self.rounds.stop()

    def wake(self) -> None:
        """Run a round now (a member changed, or leadership was just gained)."""
        self.rounds.wake()

    def on_member_event(self, event: MemberEvent) -> None:
        if event.kind == MemberEventKind.REAP:
            info = server_info(event.member, self.datacenter)
            if info is not None:
                self.reaped[info.raft_id] = info.name
        self.wake()

    # ---- internals ----

    def _interval(self) -> float:
        return ROUND_INTERVAL if self.raft.has_state() else ROUND_INTERVAL_FORMING

    async def _round(self) -> None:
        members = self.members()
        servers = [info for info in (server_info(m, self.datacenter) for m in members) if info is not None]
        for info in servers:
            if info.status != MemberStatus.LEFT:
                self.raft.set_address(info.raft_id, info.address, info.name, info.node_id)
                self.reaped.pop(info.raft_id, None)
        if not self.raft.has_state():
            await self._maybe_bootstrap([info for info in servers if info.status == MemberStatus.ALIVE])
        if self.raft.is_leader():
            try:
                await self._reconcile_raft(servers)
                await self.leader.reconcile()
            except (*CALL_ERRORS, LeadershipLostError) as exc:
                log.warning("reconcile failed: %s", exc)

    async def _maybe_bootstrap(self, alive: list[ServerInfo]) -> None:
        me = next((info for info in alive if info.name == self.me), None)
        if self.bootstrap:
            if me is not None:
                await self.raft.bootstrap({me.raft_id: me.address})
            return
        if not self.bootstrap_expect or len(alive) < self.bootstrap_expect:
            return
        if any(info.bootstrap_expect not in (0, self.bootstrap_expect) for info in alive):
            log.error("Member has a conflicting expect value. All nodes should expect the same number.")
            return
        for info in alive:
            if info.name == self.me:
                continue
            try:
                peers = await self.client.call(info.address, "Status.Peers", QueryOptions(consistency="stale"),
                                               timeout=PEERS_TIMEOUT)
            except CALL_ERRORS as exc:
                log.error("Failed to confirm peer status for %s: %s", info.name, exc)
                return
            if peers:
                log.info("Existing Raft peers reported by server, disabling bootstrap mode: server=%s", info.name)
                self.bootstrap_expect = 0
                return
        names = ", ".join(sorted(f"{info.name} ({info.address})" for info in alive))
        log.info("found expected number of peers, attempting bootstrap: %s", names)
        await self.raft.bootstrap({info.raft_id: info.address for info in alive})

    async def _reconcile_raft(self, servers: list[ServerInfo]) -> None:
        """Leader: alive servers join the configuration (as non-voters, promoted once caught up); servers
        that left or were reaped leave it."""
        by_id = {info.raft_id: info for info in servers}
        conf = self.raft.conf()
        for member, info in by_id.items():
            if info.status != MemberStatus.ALIVE:
                continue
            if member not in conf.voters and member not in conf.learners:
                log.info("adding server to the Raft configuration as a non-voter: %s", info.name)
                await self.raft.change_membership(ConfChange(ConfChangeType.ADD_LEARNER, member))
            elif member in conf.learners and self.raft.match_index(member) >= self.raft.last_index() - 1:
                log.info("promoting server to voter: %s", info.name)
                await self.raft.change_membership(ConfChange(ConfChangeType.ADD_VOTER, member))
            conf = self.raft.conf()
        me = next((info.raft_id for info in servers if info.name == self.me), None)
        for member in (*conf.voters, *conf.learners):
            known = by_id.get(member)
            left = known is not None and known.status == MemberStatus.LEFT
            gone = left or (known is None and member in self.reaped)
            if gone and member != me:
                name = known.name if known is not None else self.reaped[member]
                log.info("removing server that left from the Raft configuration: %s", name)
                await self.raft.change_membership(ConfChange(ConfChangeType.REMOVE, member))
                self.reaped.pop(member, None)
