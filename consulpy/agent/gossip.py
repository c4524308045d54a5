"""The agent's gossip pools: Serf over the gossip transport on the LAN port (every agent) and the WAN port
(servers), with Consul's member tags, the serf snapshot and keyring files under `<data-dir>/serf/`, and
`-retry-join` with its interval and attempt limit.

Member and user events go to the listeners the agent installs (`on_member`, `on_user_event`).
Imports: stdlib, consulpy.gossip, consulpy.serf, consulpy.duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consulpy.duration import SECOND, format_duration
from consulpy.gossip import Address, lan_config, local_config, wan_config
from consulpy.gossip.keyring import Keyring
from consulpy.gossip.transport import GossipTransport, JoinError
from consulpy.serf import (
    KeyringChanged,
    LeaveDone,
    Member,
    MemberEvent,
    MemberStatus,
    QueryDone,
    QueryResponse,
    Serf,
    SerfConfig,
    SnapshotState,
    UserEvent,
    decode_snapshot,
    encode_snapshot,
)

log = logging.getLogger("consulpy.agent")

SNAPSHOT_FLUSH_INTERVAL = 0.5  # serf flushes its snapshot every 500 ms too
LEAVE_TIMEOUT = 5.0
# Consul's protocol version range, shown as tags and in /v1/agent/members.
PROTOCOL_VERSION = "2"
PROTOCOL_MIN = "2"
PROTOCOL_MAX = "3"

__all__ = ["AgentGossip", "ForceLeaveError", "GossipPool", "JoinError", "Member", "MemberStatus", "PoolSettings"]


class ForceLeaveError(Exception):
    """force-leave of a member this agent does not know; `str()` is Consul's message."""


@dataclass(slots=True, frozen=True)
class PoolSettings:
    """Everything one pool needs that the agent's configuration decides."""

    name: str  # member name: the node name on the LAN, `node.dc` on the WAN
    wan: bool
    datacenter: str
    bind: str
    advertise: str
    port: int
    tags: dict[str, str]
    serf_dir: str  # "" when nothing is persisted (dev mode)
    snapshot_file: str  # local.snapshot or remote.snapshot
    keyring_file: str  # local.keyring or remote.keyring
    encrypt: str
    verify_incoming: bool
    verify_outgoing: bool
    rejoin_after_leave: bool
    dev: bool
    reconnect_timeout: float


class GossipPool:
    """One Serf pool on one port: its transport, its snapshot file, and the listeners of its events."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.wan = settings.wan
        self.datacenter = settings.datacenter
        self.keyring = self._load_keyring()
        self.on_member: list[Callable[[MemberEvent], None]] = []
        self.on_user_event: list[Callable[[UserEvent], object]] = []
        self._rng = random.Random()
        self._previous: SnapshotState | None = None
        self._written: SnapshotState | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self._queries: dict[int, tuple[list[tuple[str, bytes]], asyncio.Future[None]]] = {}
        role = "server" if settings.tags.get("role") == "consul" else "client"
        pool = "wan" if settings.wan else "lan"
        self.transport = GossipTransport(
            self._gossip_config(), settings.name, settings.bind, settings.port,
            advertise_addr=settings.advertise, keyring=self.keyring, verify_incoming=settings.verify_incoming,
            verify_outgoing=settings.verify_outgoing, core_factory=self._serf, on_event=self._dispatch,
            leave_events=(LeaveDone,), rng=self._rng,
            logger=logging.getLogger(f"consulpy.agent.{role}.serf.{pool}"))

    def _gossip_config(self) -> Any:
        if self.settings.dev:
            return local_config()
        return wan_config() if self.settings.wan else lan_config()

    def _serf(self, config: Any, address: Address, now: float) -> Serf:
        serf_config = SerfConfig(gossip=config, reconnect_timeout=self.settings.reconnect_timeout)
        return Serf(serf_config, self.settings.name, address, rng=self._rng, now=now, tags=self.settings.tags,
                    previous=self._previous, keyring=self.keyring)

    def _path(self, file_name: str) -> Path | None:
        return Path(self.settings.serf_dir, file_name) if self.settings.serf_dir else None

    def _load_keyring(self) -> Keyring:
        """The persisted keyring wins over -encrypt (as in Consul); a new key is persisted at once."""
        path = self._path(self.settings.keyring_file)
        if path is not None and path.exists():
            if self.settings.encrypt:
                log.warning("WARNING: Loaded keyring from %s will override the -encrypt key", path)
            return Keyring.load(path)
        if not self.settings.encrypt:
            return Keyring()
        keyring = Keyring.from_base64(self.settings.encrypt)
        if path is not None:
            keyring.save(path)
        return keyring

    def save_keyring(self) -> None:
        path = self._path(self.settings.keyring_file)
        if path is not None:
            self.keyring.save(path)

    # ---- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._previous = self._read_snapshot()
        await self.transport.start()
        self._written = self._previous
        if self._path(self.settings.snapshot_file) is not None:
            self._snapshot_task = asyncio.create_task(self._flush_snapshots())

    async def leave(self) -> None:
        """Leave gracefully: every member shows us `left`; the snapshot records it, so a restart does not
        rejoin unless `-rejoin`."""
        if not await self.transport.leave(LEAVE_TIMEOUT):
            log.warning("%s: timeout waiting for leave broadcast", self._pool_name())
        self._write_snapshot()

    async def stop(self) -> None:
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()
            await asyncio.gather(self._snapshot_task, return_exceptions=True)
            self._snapshot_task = None
        with contextlib.suppress(RuntimeError):
            self._write_snapshot()
        await self.transport.stop()

    # ---- operations -----------------------------------------------------------------------------------

    @property
    def serf(self) -> Serf:
        core: Serf = self.transport.core
        return core

    def members(self) -> list[Member]:
        return self.serf.members()

    def local_member(self) -> Member:
        member = self.serf.member(self.settings.name)
        assert member is not None
        return member

    async def join(self, addresses: list[str]) -> int:
        """Join through `addresses`; how many answered. JoinError (Consul's text) when none did."""
        return await self.transport.join(addresses)

    def force_leave(self, node: str, prune: bool) -> None:
        if self.serf.member(node) is None:
            raise ForceLeaveError(f"agent: No node found with name '{node}'")
        self.transport.apply(lambda now: self.serf.force_leave(node, now, prune))

    async def query(self, name: str, payload: bytes, timeout: float | None = None,
                    relay_factor: int = 0) -> list[tuple[str, bytes]]:
        """A Serf query to every member: each (member, answer) that arrived before it closed."""
        answers: list[tuple[str, bytes]] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sent: list[int] = []
        # Serf emits nothing for a query during the call itself, so the id is noted before any answer.
        self.transport.apply(lambda now: sent.append(self.serf.query(name, payload, now, timeout,
                                                                     relay_factor=relay_factor)))
        query_id = sent[0]
        self._queries[query_id] = (answers, done)
        try:
            await done
        finally:
            self._queries.pop(query_id, None)
        return answers

    def user_event(self, name: str, payload: bytes, coalesce: bool) -> None:
        self.transport.apply(lambda now: self.serf.user_event(name, payload, coalesce))

    def set_tags(self, tags: dict[str, str]) -> None:
        self.transport.apply(lambda now: self.serf.set_tags(tags, now))

    def coordinate(self) -> Any:
        return self.serf.coordinate()

    def cached_coordinate(self, name: str) -> Any:
        return self.serf.cached_coordinate(name)

    def alive_servers(self) -> list[Member]:
        """Consul servers of this pool's datacenter seen alive."""
        return [m for m in self.members() if m.status == MemberStatus.ALIVE and m.tags.get("role") == "consul"
                and (self.wan or m.tags.get("dc") == self.datacenter)]

    # ---- events and the snapshot ----------------------------------------------------------------------

    def _dispatch(self, event: object) -> None:
        if isinstance(event, MemberEvent):
            for listener in self.on_member:
                listener(event)
        elif isinstance(event, UserEvent):
            for user_listener in self.on_user_event:
                user_listener(event)
        elif isinstance(event, QueryResponse) and event.query_id in self._queries:
            self._queries[event.query_id][0].append((event.node, event.payload))
        elif isinstance(event, QueryDone) and event.query_id in self._queries:
            done = self._queries[event.query_id][1]
            if not done.done():
                done.set_result(None)
        elif isinstance(event, KeyringChanged):
            self.save_keyring()

    def _pool_name(self) -> str:
        return "serf.wan" if self.wan else "serf.lan"

    def _read_snapshot(self) -> SnapshotState | None:
        path = self._path(self.settings.snapshot_file)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        state, warnings = decode_snapshot(data, self.settings.rejoin_after_leave)
        for warning in warnings:
            log.warning("serf: %s", warning)
        if state.left:
            log.info("serf: Ignoring previous members after a leave (use -rejoin to rejoin them)")
        return state

    def _write_snapshot(self) -> None:
        path = self._path(self.settings.snapshot_file)
        if path is None:
            return
        state = self.serf.snapshot_state()
        if state == self._written:
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "wb") as f:
            f.write(encode_snapshot(state))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        self._written = state

    async def _flush_snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_FLUSH_INTERVAL)
            try:
                self._write_snapshot()
            except OSError as exc:
                log.error("serf: failed to write snapshot: %s", exc)


class AgentGossip:
    """The agent's pools (LAN, and WAN on servers) and the join loops of `-retry-join`/`-retry-join-wan`."""

    def __init__(self, lan: GossipPool, wan: GossipPool | None) -> None:
        self.lan = lan
        self.wan = wan
        self._join_tasks: list[asyncio.Task[None]] = []
        self.join_failed: asyncio.Event = asyncio.Event()

    def pool(self, wan: bool) -> GossipPool | None:
        return self.wan if wan else self.lan

    def pools(self) -> list[GossipPool]:
        return [self.lan] + ([self.wan] if self.wan is not None else [])

    async def start(self) -> None:
        for pool in self.pools():
            await pool.start()

    def retry_join(self, addresses: list[str], interval_ns: int, max_attempts: int, wan: bool) -> None:
        pool = self.pool(wan)
        if addresses and pool is not None:
            self._join_tasks.append(asyncio.create_task(self._retry_join(pool, addresses, interval_ns,
                                                                         max_attempts)))

    async def _retry_join(self, pool: GossipPool, addresses: list[str], interval_ns: int, max_attempts: int) -> None:
        kind = "WAN" if pool.wan else "LAN"
        log.info("Joining cluster...: cluster=%s", kind)
        attempt = 0
        while True:
            attempt += 1
            try:
                joined = await pool.join(addresses)
                log.info("Join cluster completed. Synced with initial agents: cluster=%s num_agents=%d", kind, joined)
                return
            except JoinError as exc:
                error = str(exc).strip()
            if max_attempts and attempt >= max_attempts:
                retry = "-wan retry" if pool.wan else "retry"
                log.error("Retry join failed: error=agent: max join %s exhausted, exiting", retry)
                self.join_failed.set()
                return
            log.warning("Join cluster failed, will retry: cluster=%s retry_interval=%s error=%s", kind,
                        format_duration(interval_ns), error)
            await asyncio.sleep(interval_ns / SECOND)

    async def join(self, addresses: list[str], wan: bool = False) -> int:
        pool = self.pool(wan)
        if pool is None:
            raise JoinError(["Must be a server to join WAN cluster"])
        return await pool.join(addresses)

    def members(self, wan: bool = False) -> list[Member]:
        pool = self.pool(wan)
        return pool.members() if pool is not None else []

    def force_leave(self, node: str, prune: bool = False, wan: bool = False) -> None:
        """Consul's force-leave: `wan` for the WAN pool only; else the LAN member, and on a server also its
        WAN member (`node.dc`) when there is one."""
        pool = self.pool(wan)
        if pool is None:
            raise ForceLeaveError(f"agent: No node found with name '{node}'")
        pool.force_leave(node, prune)
        wan_name = f"{node}.{self.lan.datacenter}"
        if not wan and self.wan is not None and self.wan.serf.member(wan_name) is not None:
            self.wan.force_leave(wan_name, prune)

    async def leave(self) -> None:
        await self._cancel_joins()
        for pool in reversed(self.pools()):
            await pool.leave()

    async def stop(self) -> None:
        await self._cancel_joins()
        for pool in self.pools():
            await pool.stop()

    async def _cancel_joins(self) -> None:
        for task in self._join_tasks:
            task.cancel()
        await asyncio.gather(*self._join_tasks, return_exceptions=True)
        self._join_tasks.clear()


def serf_tags(*, role: str, datacenter: str, node_id: str, build: str, server_port: int = 0,
              bootstrap: bool = False, bootstrap_expect: int = 0, wan_join_port: int = 0) -> dict[str, str]:
    """The tags Consul gossips for an agent (servers add the ones that discover and bootstrap the cluster)."""
    tags = {"role": role, "dc": datacenter, "segment": "", "id": node_id, "vsn": PROTOCOL_VERSION,
            "vsn_min": PROTOCOL_MIN, "vsn_max": PROTOCOL_MAX, "build": build}
    if role == "consul":
        tags.update({"port": str(server_port), "raft_vsn": "3", "wan_join_port": str(wan_join_port),
                     "use_tls": "0", "ft_fs": "1", "ft_si": "1"})
        if bootstrap:
            tags["bootstrap"] = "1"
        if bootstrap_expect:
            tags["expect"] = str(bootstrap_expect)
    return tags

