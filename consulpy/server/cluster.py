"""How servers find each other and form one Raft cluster, until gossip takes over discovery.

Every server periodically calls `Server.Exchange` on the server port of each address it was given with
`-join`/`-retry-join` and of every server it has heard of; the reply carries the callee's known servers and
whether it already holds Raft state, so knowledge spreads transitively. `-bootstrap` founds a cluster of one;
`-bootstrap-expect N` founds one once N servers of the datacenter are known and none of them holds Raft
state. The leader adds every other known server as a non-voter, promotes it once it has caught up, and
keeps each server registered in the catalog. Known servers persist in `<data-dir>/raft/servers.json`.
Imports: stdlib, consulpy.codec, consulpy.raft, consulpy.server (leader, rpc), consulpy.state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from consulpy.codec import wire
from consulpy.raft.messages import ConfChange, ConfChangeType
from consulpy.raft.server import LeadershipLostError, RaftServer
from consulpy.raft.wal import fsync_dir
from consulpy.server.leader import LeaderDuties, Member
from consulpy.server.rpc import CALL_ERRORS, RPCClient
from consulpy.state import Node

EXCHANGE_INTERVAL = 1.0
EXCHANGE_INTERVAL_FORMING = 0.25
EXCHANGE_TIMEOUT = 2.0

log = logging.getLogger("consulpy.agent.server.cluster")


@wire(33)
@dataclass(slots=True, frozen=True)
class ServerInfo:
    """What servers tell each other about themselves."""

    name: str
    node_id: str
    address: str  # server RPC address, ip:port
    datacenter: str
    bootstrap_expect: int = 0
    version: str = ""
    node_meta: tuple[tuple[str, str], ...] = ()

    @property
    def raft_id(self) -> int:
        return raft_id(self.node_id)

    @property
    def ip(self) -> str:
        return self.address.rpartition(":")[0]


def raft_id(node_id: str) -> int:
    """A server's Raft id: 60 bits of its node ID (a UUID), never 0."""
    try:
        return int(uuid.UUID(node_id).hex[:15], 16) or 1
    except ValueError:
        return int(hashlib.sha256(node_id.encode()).hexdigest()[:15], 16) or 1


def join_targets(addresses: list[str], server_port: int) -> list[str]:
    """`-join` addresses (`host` or `host:serf-port`) → server RPC addresses on the same hosts."""
    targets = []
    for address in addresses:
        host = address
        if address.count(":") == 1:
            host = address.rpartition(":")[0]
        host = host.strip("[]")
        targets.append(f"{host}:{server_port}")
    return targets


class ServerCluster:
    """Server discovery, bootstrap and the leader's membership and catalog reconciliation."""

    def __init__(self, me: ServerInfo, raft: RaftServer, client: RPCClient, join: list[str], *,
                 bootstrap: bool, bootstrap_expect: int, data_dir: str, leader: LeaderDuties,
                 node_record: Callable[[ServerInfo], Node]) -> None:
        self.me = me
        self.raft = raft
        self.client = client
        self.join = [target for target in join if target != me.address]
        self.bootstrap = bootstrap
        self.bootstrap_expect = bootstrap_expect
        self.path = os.path.join(data_dir, "raft", "servers.json")
        self.leader = leader
        self.node_record = node_record
        self.known: dict[str, ServerInfo] = {me.node_id: me}
        self.holds_state: dict[str, bool] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        for info in self._load():
            self._learn(info)
        self._learn(self.me)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        """Run a round now (leadership was just gained)."""
        self._wake.set()

    async def exchange(self, caller: ServerInfo, known: tuple[ServerInfo, ...]) -> tuple[tuple[ServerInfo, ...], bool]:
        """RPC `Server.Exchange`: learn the caller and what it knows; answer with ours and our Raft state."""
        for info in (caller, *known):
            self._learn(info)
        return tuple(self.known.values()), self.raft.has_state()

    # ---- internals ----

    def _learn(self, info: ServerInfo) -> None:
        if info.datacenter != self.me.datacenter:
            return
        if info.node_id != self.me.node_id:
            current = self.known.get(info.node_id)
            if current == info:
                return
            if current is None:
                log.info("adding server: name=%s address=%s", info.name, info.address)
            self.known[info.node_id] = info
            self._save()
        self.raft.set_address(info.raft_id, info.address, info.name, info.node_id)

    async def _run(self) -> None:
        while True:
            try:
                await self._round()
            except Exception:
                log.exception("server discovery round failed")
            forming = not self.raft.has_state()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXCHANGE_INTERVAL_FORMING if forming else EXCHANGE_INTERVAL):
                    await self._wake.wait()
            self._wake.clear()

    async def _round(self) -> None:
        targets = set(self.join) | {info.address for info in self.known.values() if info.node_id != self.me.node_id}
        await asyncio.gather(*(self._exchange_with(address) for address in targets))
        if not self.raft.has_state():
            await self._maybe_bootstrap()
        if self.raft.is_leader():
            try:
                await self._reconcile()
            except (*CALL_ERRORS, LeadershipLostError) as exc:
                log.warning("reconcile failed: %s", exc)

    async def _exchange_with(self, address: str) -> None:
        known = tuple(self.known.values())
        try:
            reply = await self.client.call(address, "Server.Exchange", self.me, known, timeout=EXCHANGE_TIMEOUT)
        except CALL_ERRORS:
            return
        servers, holds_state = reply
        for info in servers:
            self._learn(info)
        for info in servers:
            if info.address == address:
                self.holds_state[info.node_id] = bool(holds_state)

    async def _maybe_bootstrap(self) -> None:
        if self.bootstrap:
            await self.raft.bootstrap({self.me.raft_id: self.me.address})
            return
        if not self.bootstrap_expect or len(self.known) < self.bootstrap_expect:
            return
        others = [info for info in self.known.values() if info.node_id != self.me.node_id]
        if any(self.holds_state.get(info.node_id, True) for info in others):
            return
        names = ", ".join(sorted(f"{info.name} ({info.address})" for info in self.known.values()))
        log.info("found expected number of peers, attempting bootstrap: %s", names)
        await self.raft.bootstrap({info.raft_id: info.address for info in self.known.values()})

    async def _reconcile(self) -> None:
        """Leader: every known server in the Raft configuration (caught-up non-voters promoted) and catalog."""
        conf = self.raft.conf()
        for info in list(self.known.values()):
            member = info.raft_id
            if member not in conf.voters and member not in conf.learners:
                log.info("adding server to the Raft configuration as a non-voter: %s", info.name)
                await self.raft.change_membership(ConfChange(ConfChangeType.ADD_LEARNER, member))
            elif member in conf.learners and self.raft.match_index(member) >= self.raft.last_index() - 1:
                log.info("promoting server to voter: %s", info.name)
                await self.raft.change_membership(ConfChange(ConfChangeType.ADD_VOTER, member))
            conf = self.raft.conf()
        for info in list(self.known.values()):
            port = int(info.address.rpartition(":")[2])
            await self.leader.reconcile_member(Member(name=info.name, node_id=info.node_id, address=info.ip,
                                                      server=True, server_port=port), self.node_record(info))

    def _load(self) -> list[ServerInfo]:
        try:
            with open(self.path, encoding="utf-8") as f:
                rows = json.load(f)
            return [ServerInfo(**{**row, "node_meta": tuple(map(tuple, row.get("node_meta", ())))}) for row in rows]
        except FileNotFoundError:
            return []
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return []

    def _save(self) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        temp = self.path + ".tmp"
        with open(temp, "w", encoding="utf-8") as f:
            json.dump([asdict(info) for info in self.known.values()], f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.path)
        fsync_dir(directory)
