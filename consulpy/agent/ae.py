"""Anti-entropy: keeps the catalog's entry for this node equal to the agent's local services and checks.

Local changes are pushed as soon as they happen (triggers coalesce bursts); a periodic full sync reads the
catalog, marks what drifted and repairs it, removing services and checks the agent does not have (except
the leader-owned `consul` service and `serfHealth`). Every write goes through the Catalog endpoint.
Imports: stdlib, consulpy.agent.local, consulpy.duration, consulpy.endpoints, consulpy.fsm,
consulpy.server (consensus, rpc), consulpy.state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from consulpy.agent.background import BackgroundLoop
from consulpy.agent.local import SOURCE_API, CheckState, LocalState, ServiceState
from consulpy.duration import MINUTE, SECOND, DurationError, parse_duration
from consulpy.endpoints.catalog import Catalog, Health
from consulpy.endpoints.query import QueryOptions
from consulpy.fsm import DeregisterRequest, RegisterRequest
from consulpy.server.consensus import NoLeaderError
from consulpy.server.rpc import RPCError
from consulpy.state import SERF_CHECK_ID, HealthCheck, Node, NodeService, StateError

if TYPE_CHECKING:
    from consulpy.agent.config import RuntimeConfig

log = logging.getLogger("consulpy.agent")

CONSUL_SERVICE_ID = "consul"
RETRY_FAILED = 15 * SECOND
DEV_INTERVAL = 5 * SECOND


def sync_interval(config: RuntimeConfig) -> int:
    """Full-sync interval: `ae_interval` if a config file sets it, else Consul's 1m (5s for dev agents).

    Consul scales it with the cluster size; up to 128 nodes the factor is 1.
    """
    value = config.raw.get("ae_interval")
    if isinstance(value, str):
        try:
            interval = parse_duration(value)
        except DurationError:
            interval = 0
        if interval > 0:
            return interval
    return DEV_INTERVAL if config.dev else MINUTE


class AntiEntropy(BackgroundLoop):
    """Consul's state syncer: partial syncs on change, full syncs every interval (plus a random stagger)."""

    def __init__(self, local: LocalState, catalog: Catalog, health: Health, node: Callable[[], Node],
                 interval_ns: int) -> None:
        self.local = local
        self.catalog = catalog
        self.health = health
        self.node = node
        self.interval_ns = interval_ns
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._full_now = False

    def trigger(self) -> None:
        """Something changed locally: push it soon."""
        self._wake.set()

    def trigger_full(self) -> None:
        """A server joined (Consul's SyncFull.Trigger): compare with the catalog now."""
        self._full_now = True
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        while True:
            delay = next_full - loop.time()
            if delay > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            if loop.time() >= next_full or self._full_now:
                self._full_now = False
                ok = await self.sync_full()
                interval = self.interval_ns / SECOND
                wait = interval + random.random() * interval if ok else min(RETRY_FAILED / SECOND, interval)
                next_full = loop.time() + wait
            elif not await self.sync_changes():
                next_full = min(next_full, loop.time() + min(RETRY_FAILED, self.interval_ns) / SECOND)

    async def sync_full(self) -> bool:
        """Compare with the catalog, then push every difference. False if the catalog could not be reached."""
        async with self._lock:
            try:
                await self._update_sync_state()
                await self._push()
            except (StateError, NoLeaderError, RPCError) as exc:
                log.error("failed to sync remote state: error=%s", exc)
                return False
        return True

    async def sync_changes(self) -> bool:
        """Push local changes; a failure is logged and left for the next sync, as Consul does."""
        async with self._lock:
            try:
                await self._push()
            except (StateError, NoLeaderError, RPCError) as exc:
                log.error("failed to sync changes: error=%s", exc)
                return False
        return True

    # ------------------------------------------------------------------ comparing with the catalog

    async def _update_sync_state(self) -> None:
        node_name = self.local.node_name
        _, (node, remote_services) = await self.catalog.node_services(QueryOptions(), node_name)
        _, remote_checks = await self.health.node_checks(QueryOptions(), node_name)
        if node is None:
            remote_services, remote_checks = [], []
        self.local.node_in_sync = node is not None and node.same_as(self.node())
        self._compare_services({s.id: s for s in remote_services})
        self._compare_checks({c.check_id: c for c in remote_checks})

    def _compare_services(self, remote: dict[str, NodeService]) -> None:
        states = self.local.service_states()
        for sid, state in list(states.items()):
            if sid not in remote:
                if state.deleted:
                    del states[sid]
                else:
                    state.in_sync = False
        for sid, rs in remote.items():
            known = states.get(sid)
            if known is None:
                if sid != CONSUL_SERVICE_ID:
                    states[sid] = ServiceState(rs, SOURCE_API, deleted=True)
                continue
            if known.deleted:
                continue
            if known.service.enable_tag_override and known.service.tags != rs.tags:
                self.local.adopt_catalog_tags(sid, rs.tags)
            known.in_sync = known.service.same_as(rs)

    def _compare_checks(self, remote: dict[str, HealthCheck]) -> None:
        states = self.local.check_states()
        for cid, state in list(states.items()):
            if cid not in remote:
                if state.deleted:
                    del states[cid]
                else:
                    state.in_sync = False
        for cid, rc in remote.items():
            known = states.get(cid)
            if known is None:
                if cid != SERF_CHECK_ID:
                    states[cid] = CheckState(rc, SOURCE_API, deleted=True)
                continue
            if known.deleted:
                continue
            local, theirs = known.check, rc
            if known.deferred is not None:
                # Output waiting for its deferred write-back is not drift.
                local, theirs = replace(local, output=""), replace(theirs, output="")
            known.in_sync = local.same_as(theirs)

    # ------------------------------------------------------------------ pushing

    async def _push(self) -> None:
        services = self.local.service_states()
        checks = self.local.check_states()
        for sid, state in list(services.items()):
            if services.get(sid) is not state:
                continue
            if state.deleted:
                await self._delete_service(sid, state)
            elif not state.in_sync:
                await self._sync_service(sid, state)
        for cid, cstate in list(checks.items()):
            if checks.get(cid) is not cstate:
                continue
            if cstate.deleted:
                await self.catalog.deregister(DeregisterRequest(node=self.local.node_name, check_id=cid))
                if checks.get(cid) is cstate:
                    del checks[cid]
                log.info("Deregistered check: check=%s", cid)
            elif not cstate.in_sync:
                await self._sync_check(cid, cstate)
        if not self.local.node_in_sync:
            await self.catalog.register(RegisterRequest(node=self.node()))
            self.local.node_in_sync = True
            log.info("Synced node info")

    async def _delete_service(self, sid: str, state: ServiceState) -> None:
        await self.catalog.deregister(DeregisterRequest(node=self.local.node_name, service_id=sid))
        services = self.local.service_states()
        if services.get(sid) is state:
            del services[sid]
        # Deregistering a service removes its checks from the catalog too.
        checks = self.local.check_states()
        for cid, cstate in list(checks.items()):
            if cstate.deleted and cstate.check.service_id == sid:
                del checks[cid]
        log.info("Deregistered service: service=%s", sid)

    async def _sync_service(self, sid: str, state: ServiceState) -> None:
        checks = [(cid, c, c.version) for cid, c in self.local.check_states().items()
                  if not c.deleted and c.check.service_id == sid]
        version = state.version
        node_synced = self.local.node_in_sync
        await self.catalog.register(RegisterRequest(node=self.node(), service=state.service,
                                                    checks=tuple(c.check for _, c, _ in checks),
                                                    skip_node_update=node_synced))
        if state.version == version:
            state.in_sync = True
        for _, cstate, cversion in checks:
            if cstate.version == cversion:
                cstate.in_sync = True
        if not node_synced:
            self.local.node_in_sync = True
        log.info("Synced service: service=%s", sid)

    async def _sync_check(self, cid: str, state: CheckState) -> None:
        service: NodeService | None = None
        service_state: ServiceState | None = None
        if state.check.service_id:
            service_state = self.local.service_states().get(state.check.service_id)
            if service_state is None or service_state.deleted:
                return
            service = service_state.service
        version = state.version
        service_version = service_state.version if service_state is not None else 0
        node_synced = self.local.node_in_sync
        await self.catalog.register(RegisterRequest(node=self.node(), service=service, checks=(state.check,),
                                                    skip_node_update=node_synced))
        if state.version == version:
            state.in_sync = True
        if service_state is not None and service_state.version == service_version:
            service_state.in_sync = True
        if not node_synced:
            self.local.node_in_sync = True
        log.info("Synced check: check=%s", cid)

