"""The agent's local state: the services and checks registered with this agent and whether each is in sync.

Registration follows Consul's agent (check IDs and names, kept check status on re-registration, script-check
permission, maintenance mode, the reaper of services critical for too long); anti-entropy (`ae.py`) reads
the sync flags and pushes differences to the catalog. Removed entries stay as tombstones until synced.
Imports: stdlib, consulpy.agent (background, checks, definitions), consulpy.duration, consulpy.state.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from consulpy.agent.background import BackgroundLoop
from consulpy.agent.checks import CheckRunners
from consulpy.agent.definitions import (
    CheckRegistration,
    CheckType,
    RegistrationError,
    ServiceRegistration,
    config_check_registration,
    config_service_registration,
    service_check,
)
from consulpy.duration import MINUTE, SECOND, DurationError, format_duration, parse_duration
from consulpy.state import CRITICAL, NODE_MAINT_CHECK_ID, SERVICE_MAINT_PREFIX, HealthCheck, NodeService

if TYPE_CHECKING:
    from consulpy.agent.config import RuntimeConfig

log = logging.getLogger("consulpy.agent")

# Where a registration came from (Consul's ConfigSourceLocal / ConfigSourceRemote); maintenance checks are
# the agent's own. Reload replaces the config-file ones and keeps the rest.
SOURCE_CONFIG = "local"
SOURCE_API = "remote"
SOURCE_AGENT = "agent"

SERVICE_MAINT_NAME = "Service Maintenance Mode"
NODE_MAINT_NAME = "Node Maintenance Mode"
DEFAULT_NODE_MAINT_REASON = ("Maintenance mode is enabled for this node, but no reason was provided. "
                             "This is a default message.")
DEFAULT_SERVICE_MAINT_REASON = ("Maintenance mode is enabled for this service, but no reason was provided. "
                                "This is a default message.")
SCRIPTS_DISABLED_LOCAL = ("Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or "
                          "'enable_local_script_checks' to true")
SCRIPTS_DISABLED_REMOTE = ("Scripts are disabled on this agent from remote calls; to enable, configure "
                           "'enable_script_checks' to true")


def _raw_duration(config: RuntimeConfig, key: str, default: int) -> int:
    value = config.raw.get(key)
    if not isinstance(value, str):
        return default
    try:
        return parse_duration(value)
    except DurationError:
        return default


@dataclass(slots=True, frozen=True)
class LocalOptions:
    """The configuration the local state works with; durations in nanoseconds."""

    enable_script_checks: bool = False
    enable_local_script_checks: bool = False
    check_output_max_size: int = 4096
    discard_check_output: bool = False
    check_update_interval: int = 5 * MINUTE
    check_reap_interval: int = 30 * SECOND
    check_deregister_interval_min: int = MINUTE

    @classmethod
    def from_config(cls, config: RuntimeConfig) -> LocalOptions:
        """Consul's values; dev agents reap every second with no minimum, so short deregister timeouts act."""
        reap_default, min_default = (SECOND, 0) if config.dev else (30 * SECOND, MINUTE)
        return cls(
            enable_script_checks=config.enable_script_checks,
            enable_local_script_checks=config.enable_local_script_checks or config.enable_script_checks,
            check_output_max_size=config.check_output_max_size,
            discard_check_output=bool(config.raw.get("discard_check_output", False)),
            check_update_interval=_raw_duration(config, "check_update_interval", 5 * MINUTE),
            check_reap_interval=_raw_duration(config, "check_reap_interval", reap_default),
            check_deregister_interval_min=_raw_duration(config, "check_deregister_interval_min", min_default),
        )


@dataclass(slots=True, eq=False)
class ServiceState:
    """A local service and its sync status; `version` changes with every local change."""

    service: NodeService
    source: str
    token: str = ""
    in_sync: bool = False
    deleted: bool = False
    version: int = 0


@dataclass(slots=True, eq=False)
class CheckState:
    """A local check, how it runs, its sync status, and since when (loop time) it has been critical."""

    check: HealthCheck
    source: str
    check_type: CheckType | None = None
    token: str = ""
    in_sync: bool = False
    deleted: bool = False
    version: int = 0
    critical_since: float | None = None
    reap_after: float = 0.0
    deferred: asyncio.TimerHandle | None = field(default=None, repr=False)


class LocalState(BackgroundLoop):
    """Services and checks of this agent. Methods are synchronous: each change is atomic on the event loop.
    Its background task is the reaper of services critical for too long."""

    def __init__(self, node_name: str, runners: CheckRunners, options: LocalOptions) -> None:
        self.node_name = node_name
        self.runners = runners
        self.options = options
        self.node_in_sync = False
        self.on_change: Callable[[], None] = lambda: None
        self._services: dict[str, ServiceState] = {}
        self._checks: dict[str, CheckState] = {}
        self._versions = itertools.count(1)
        self._waiters: list[asyncio.Future[None]] = []

    # ------------------------------------------------------------------ reads

    def services(self) -> dict[str, NodeService]:
        return {sid: st.service for sid, st in sorted(self._services.items()) if not st.deleted}

    def service(self, service_id: str) -> NodeService | None:
        state = self._services.get(service_id)
        return None if state is None or state.deleted else state.service

    def services_named(self, name: str) -> list[NodeService]:
        return [svc for svc in self.services().values() if svc.service == name]

    def checks(self) -> dict[str, HealthCheck]:
        return {cid: st.check for cid, st in sorted(self._checks.items()) if not st.deleted}

    def check(self, check_id: str) -> HealthCheck | None:
        state = self._checks.get(check_id)
        return None if state is None or state.deleted else state.check

    def checks_for_service(self, service_id: str, include_node_checks: bool) -> list[HealthCheck]:
        return [c for c in self.checks().values()
                if c.service_id == service_id or (include_node_checks and not c.service_id)]

    def service_states(self) -> dict[str, ServiceState]:
        """Every service entry, tombstones included, for anti-entropy."""
        return self._services

    def check_states(self) -> dict[str, CheckState]:
        """Every check entry, tombstones included, for anti-entropy."""
        return self._checks

    # ------------------------------------------------------------------ change notification

    def _changed(self, sync: bool = True) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if sync:
            self.on_change()

    def _touch(self, state: ServiceState | CheckState) -> None:
        state.version = next(self._versions)
        state.in_sync = False

    async def wait_for_change(self, timeout: float) -> None:
        """Return after the next local change, or after `timeout` seconds."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # ------------------------------------------------------------------ services

    def _vet_check_type(self, ct: CheckType, source: str) -> None:
        if ct.is_script():
            if source == SOURCE_CONFIG and not self.options.enable_local_script_checks:
                raise RegistrationError(500, SCRIPTS_DISABLED_LOCAL)
            if source == SOURCE_API and not self.options.enable_script_checks:
                raise RegistrationError(500, SCRIPTS_DISABLED_REMOTE)
        reason = self.runners.unsupported(ct)
        if reason:
            raise RegistrationError(500, reason)

    def _service_checks(self, reg: ServiceRegistration, snapshot: dict[str, HealthCheck] | None
                        ) -> list[tuple[HealthCheck, CheckType]]:
        """The service's check records, keeping the status and output of checks that already exist."""
        out = []
        count = len(reg.check_types)
        for position, ct in enumerate(reg.check_types, 1):
            check = service_check(reg.service, ct, position, count, self.node_name)
            previous = snapshot.get(check.check_id) if snapshot is not None else self.check(check.check_id)
            if previous is not None:
                check = replace(check, status=previous.status, output=previous.output)
            out.append((check, ct))
        return out

    def add_service(self, reg: ServiceRegistration, source: str, replace_existing_checks: bool = False,
                    snapshot: dict[str, HealthCheck] | None = None) -> None:
        """Register (or replace) a service and its checks; raises RegistrationError before changing anything."""
        for ct in reg.check_types:
            self._vet_check_type(ct, source)
        service = reg.service
        checks = self._service_checks(reg, snapshot)
        existing = {cid for cid, c in self.checks().items() if c.service_id == service.id}
        state = ServiceState(service, source, reg.token)
        self._touch(state)
        self._services[service.id] = state
        for cid in existing:
            current = self._checks[cid]
            if current.check.service_name != service.service or current.check.service_tags != service.tags:
                current.check = replace(current.check, service_name=service.service, service_tags=service.tags)
                self._touch(current)
        for check, ct in checks:
            self._put_check(check, ct, source, reg.token)
        if replace_existing_checks:
            for cid in existing - {check.check_id for check, _ in checks}:
                self._remove_check(cid)
        log.debug("added service: service=%s", service.id)
        self._changed()

    def adopt_catalog_tags(self, service_id: str, tags: tuple[str, ...]) -> None:
        """EnableTagOverride: the catalog's tags win over the registered ones (anti-entropy calls this)."""
        state = self._services[service_id]
        state.service = replace(state.service, tags=tags)
        for check_state in self._checks.values():
            if not check_state.deleted and check_state.check.service_id == service_id:
                check_state.check = replace(check_state.check, service_tags=tags)
        self._changed(sync=False)

    def remove_service(self, service_id: str) -> bool:
        """Remove a service and its checks; False if the agent has no such service."""
        state = self._services.get(service_id)
        if state is None or state.deleted:
            return False
        for cid, check in self.checks().items():
            if check.service_id == service_id:
                self._remove_check(cid)
        state.deleted = True
        self._touch(state)
        log.debug("removed service: service=%s", service_id)
        self._changed()
        return True

    # ------------------------------------------------------------------ checks

    def _put_check(self, check: HealthCheck, ct: CheckType | None, source: str, token: str) -> None:
        cid = check.check_id
        old = self._checks.get(cid)
        if old is not None and old.deferred is not None:
            old.deferred.cancel()
        state = CheckState(check, source, ct, token)
        if check.status == CRITICAL:
            kept = old is not None and not old.deleted and old.check.status == CRITICAL
            state.critical_since = old.critical_since if kept and old is not None else self._now()
        if ct is not None and ct.deregister_critical_service_after > 0 and check.service_id:
            timeout = ct.deregister_critical_service_after
            minimum = self.options.check_deregister_interval_min
            if timeout < minimum:
                log.warning("check has deregister interval below minimum: check=%s minimum_interval=%s", cid,
                            format_duration(minimum))
                timeout = minimum
            state.reap_after = timeout / SECOND
        self._touch(state)
        self._checks[cid] = state
        if ct is None:
            self.runners.stop(cid)
        else:
            self.runners.start(cid, ct, self.update_check, self.options.check_output_max_size)

    def add_check(self, reg: CheckRegistration, source: str, snapshot: dict[str, HealthCheck] | None = None
                  ) -> None:
        """Register (or replace) a check, keeping the status and output of an existing one."""
        check = reg.check
        if check.service_id:
            service = self.service(check.service_id)
            if service is None:
                raise RegistrationError(500, f'ServiceID "{check.service_id}" does not exist')
            check = replace(check, service_name=service.service, service_tags=service.tags)
        self._vet_check_type(reg.check_type, source)
        previous = snapshot.get(check.check_id) if snapshot is not None else self.check(check.check_id)
        if previous is not None:
            check = replace(check, status=previous.status, output=previous.output)
        self._put_check(check, reg.check_type, source, reg.token)
        self._changed()

    def _remove_check(self, check_id: str) -> None:
        state = self._checks[check_id]
        self.runners.stop(check_id)
        if state.deferred is not None:
            state.deferred.cancel()
            state.deferred = None
        state.deleted = True
        self._touch(state)

    def remove_check(self, check_id: str) -> bool:
        """Remove a check; False if the agent has no such check."""
        if self.check(check_id) is None:
            return False
        self._remove_check(check_id)
        log.debug("removed check: check=%s", check_id)
        self._changed()
        return True

    def update_check(self, check_id: str, status: str, output: str) -> None:
        """A runner's (or TTL update's) result. Output-only changes reach the catalog lazily, as in Consul."""
        state = self._checks.get(check_id)
        if state is None or state.deleted:
            return
        if self.options.discard_check_output:
            output = ""
        current = state.check
        if current.status == status and current.output == output:
            return
        if status == CRITICAL and current.status != CRITICAL:
            state.critical_since = self._now()
        elif status != CRITICAL:
            state.critical_since = None
        interval = self.options.check_update_interval
        if interval > 0 and current.status == status:
            state.check = replace(current, output=output)
            if state.deferred is None:
                delay = (interval / 2 + random.random() * interval) / SECOND
                state.deferred = asyncio.get_running_loop().call_later(delay, self._flush_deferred, state)
            self._changed(sync=False)
            return
        state.check = replace(current, status=status, output=output)
        self._touch(state)
        self._changed()

    def _flush_deferred(self, state: CheckState) -> None:
        state.deferred = None
        if not state.deleted:
            self._touch(state)
            self._changed()

    def update_ttl(self, check_id: str, status: str, output: str) -> None:
        """pass/warn/fail/update on a TTL check: 404 if unknown, 500 if the check has no TTL."""
        if self.check(check_id) is None:
            raise RegistrationError(404, f'Unknown check ID "{check_id}". Ensure that the check ID is passed, '
                                         "not the check name.")
        ttl = self.runners.ttl(check_id)
        if ttl is None:
            raise RegistrationError(500, f'CheckID "{check_id}" does not have associated TTL')
        ttl.set_status(status, output)

    # ------------------------------------------------------------------ maintenance

    def enable_service_maintenance(self, service_id: str, reason: str) -> None:
        service = self.service(service_id)
        if service is None:
            raise RegistrationError(404, f'No service registered with ID "{service_id}"')
        check_id = SERVICE_MAINT_PREFIX + service_id
        if self.check(check_id) is not None:
            return
        check = HealthCheck(node=self.node_name, check_id=check_id, name=SERVICE_MAINT_NAME,
                            notes=reason or DEFAULT_SERVICE_MAINT_REASON, status=CRITICAL, service_id=service.id,
                            service_name=service.service, service_tags=service.tags)
        self._put_check(check, None, SOURCE_AGENT, "")
        self._changed()
        log.info("Service entered maintenance mode: service=%s", service_id)

    def disable_service_maintenance(self, service_id: str) -> None:
        if self.service(service_id) is None:
            raise RegistrationError(404, f'No service registered with ID "{service_id}"')
        if self.remove_check(SERVICE_MAINT_PREFIX + service_id):
            log.info("Service left maintenance mode: service=%s", service_id)

    def enable_node_maintenance(self, reason: str) -> None:
        if self.check(NODE_MAINT_CHECK_ID) is not None:
            return
        check = HealthCheck(node=self.node_name, check_id=NODE_MAINT_CHECK_ID, name=NODE_MAINT_NAME,
                            notes=reason or DEFAULT_NODE_MAINT_REASON, status=CRITICAL)
        self._put_check(check, None, SOURCE_AGENT, "")
        self._changed()
        log.info("Node entered maintenance mode")

    def disable_node_maintenance(self) -> None:
        if self.remove_check(NODE_MAINT_CHECK_ID):
            log.info("Node left maintenance mode")

    # ------------------------------------------------------------------ config-file definitions

    def _config_registrations(self, config: RuntimeConfig
                              ) -> tuple[list[ServiceRegistration], list[CheckRegistration]]:
        services = [config_service_registration(raw) for raw in config.services]
        checks = [config_check_registration(raw, self.node_name) for raw in config.checks]
        return services, checks

    def _vet_config(self, services: list[ServiceRegistration], checks: list[CheckRegistration]) -> None:
        """Everything add_service/add_check could refuse, checked before anything changes."""
        known = {sid for sid, st in self._services.items() if not st.deleted and st.source != SOURCE_CONFIG}
        for reg in services:
            for ct in reg.check_types:
                try:
                    self._vet_check_type(ct, SOURCE_CONFIG)
                except RegistrationError as exc:
                    raise RegistrationError(500, f'Failed to register service "{reg.service.service}": '
                                                 f"{exc.reason}") from None
            known.add(reg.service.id)
        for creg in checks:
            try:
                self._vet_check_type(creg.check_type, SOURCE_CONFIG)
                if creg.check.service_id and creg.check.service_id not in known:
                    raise RegistrationError(500, f'ServiceID "{creg.check.service_id}" does not exist')
            except RegistrationError as exc:
                raise RegistrationError(500, f'Failed to register check "{creg.check.name}": {exc.reason}'
                                        ) from None

    def load_config(self, config: RuntimeConfig) -> None:
        """At start: register the config file's services and checks; a bad one is logged and skipped."""
        for raw in config.services:
            try:
                self.add_service(config_service_registration(raw), SOURCE_CONFIG)
            except RegistrationError as exc:
                log.error("failed to register service from config: error=%s", exc.reason)
        for raw in config.checks:
            try:
                self.add_check(config_check_registration(raw, self.node_name), SOURCE_CONFIG)
            except RegistrationError as exc:
                log.error("failed to register check from config: error=%s", exc.reason)

    def reload_config(self, config: RuntimeConfig) -> None:
        """Replace the config-file services and checks with `config`'s, keeping API registrations and the
        status of checks that survive. Raises RegistrationError, with nothing changed, if any is invalid."""
        previous_options = self.options
        self.options = LocalOptions.from_config(config)
        try:
            services, checks = self._config_registrations(config)
            self._vet_config(services, checks)
        except RegistrationError:
            self.options = previous_options
            raise
        snapshot = self.checks()
        for cid, state in list(self._checks.items()):
            if not state.deleted and state.source == SOURCE_CONFIG:
                self._remove_check(cid)
        for sid, service_state in list(self._services.items()):
            if not service_state.deleted and service_state.source == SOURCE_CONFIG:
                self.remove_service(sid)
        for reg in services:
            self.add_service(reg, SOURCE_CONFIG, snapshot=snapshot)
        for creg in checks:
            self.add_check(creg, SOURCE_CONFIG, snapshot=snapshot)
        self._changed()

    # ------------------------------------------------------------------ reaper and lifecycle

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def reap(self) -> list[str]:
        """Deregister services whose check has been critical longer than its deregister timeout."""
        now = self._now()
        reaped: list[str] = []
        for cid, state in list(self._checks.items()):
            sid = state.check.service_id
            if state.deleted or not sid or sid in reaped or state.critical_since is None or state.reap_after <= 0:
                continue
            if now - state.critical_since > state.reap_after:
                reaped.append(sid)
                if self.remove_service(sid):
                    log.info("deregistered service with critical health due to exceeding health check's "
                             "'deregister_critical_service_after' timeout: service=%s check=%s timeout=%s", sid,
                             cid, format_duration(round(state.reap_after * SECOND)))
        return reaped

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.options.check_reap_interval / SECOND)
            self.reap()

    async def stop(self) -> None:
        """Stop the reaper and every check runner (on leave and shutdown)."""
        await super().stop()
        for state in self._checks.values():
            if state.deferred is not None:
                state.deferred.cancel()
                state.deferred = None
        await self.runners.shutdown()

    def stats(self) -> dict[str, Any]:
        """Counts for /v1/agent/self's Stats.agent."""
        checks = self.checks()
        types = [state.check_type for state in self._checks.values() if not state.deleted]
        return {
            "check_monitors": sum(1 for ct in types if ct is not None and ct.type_name() == "script"),
            "check_ttls": sum(1 for ct in types if ct is not None and ct.is_ttl()),
            "checks": len(checks),
            "services": len(self.services()),
        }

