"""The composition root: builds the state store, FSM, consensus, endpoints and frontends of one agent.

Frontends reach everything through an `Agent`. Imports: everything below the frontends, and the
frontends' server classes to start them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import uuid
from typing import TYPE_CHECKING, Any

from consulpy import CONSUL_VERSION
from consulpy.agent.ae import AntiEntropy, sync_interval
from consulpy.agent.checks import CheckRunners
from consulpy.agent.config import ConfigError, RuntimeConfig, load_config
from consulpy.agent.definitions import RegistrationError
from consulpy.agent.events import UserEvents
from consulpy.agent.local import LocalOptions, LocalState
from consulpy.agent.logs import set_level
from consulpy.dns.server import DNSServer
from consulpy.endpoints.catalog import Catalog, Health
from consulpy.endpoints.forward import LeaderForwarder
from consulpy.endpoints.kvs import KVS
from consulpy.endpoints.operator import Operator
from consulpy.endpoints.query import ServerContext
from consulpy.endpoints.session import Sessions
from consulpy.endpoints.txn import Txn
from consulpy.fsm import FSM
from consulpy.http.routes import all_routes
from consulpy.http.server import HTTPServer
from consulpy.server.consensus import Consensus, SingleNode
from consulpy.server.leader import LeaderDuties, Member
from consulpy.server.rpc import RPCClient, ServerPort
from consulpy.server.session_timers import SessionTimers
from consulpy.state import Node, StateStore

if TYPE_CHECKING:
    from consulpy.raft.server import RaftServer
    from consulpy.server.cluster import ServerCluster, ServerInfo

log = logging.getLogger("consulpy.agent")


def advertise_address(config: RuntimeConfig) -> str:
    """The address other nodes reach this agent on: -advertise, else -bind unless it is a wildcard."""
    if config.advertise_addr:
        return config.advertise_addr
    if config.bind_addr and config.bind_addr not in ("0.0.0.0", "::"):
        return config.bind_addr
    return "127.0.0.1"


def bind_address(config: RuntimeConfig) -> str:
    return config.bind_addr or "0.0.0.0"


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
        self.store = StateStore()
        self.fsm = FSM(self.store)
        self.rpc_address = f"{self.address}:{config.ports.server}"
        self.rpc_port: ServerPort | None = None
        self.rpc_client: RPCClient | None = None
        self.raft: RaftServer | None = None
        self.cluster: ServerCluster | None = None
        self.consensus: Consensus
        if config.dev:
            self.consensus = SingleNode(self.fsm, self.rpc_address, self.node_name, self.node_id)
        else:
            self.consensus = self._raft_consensus(config)
        self.server = ServerContext(self.store, self.consensus, self.datacenter, self.node_name,
                                    config.default_query_time, config.max_query_time)
        self.catalog = Catalog(self.server)
        self.health = Health(self.server)
        self.check_runners = CheckRunners()
        self.local = LocalState(self.node_name, self.check_runners, LocalOptions.from_config(config))
        self.events = UserEvents(self.node_name, self.local.services, config.disable_remote_exec)
        self.ae = AntiEntropy(self.local, self.catalog, self.health, self.node_record, sync_interval(config))
        self.local.on_change = self.ae.trigger
        self.kvs = KVS(self.server)
        self.session_timers = SessionTimers(self.consensus)
        self.sessions = Sessions(self.server, self.session_timers, config.session_ttl_min)
        self.txn = Txn(self.server, self.kvs)
        self.operator = Operator(self.server)
        self.leader = LeaderDuties(self.consensus, self.datacenter, CONSUL_VERSION)
        if self.raft is not None:
            self._wire_server_role(config)
        self.http = HTTPServer(self, all_routes())
        self.dns = DNSServer(self)
        self.stopped = asyncio.Event()

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

        bind = bind_address(config)
        source_ip = "" if bind in ("0.0.0.0", "::") else bind
        self.rpc_port = ServerPort((bind, config.ports.server))
        self.rpc_client = RPCClient(source_ip)
        assert config.data_dir is not None
        self.raft = RaftServer(raft_id(self.node_id), self.rpc_address, {}, config.data_dir, self.fsm,
                               random.Random(), config.raft_multiplier, config.raft_snapshot_threshold,
                               port=self.rpc_port, source_ip=source_ip)
        self.raft.on_leadership = self._on_leadership
        return self.raft

    def _wire_server_role(self, config: RuntimeConfig) -> None:
        """Forward RPCs to the leader, discover the other servers, and serve RPCs on the server port."""
        from consulpy.server.cluster import ServerCluster, join_targets

        assert self.raft is not None and self.rpc_port is not None and self.rpc_client is not None
        assert config.data_dir is not None
        self.server.router = LeaderForwarder(self.consensus, self.rpc_client, self.rpc_address,
                                             config.rpc_hold_timeout, self.server)
        self.cluster = ServerCluster(self.server_info(), self.raft, self.rpc_client,
                                     join_targets(config.retry_join, config.ports.server),
                                     bootstrap=config.bootstrap, bootstrap_expect=config.bootstrap_expect,
                                     data_dir=config.data_dir, leader=self.leader,
                                     node_record=self.server_node_record)
        self._register_rpc(self.rpc_port, self.cluster)

    def server_info(self) -> ServerInfo:
        from consulpy.server.cluster import ServerInfo

        return ServerInfo(self.node_name, self.node_id, self.rpc_address, self.datacenter,
                          self.config.bootstrap_expect, CONSUL_VERSION, tuple(sorted(self.config.node_meta.items())))

    def server_node_record(self, info: ServerInfo) -> Node:
        """Another server's node as the catalog should hold it (this agent's own comes from `node_record`)."""
        if info.node_id == self.node_id:
            return self.node_record()
        meta = {"consul-network-segment": "", "consul-version": info.version, **dict(info.node_meta)}
        ip = info.ip
        return Node(id=info.node_id, node=info.name, address=ip, datacenter=info.datacenter,
                    tagged_addresses={"lan": ip, "lan_ipv4": ip, "wan": ip, "wan_ipv4": ip}, meta=meta)

    def _register_rpc(self, port: ServerPort, cluster: ServerCluster) -> None:
        """Expose every routed endpoint method on the server port under its RPC name."""
        for endpoint in (self.catalog, self.health, self.kvs, self.sessions, self.txn, self.operator):
            for attribute in dir(endpoint):
                method: Any = getattr(endpoint, attribute)
                name = getattr(method, "rpc_method", None)
                if name:
                    port.register(name, method)
        port.register("Server.Exchange", cluster.exchange)

    def _on_leadership(self, leading: bool) -> None:
        if leading:
            self.session_timers.start()
            if self.cluster is not None:
                self.cluster.wake()
        else:
            self.session_timers.stop()

    def self_member(self) -> Member:
        return Member(name=self.node_name, node_id=self.node_id, address=self.address,
                      server=self.config.server, server_port=self.config.ports.server)

    def client_hosts(self) -> list[str]:
        return list(self.config.client_addr) or ["127.0.0.1"]

    async def start(self) -> None:
        if self.raft is None:
            await self.leader.reconcile_member(self.self_member(), self.node_record())
            self.session_timers.start()
        else:
            assert self.rpc_port is not None and self.cluster is not None
            await self.rpc_port.start()
            await self.raft.start()
            await self.cluster.start()
        self.local.start()
        self.local.load_config(self.config)
        self.ae.start()
        if self.config.ports.http > 0:
            await self.http.start(self.client_hosts(), self.config.ports.http)
        await self.dns.start()

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
        """Graceful leave: stop the checks, then tell the cluster this node is going (nothing to tell yet)."""
        await self.ae.stop()
        await self.local.stop()
        log.info("leaving cluster")

    async def stop(self) -> None:
        await self.ae.stop()
        await self.local.stop()
        self.session_timers.stop()
        await self.dns.stop()
        await self.http.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.raft is not None:
            await self.raft.stop()
        if self.rpc_port is not None:
            await self.rpc_port.close()
        if self.rpc_client is not None:
            await self.rpc_client.close()
        self.stopped.set()
