"""The composition root: builds the state store, FSM, consensus, endpoints and frontends of one agent.

Frontends reach everything through an `Agent`. Imports: everything below the frontends, and the
frontends' server classes to start them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid

from consulpy import CONSUL_VERSION
from consulpy.agent.ae import AntiEntropy, sync_interval
from consulpy.agent.checks import CheckRunners
from consulpy.agent.config import ConfigError, RuntimeConfig, load_config
from consulpy.agent.definitions import RegistrationError
from consulpy.agent.local import LocalOptions, LocalState
from consulpy.agent.logs import set_level
from consulpy.dns.server import DNSServer
from consulpy.endpoints.catalog import Catalog, Health
from consulpy.endpoints.kvs import KVS
from consulpy.endpoints.query import ServerContext
from consulpy.endpoints.session import Sessions
from consulpy.endpoints.txn import Txn
from consulpy.fsm import FSM
from consulpy.http.routes import all_routes
from consulpy.http.server import HTTPServer
from consulpy.server.consensus import SingleNode
from consulpy.server.leader import LeaderDuties, Member
from consulpy.server.session_timers import SessionTimers
from consulpy.state import Node, StateStore

log = logging.getLogger("consulpy.agent")


def advertise_address(config: RuntimeConfig) -> str:
    """The address other nodes reach this agent on: -advertise, else -bind unless it is a wildcard."""
    if config.advertise_addr:
        return config.advertise_addr
    if config.bind_addr and config.bind_addr not in ("0.0.0.0", "::"):
        return config.bind_addr
    return "127.0.0.1"


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
        self.consensus = SingleNode(self.fsm, f"{self.address}:{config.ports.server}", self.node_name, self.node_id)
        self.server = ServerContext(self.store, self.consensus, self.datacenter, self.node_name,
                                    config.default_query_time, config.max_query_time)
        self.catalog = Catalog(self.server)
        self.health = Health(self.server)
        self.check_runners = CheckRunners()
        self.local = LocalState(self.node_name, self.check_runners, LocalOptions.from_config(config))
        self.ae = AntiEntropy(self.local, self.catalog, self.health, self.node_record, sync_interval(config))
        self.local.on_change = self.ae.trigger
        self.kvs = KVS(self.server)
        self.session_timers = SessionTimers(self.consensus)
        self.sessions = Sessions(self.server, self.session_timers, config.session_ttl_min)
        self.txn = Txn(self.server, self.kvs)
        self.leader = LeaderDuties(self.consensus, self.datacenter, CONSUL_VERSION)
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

    def self_member(self) -> Member:
        return Member(name=self.node_name, node_id=self.node_id, address=self.address,
                      server=self.config.server, server_port=self.config.ports.server)

    def client_hosts(self) -> list[str]:
        return list(self.config.client_addr) or ["127.0.0.1"]

    async def start(self) -> None:
        await self.leader.reconcile_member(self.self_member(), self.node_record())
        self.local.start()
        self.local.load_config(self.config)
        self.ae.start()
        self.session_timers.start()
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
        self.stopped.set()
