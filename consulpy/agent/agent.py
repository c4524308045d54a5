"""The composition root: builds the state store, FSM, consensus, endpoints and frontends of one agent.

Frontends reach everything through an `Agent`. Imports: everything below the frontends, and the
frontends' server classes to start them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import uuid
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from consulpy import CONSUL_VERSION
from consulpy.agent.ae import AntiEntropy, sync_interval
from consulpy.agent.checks import CheckRunners
from consulpy.agent.config import ConfigError, RuntimeConfig, load_config
from consulpy.agent.coordinates import CoordinateSync, coordinate_interval, update_period, wan_coordinates
from consulpy.agent.definitions import RegistrationError
from consulpy.agent.events import SerfUserEvent, UserEvents
from consulpy.agent.gossip import AgentGossip, GossipPool, PoolSettings, serf_tags
from consulpy.agent.keyring import KeyringOps
from consulpy.agent.local import LocalOptions, LocalState
from consulpy.agent.logs import set_level
from consulpy.agent.netaddr import interface_ipv4_addresses, private_ipv4
from consulpy.dns.server import DNSServer
from consulpy.duration import SECOND
from consulpy.endpoints.catalog import Catalog, Health
from consulpy.endpoints.coordinate import Coordinate
from consulpy.endpoints.forward import LeaderForwarder, ServerForwarder
from consulpy.endpoints.kvs import KVS
from consulpy.endpoints.operator import Operator
from consulpy.endpoints.query import ServerContext, wake_without_gc
from consulpy.endpoints.session import Sessions
from consulpy.endpoints.status import Status
from consulpy.endpoints.txn import Txn
from consulpy.fsm import FSM
from consulpy.http.routes import all_routes
from consulpy.http.server import HTTPServer
from consulpy.serf import MemberEvent, MemberEventKind
from consulpy.server.consensus import ClientConsensus, Consensus, SingleNode
from consulpy.server.leader import LeaderDuties, Member, Rounds
from consulpy.server.rpc import RPCClient, ServerPort
from consulpy.server.session_timers import SessionTimers
from consulpy.state import Node, StateStore

if TYPE_CHECKING:
    from consulpy.raft.server import RaftServer
    from consulpy.server.cluster import ServerCluster

log = logging.getLogger("consulpy.agent")

# How long a leaving server waits for the leader to take it out of the Raft configuration.
LEAVE_DRAIN_TIME = 5.0
DEV_ROUND_INTERVAL = 1.0


def advertise_address(config: RuntimeConfig) -> str:
    """The address other nodes reach this agent on: -advertise, else -bind unless it is a wildcard, else the
    host's one private IPv4 address (AddressDetectionError when there is none or several, as in Consul)."""
    if config.advertise_addr:
        return config.advertise_addr
    if config.bind_addr and config.bind_addr not in ("0.0.0.0", "::"):
        return config.bind_addr
    return private_ipv4(interface_ipv4_addresses())


def bind_address(config: RuntimeConfig) -> str:
    return config.bind_addr or "0.0.0.0"


def source_ip(config: RuntimeConfig) -> str:
    """Where outbound RPC and Raft connections leave from: the bind address unless it is a wildcard."""
    bind = bind_address(config)
    return "" if bind in ("0.0.0.0", "::") else bind


def load_node_id(config: RuntimeConfig) -> str:
    """-node-id, else the ID persisted in the data dir, else a new random one (persisted when possible)."""
    if config.node_id:
        return config.node_id.lower()
    if config.data_dir and not config.dev:
        path = os.path.join(config.data_dir, "node-id")
        try:
            with open(path, encoding="utf-8") as f:
                stored = f.read().strip()
            if stored:
                return stored
        except FileNotFoundError:
            pass
        node_id = str(uuid.uuid4())
        os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(node_id)
        return node_id
    return str(uuid.uuid4())


class Agent:
    """One consulpy agent process."""

    def __init__(self, config: RuntimeConfig, argv: list[str] | None = None) -> None:
        self.config = config
        self.argv = list(argv or [])
        self.datacenter = config.datacenter
        self.node_name = config.node_name
        self.node_id = load_node_id(config)
        self.address = advertise_address(config)
        self.exit_code = 0
        self.store = StateStore()
        self.store.wake = wake_without_gc
        self.fsm = FSM(self.store)
        self.rpc_address = f"{self.address}:{config.ports.server}"
        self.rpc_port: ServerPort | None = None
        self.rpc_client: RPCClient | None = None
        self.raft: RaftServer | None = None
        self.cluster: ServerCluster | None = None
        self.consensus: Consensus
        if config.dev:
            self.consensus = SingleNode(self.fsm, self.rpc_address, self.node_name, self.node_id)
            self.rpc_port = ServerPort((bind_address(config), config.ports.server))
        elif config.server:
            self.consensus = self._raft_consensus(config)
        else:
            self.consensus = ClientConsensus(self.fsm)
            self.rpc_client = RPCClient(source_ip(config))
        self.gossip = self._gossip(config)
        self.server = ServerContext(self.store, self.consensus, self.datacenter, self.node_name,
                                    config.default_query_time, config.max_query_time)
        self.catalog = Catalog(self.server)
        self.health = Health(self.server)
        self.status = Status(self.server)
        self.check_runners = CheckRunners()
        self.local = LocalState(self.node_name, self.check_runners, LocalOptions.from_config(config))
        self.events = UserEvents(self.node_name, self.local.services, config.disable_remote_exec)
        self.events.broadcaster = self._broadcast_user_event
        self.gossip.lan.on_user_event.append(self.events.ingest)
        self.keyring_ops = KeyringOps(self.gossip.pools())
        self.ae = AntiEntropy(self.local, self.catalog, self.health, self.node_record, sync_interval(config))
        self.local.on_change = self.ae.trigger
        self.kvs = KVS(self.server)
        self.session_timers = SessionTimers(self.consensus)
        self.sessions = Sessions(self.server, self.session_timers, config.session_ttl_min)
        self.txn = Txn(self.server, self.kvs)
        self.coordinate = Coordinate(self.server, wan_coordinates=partial(wan_coordinates, self.gossip.wan),
                                     update_period_ns=update_period(config))
        self.coordinate_sync = CoordinateSync(self.coordinate, self.node_name, self.gossip.lan.coordinate,
                                              coordinate_interval(config),
                                              members=lambda: len(self.gossip.lan.members()))
        self.operator = Operator(self.server)
        self.leader = LeaderDuties(self.consensus, self.datacenter, CONSUL_VERSION, self.node_name,
                                   self.gossip.lan.members, self.member_node_record)
        self.member_rounds: Rounds | None = None
        if self.raft is not None:
            self._wire_server_role(config)
        elif config.dev:
            # A dev agent is the whole cluster: it reconciles members itself, and clients may join it.
            assert self.rpc_port is not None
            self.member_rounds = Rounds(self.leader.reconcile, lambda: DEV_ROUND_INTERVAL, "member reconcile")
            self.gossip.lan.on_member.append(lambda event: self.reconcile_soon())
            self._register_rpc(self.rpc_port)
        elif not config.dev:
            assert self.rpc_client is not None
            self.server.router = ServerForwarder(self.rpc_client, self.server_addresses, config.rpc_hold_timeout,
                                                 self.server)
        self.http = HTTPServer(self, all_routes())
        self.dns = DNSServer(self)
        self.stopped = asyncio.Event()
        self._join_watch: asyncio.Task[None] | None = None

    def node_record(self) -> Node:
        """This agent's node as the catalog should hold it."""
        addr = self.address
        meta = {"consul-network-segment": "", "consul-version": CONSUL_VERSION, **self.config.node_meta}
        return Node(id=self.node_id, node=self.node_name, address=addr, datacenter=self.datacenter,
                    tagged_addresses={"lan": addr, "lan_ipv4": addr, "wan": addr, "wan_ipv4": addr},
                    meta=meta)

    def _raft_consensus(self, config: RuntimeConfig) -> Consensus:
        """The server role's consensus: Raft on the server port. Imported here, so dev agents start lean."""
        from consulpy.raft.server import RaftServer
        from consulpy.server.cluster import raft_id

        self.rpc_port = ServerPort((bind_address(config), config.ports.server))
        self.rpc_client = RPCClient(source_ip(config))
        assert config.data_dir is not None
        self.raft = RaftServer(raft_id(self.node_id), self.rpc_address, {}, config.data_dir, self.fsm,
                               random.Random(), config.raft_multiplier, config.raft_snapshot_threshold,
                               port=self.rpc_port, source_ip=source_ip(config))
        self.raft.on_leadership = self._on_leadership
        return self.raft

    def _wire_server_role(self, config: RuntimeConfig) -> None:
        """Forward RPCs to the leader, find the other servers through gossip, and serve RPCs on the server port."""
        from consulpy.server.cluster import ServerCluster

        assert self.raft is not None and self.rpc_port is not None and self.rpc_client is not None
        self.server.router = LeaderForwarder(self.consensus, self.rpc_client, self.rpc_address,
                                             config.rpc_hold_timeout, self.server)
        self.cluster = ServerCluster(self.node_name, self.raft, self.rpc_client, self.gossip.lan.members,
                                     datacenter=self.datacenter, bootstrap=config.bootstrap,
                                     bootstrap_expect=config.bootstrap_expect, leader=self.leader)
        self.member_rounds = self.cluster.rounds
        self.gossip.lan.on_member.append(self.cluster.on_member_event)
        self._register_rpc(self.rpc_port)

    def _gossip(self, config: RuntimeConfig) -> AgentGossip:
        """The LAN pool (every agent) and the WAN pool (servers), with Consul's tags."""
        server = config.server or config.dev
        role = "consul" if server else "node"
        build = f"{CONSUL_VERSION}:consulpy"
        serf_dir = "" if config.dev or not config.data_dir else os.path.join(config.data_dir, "serf")
        bind = bind_address(config)
        tags = serf_tags(role=role, datacenter=self.datacenter, node_id=self.node_id, build=build,
                         server_port=config.ports.server, bootstrap=config.bootstrap,
                         bootstrap_expect=config.bootstrap_expect, wan_join_port=config.ports.serf_wan)
        lan = PoolSettings(name=self.node_name, wan=False, datacenter=self.datacenter,
                           bind=config.serf_lan_bind or bind, advertise=self.address, port=config.ports.serf_lan,
                           tags=tags, serf_dir=serf_dir, snapshot_file="local.snapshot",
                           keyring_file="local.keyring", encrypt=config.encrypt,
                           verify_incoming=config.encrypt_verify_incoming,
                           verify_outgoing=config.encrypt_verify_outgoing,
                           rejoin_after_leave=config.rejoin_after_leave, dev=config.dev,
                           reconnect_timeout=config.reconnect_timeout / SECOND)
        wan = None
        if server and config.ports.serf_wan > 0:
            wan = GossipPool(replace(lan, name=f"{self.node_name}.{self.datacenter}", wan=True,
                                     bind=config.serf_wan_bind or bind,
                                     advertise=config.advertise_addr_wan or self.address,
                                     port=config.ports.serf_wan, snapshot_file="remote.snapshot",
                                     keyring_file="remote.keyring"))
        return AgentGossip(GossipPool(lan), wan)

    def _broadcast_user_event(self, message: SerfUserEvent) -> None:
        self.gossip.lan.user_event(message.name, message.payload, message.coalesce)

    def server_addresses(self) -> list[str]:
        """Server RPC addresses of this datacenter's alive servers, from gossip (a client agent's routes)."""
        addresses = []
        for member in self.gossip.lan.alive_servers():
            port = member.tags.get("port", "")
            if port.isdigit():
                addresses.append(f"{member.address.rpartition(':')[0]}:{port}")
        return addresses

    def member_node_record(self, member: Member) -> Node:
        """A member's node as the leader registers it: this agent's own record, the catalog's record while
        the address still matches (keeping what the member's anti-entropy wrote), else one from gossip."""
        if member.name == self.node_name:
            return self.node_record()
        stored = self.store.get_node(member.name)
        if stored is not None and stored.address == member.address:
            return stored
        ip = member.address
        return Node(id=member.node_id, node=member.name, address=ip, datacenter=self.datacenter,
                    tagged_addresses={"lan": ip, "lan_ipv4": ip, "wan": ip, "wan_ipv4": ip},
                    meta={"consul-network-segment": ""})

    def _register_rpc(self, port: ServerPort) -> None:
        """Expose every routed endpoint method on the server port under its RPC name."""
        for endpoint in (self.catalog, self.health, self.status, self.kvs, self.sessions, self.txn, self.operator,
                         self.coordinate):
            for attribute in dir(endpoint):
                method: Any = getattr(endpoint, attribute)
                name = getattr(method, "rpc_method", None)
                if name:
                    port.register(name, method)

    def _on_leadership(self, leading: bool) -> None:
        if leading:
            self.session_timers.start()
            self.leader.want_full()  # as Consul's establishLeadership: reap what gossip no longer knows
            self.reconcile_soon()
        else:
            self.session_timers.stop()

    def reconcile_soon(self) -> None:
        """A member round now (leadership gained, a member changed, a snapshot restored)."""
        if self.member_rounds is not None:
            self.member_rounds.wake()

    def client_hosts(self) -> list[str]:
        return list(self.config.client_addr) or ["127.0.0.1"]

    async def start(self) -> None:
        config = self.config
        if self.rpc_port is not None:
            await self.rpc_port.start()
        if self.raft is not None:
            await self.raft.start()
        await self.gossip.start()
        self.gossip.lan.on_member.append(self._on_lan_member)
        if self.cluster is not None:
            await self.cluster.start()
        elif self.member_rounds is not None:
            await self.leader.reconcile()  # the catalog lists this agent before its HTTP API answers
            self.member_rounds.start()
            self.session_timers.start()
        self.gossip.retry_join(config.retry_join, config.retry_interval, config.retry_max, wan=False)
        self.gossip.retry_join(config.retry_join_wan, config.retry_interval_wan, config.retry_max_wan, wan=True)
        self._join_watch = asyncio.create_task(self._stop_when_join_fails())
        self.local.start()
        self.local.load_config(config)
        self.ae.start()
        self.coordinate_sync.start()
        await self.dns.start()
        # HTTP last: once it answers, every listener of the agent is up (tests and scripts wait on it).
        if config.ports.http > 0:
            await self.http.start(self.client_hosts(), config.ports.http)

    def _on_lan_member(self, event: MemberEvent) -> None:
        """A server of this datacenter joined: sync with the catalog now (Consul triggers a full sync)."""
        member = event.member
        if (event.kind == MemberEventKind.JOIN and member.tags.get("role") == "consul"
                and member.tags.get("dc") == self.datacenter and member.name != self.node_name):
            self.ae.trigger_full()

    async def _stop_when_join_fails(self) -> None:
        """-retry-max attempts all failed: the agent exits with an error, as Consul's does."""
        await self.gossip.join_failed.wait()
        self.exit_code = 1
        self.stopped.set()

    async def reload(self, config: RuntimeConfig) -> None:
        """SIGHUP and /v1/agent/reload: take the new configuration's services, checks and log level.

        Invalid service/check definitions refuse the whole reload (RegistrationError), changing nothing.
        """
        try:
            self.local.reload_config(config)
        except RegistrationError as exc:
            log.error("failed to reload configs: error=%s", exc.reason)
            raise
        self.config = config
        set_level(config.log_level)
        await self.ae.sync_changes()

    async def reload_from_argv(self) -> None:
        """/v1/agent/reload: read the configuration again from the arguments the agent started with."""
        try:
            config = load_config(self.argv).config
        except ConfigError as exc:
            log.error("failed to reload configs: error=%s", exc)
            raise
        await self.reload(config)
        log.info("reload complete")

    async def leave(self) -> None:
        """Graceful leave: stop the checks; a leading server hands leadership over; then every member is told
        this node left, and a server waits (bounded) until the leader has taken it out of the Raft configuration."""
        await self.ae.stop()
        await self.local.stop()
        await self.coordinate_sync.stop()
        log.info("leaving cluster")
        if self.raft is not None and self.raft.is_leader() and len(self.raft.conf().voters) > 1:
            with contextlib.suppress(Exception):
                await self.raft.transfer_leader()
        await self.gossip.leave()
        if self.raft is not None:
            await self._wait_removed(self.raft)

    async def _wait_removed(self, raft: RaftServer) -> None:
        from consulpy.server.cluster import raft_id

        me = raft_id(self.node_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEAVE_DRAIN_TIME
        while loop.time() < deadline and len(raft.conf().voters) > 1 and (
                me in raft.conf().voters or me in raft.conf().learners):
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._join_watch is not None:
            self._join_watch.cancel()
        await self.ae.stop()
        await self.local.stop()
        await self.coordinate_sync.stop()
        await self.coordinate.stop()
        self.session_timers.stop()
        await self.dns.stop()
        await self.http.stop()
        await self.gossip.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        elif self.member_rounds is not None:
            await self.member_rounds.stop()
        if self.raft is not None:
            await self.raft.stop()
        if self.rpc_port is not None:
            await self.rpc_port.close()
        if self.rpc_client is not None:
            await self.rpc_client.close()
        self.stopped.set()
