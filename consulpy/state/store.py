"""The in-memory state store: tables, secondary indexes, Raft-style indexes, and watches.

Writes arrive only from `consulpy.fsm` with the Raft index of the command being applied; reads are
plain method calls returning `(index, result)` and may record what they read in a `WatchSet`, which a
blocking query parks on until one of those keys changes. Node and service names match
case-insensitively, as in Consul's memdb schema. Imports: stdlib, sortedcontainers, consulpy.state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from sortedcontainers import SortedDict

from consulpy.state.errors import StateError
from consulpy.state.kv_ops import WRITE_VERBS, KVOp, KVOverlay, TxnResult, run_kv_op
from consulpy.state.records import (
    CRITICAL,
    CoordinateEntry,
    DirEntry,
    HealthCheck,
    Node,
    NodeService,
    Session,
)
from consulpy.state.snapshot import dump, load_into

NodeKey = str  # lower-cased node name
ServiceKey = tuple[str, str]  # (node key, service id)
CheckKey = tuple[str, str]  # (node key, check id)
WatchKey = tuple[str, str]

TABLE_NODES = "nodes"
TABLE_SERVICES = "services"
TABLE_CHECKS = "checks"
TABLE_KVS = "kvs"
TABLE_TOMBSTONES = "tombstones"
TABLE_SESSIONS = "sessions"
TABLE_COORDINATES = "coordinates"

TABLES = (TABLE_NODES, TABLE_SERVICES, TABLE_CHECKS, TABLE_KVS, TABLE_TOMBSTONES, TABLE_SESSIONS,
          TABLE_COORDINATES)
# What a restore keeps: the clock and the watch machinery belong to this process, not to the image.
_LIVE_ATTRIBUTES = frozenset({"_clock", "_waiters", "_prefix_watch_count", "_pending", "wake"})

MAX_LOCK_DELAY_NS = 60 * 1_000_000_000  # Consul's structs.MaxLockDelay: a longer lock-delay is cut to this


class Waiter:
    """A one-shot callback registered on several watch keys; fired at most once."""

    __slots__ = ("callback", "fired", "keys")

    def __init__(self, callback: Callable[[], None], keys: Iterable[WatchKey]) -> None:
        self.callback = callback
        self.fired = False
        self.keys = tuple(keys)


class WatchSet:
    """The keys a read touched; a blocking query waits until any of them changes."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: set[WatchKey] = set()

    def add(self, kind: str, name: str = "") -> None:
        self.keys.add((kind, name))


def _node_then_service_id(pair: tuple[Node, NodeService]) -> tuple[str, str]:
    return pair[0].node, pair[1].id


def _node_checks_first(check: HealthCheck) -> tuple[bool, str]:
    return check.service_id != "", check.check_id


def call_each(callbacks: list[Callable[[], None]]) -> None:
    """`StateStore.wake` by default: call the woken waiters' callbacks in order."""
    for callback in callbacks:
        callback()


def _prefix_range(table: SortedDict, prefix: str) -> Iterator[str]:
    return table.irange(minimum=prefix) if prefix else iter(table)


class StateStore:
    """All replicated state of one datacenter, applied in Raft index order."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.last_index = 0
        self._indexes: dict[str, int] = {}
        # catalog
        self._nodes: dict[NodeKey, Node] = {}
        self._services: dict[ServiceKey, NodeService] = {}
        self._services_by_node: dict[NodeKey, dict[str, NodeService]] = {}
        self._services_by_name: dict[str, set[ServiceKey]] = {}
        self._service_index: dict[str, int] = {}
        self._checks: dict[CheckKey, HealthCheck] = {}
        self._checks_by_node: dict[NodeKey, dict[str, HealthCheck]] = {}
        self._checks_by_service: dict[ServiceKey, set[str]] = {}
        self._checks_by_status: dict[str, set[CheckKey]] = {}
        # kv
        self._kv: SortedDict = SortedDict()
        self._tombstones: SortedDict = SortedDict()
        self._lock_delay: dict[str, float] = {}
        # sessions
        self._sessions: dict[str, Session] = {}
        self._sessions_by_node: dict[NodeKey, set[str]] = {}
        self._sessions_by_check: dict[CheckKey, set[str]] = {}
        self._locks_by_session: dict[str, set[str]] = {}
        # network coordinates: node key → lower-cased segment → entry
        self._coordinates: dict[NodeKey, dict[str, CoordinateEntry]] = {}
        # watches
        self._waiters: dict[WatchKey, set[Waiter]] = {}
        self._prefix_watch_count = 0
        self._pending: set[WatchKey] = set()
        # Runs the callbacks of the waiters one commit wakes (the agent's keeps garbage collection out of a
        # large wake-up).
        self.wake: Callable[[list[Callable[[], None]]], None] = call_each

    # ------------------------------------------------------------------ watches

    def watch(self, watch_set: WatchSet, callback: Callable[[], None]) -> Waiter:
        """Call `callback` once, after the first commit that changes any key of `watch_set`."""
        waiter = Waiter(callback, watch_set.keys)
        for key in waiter.keys:
            self._waiters.setdefault(key, set()).add(waiter)
            if key[0] == "kvp":
                self._prefix_watch_count += 1
        return waiter

    def unwatch(self, waiter: Waiter) -> None:
        for key in waiter.keys:
            waiters = self._waiters.get(key)
            if key[0] == "kvp":
                self._prefix_watch_count -= 1
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[key]

    def waiting(self) -> int:
        """How many waiters are parked (for tests and metrics)."""
        return len({w for ws in self._waiters.values() for w in ws})

    def _touch(self, kind: str, name: str = "") -> None:
        self._pending.add((kind, name))

    def _touch_key(self, key: str) -> None:
        self._pending.add(("kv", key))
        if self._prefix_watch_count:
            for end in range(len(key) + 1):
                self._pending.add(("kvp", key[:end]))

    def commit(self, index: int) -> None:
        """End of one applied command: record its index and wake what it changed."""
        self.last_index = max(self.last_index, index)
        pending, self._pending = self._pending, set()
        callbacks = []
        for key in pending:
            # A changed key's waiters all fire now, so its set goes at once; each waiter's unwatch then finds
            # the key gone and only the waiter's other keys (if any) still hold it.
            for waiter in self._waiters.pop(key, ()):
                if not waiter.fired:  # a waiter on several of the keys is seen once per key
                    waiter.fired = True
                    callbacks.append(waiter.callback)
        if callbacks:
            self.wake(callbacks)

    # ------------------------------------------------------------------ indexes

    def _bump(self, table: str, index: int) -> None:
        self._indexes[table] = index
        self._touch("table", table)

    def table_index(self, *tables: str) -> int:
        return max((self._indexes.get(t, 0) for t in tables), default=0)

    def _bump_service(self, name: str, index: int) -> None:
        self._service_index[name.lower()] = index
        self._touch("service", name.lower())

    def _bump_services_of_node(self, node_key: NodeKey, index: int) -> None:
        for svc in self._services_by_node.get(node_key, {}).values():
            self._bump_service(svc.service, index)

    # ------------------------------------------------------------------ catalog writes

    def ensure_node(self, index: int, node: Node) -> None:
        key = node.node.lower()
        existing = self._nodes.get(key)
        if existing is not None:
            if existing.same_as(node) and existing.node == node.node:
                return
            node = replace(node, create_index=existing.create_index, modify_index=index)
        else:
            node = replace(node, create_index=index, modify_index=index)
        self._nodes[key] = node
        self._bump(TABLE_NODES, index)
        self._touch("node", key)
        self._bump_services_of_node(key, index)

    def ensure_service(self, index: int, node_name: str, svc: NodeService) -> None:
        node_key = node_name.lower()
        if node_key not in self._nodes:
            raise StateError(f"Missing node registration for '{node_name}'")
        skey = (node_key, svc.id)
        existing = self._services.get(skey)
        if existing is not None:
            if existing.same_as(svc):
                return
            svc = replace(svc, create_index=existing.create_index, modify_index=index)
            if existing.service.lower() != svc.service.lower():
                self._unindex_service(skey, existing)
                self._bump_service(existing.service, index)
        else:
            svc = replace(svc, create_index=index, modify_index=index)
        self._services[skey] = svc
        self._services_by_node.setdefault(node_key, {})[svc.id] = svc
        self._services_by_name.setdefault(svc.service.lower(), set()).add(skey)
        self._bump(TABLE_SERVICES, index)
        self._bump_service(svc.service, index)
        self._touch("node", node_key)
        # Service checks carry the service's name and tags; keep them in step.
        for check_id in list(self._checks_by_service.get(skey, ())):
            check = self._checks[(node_key, check_id)]
            if check.service_name != svc.service or check.service_tags != svc.tags:
                self._store_check(replace(check, service_name=svc.service, service_tags=svc.tags,
                                          modify_index=index), index)

    def _unindex_service(self, skey: ServiceKey, svc: NodeService) -> None:
        names = self._services_by_name.get(svc.service.lower())
        if names is not None:
            names.discard(skey)
            if not names:
                del self._services_by_name[svc.service.lower()]

    def ensure_check(self, index: int, check: HealthCheck) -> None:
        node_key = check.node.lower()
        node = self._nodes.get(node_key)
        if node is None:
            raise StateError(f"Missing node registration for '{check.node}'")
        check = replace(check, node=node.node)
        if check.service_id:
            svc = self._services.get((node_key, check.service_id))
            if svc is None:
                raise StateError(f"Missing service registration for '{check.service_id}'")
            check = replace(check, service_name=svc.service, service_tags=svc.tags)
        else:
            check = replace(check, service_name="", service_tags=())
        existing = self._checks.get((node_key, check.check_id))
        if existing is not None:
            if existing.same_as(check):
                return
            check = replace(check, create_index=existing.create_index, modify_index=index)
        else:
            check = replace(check, create_index=index, modify_index=index)
        self._store_check(check, index, existing)
        if check.status == CRITICAL:
            for session_id in list(self._sessions_by_check.get((node_key, check.check_id), ())):
                self._invalidate_session(index, session_id)

    def _store_check(self, check: HealthCheck, index: int, existing: HealthCheck | None = None) -> None:
        node_key = check.node.lower()
        ckey = (node_key, check.check_id)
        if existing is None:
            existing = self._checks.get(ckey)
        if existing is not None:
            self._unindex_check(ckey, existing)
        self._checks[ckey] = check
        self._checks_by_node.setdefault(node_key, {})[check.check_id] = check
        self._checks_by_status.setdefault(check.status, set()).add(ckey)
        if check.service_id:
            self._checks_by_service.setdefault((node_key, check.service_id), set()).add(check.check_id)
            self._bump_service(check.service_name, index)
        else:
            self._bump_services_of_node(node_key, index)
        self._bump(TABLE_CHECKS, index)
        self._touch("node", node_key)

    def _unindex_check(self, ckey: CheckKey, check: HealthCheck) -> None:
        by_status = self._checks_by_status.get(check.status)
        if by_status is not None:
            by_status.discard(ckey)
        if check.service_id:
            ids = self._checks_by_service.get((ckey[0], check.service_id))
            if ids is not None:
                ids.discard(check.check_id)
                if not ids:
                    del self._checks_by_service[(ckey[0], check.service_id)]

    def delete_check(self, index: int, node_name: str, check_id: str) -> None:
        node_key = node_name.lower()
        ckey = (node_key, check_id)
        check = self._checks.pop(ckey, None)
        if check is None:
            return
        self._unindex_check(ckey, check)
        del self._checks_by_node[node_key][check_id]
        if check.service_id:
            self._bump_service(check.service_name, index)
        else:
            self._bump_services_of_node(node_key, index)
        self._bump(TABLE_CHECKS, index)
        self._touch("node", node_key)
        for session_id in list(self._sessions_by_check.get(ckey, ())):
            self._invalidate_session(index, session_id)

    def delete_service(self, index: int, node_name: str, service_id: str) -> None:
        node_key = node_name.lower()
        skey = (node_key, service_id)
        svc = self._services.pop(skey, None)
        if svc is None:
            return
        for check_id in list(self._checks_by_service.get(skey, ())):
            self.delete_check(index, node_name, check_id)
        del self._services_by_node[node_key][service_id]
        self._unindex_service(skey, svc)
        self._bump(TABLE_SERVICES, index)
        self._bump_service(svc.service, index)
        self._touch("node", node_key)

    def delete_node(self, index: int, node_name: str) -> None:
        node_key = node_name.lower()
        if node_key not in self._nodes:
            return
        for service_id in list(self._services_by_node.get(node_key, {})):
            self.delete_service(index, node_name, service_id)
        for check_id in list(self._checks_by_node.get(node_key, {})):
            self.delete_check(index, node_name, check_id)
        for session_id in list(self._sessions_by_node.get(node_key, ())):
            self._invalidate_session(index, session_id)
        if self._coordinates.pop(node_key, None) is not None:
            self._bump(TABLE_COORDINATES, index)
            self._touch("coordinate", node_key)
        del self._nodes[node_key]
        self._services_by_node.pop(node_key, None)
        self._checks_by_node.pop(node_key, None)
        self._bump(TABLE_NODES, index)
        self._touch("node", node_key)

    # ------------------------------------------------------------------ catalog reads

    def get_node(self, name: str, ws: WatchSet | None = None) -> Node | None:
        if ws is not None:
            ws.add("node", name.lower())
        return self._nodes.get(name.lower())

    def nodes(self, ws: WatchSet | None = None) -> tuple[int, list[Node]]:
        if ws is not None:
            ws.add("table", TABLE_NODES)
        return self.table_index(TABLE_NODES), sorted(self._nodes.values(), key=lambda n: n.node)

    def services(self, ws: WatchSet | None = None) -> tuple[int, list[tuple[Node, NodeService]]]:
        """Every service instance with its node."""
        if ws is not None:
            ws.add("table", TABLE_SERVICES)
            ws.add("table", TABLE_NODES)
        out = [(self._nodes[nk], svc) for (nk, _), svc in self._services.items()]
        return self.table_index(TABLE_SERVICES, TABLE_NODES), out

    def service_index(self, name: str) -> int:
        idx = self._service_index.get(name.lower())
        return idx if idx else self.table_index(TABLE_SERVICES, TABLE_NODES)

    def service_nodes(self, name: str, ws: WatchSet | None = None) -> tuple[int, list[tuple[Node, NodeService]]]:
        """Instances of one service, sorted by node name then service id."""
        key = name.lower()
        if ws is not None:
            ws.add("service", key)
            ws.add("table", TABLE_SERVICES)
        out = [(self._nodes[nk], self._services[(nk, sid)]) for nk, sid in self._services_by_name.get(key, ())]
        if len(out) > 1:
            out.sort(key=_node_then_service_id)
        return self.service_index(name), out

    def check_service_nodes(
        self, name: str, ws: WatchSet | None = None
    ) -> tuple[int, list[tuple[Node, NodeService, list[HealthCheck]]]]:
        """Instances of one service with their node-level and service-level checks (health/service)."""
        index, pairs = self.service_nodes(name, ws)
        out = []
        for node, svc in pairs:
            nk = node.node.lower()
            node_checks = self._checks_by_node.get(nk, {})
            checks = [c for c in node_checks.values() if not c.service_id]
            checks.extend(node_checks[cid] for cid in self._checks_by_service.get((nk, svc.id), ()))
            if len(checks) > 1:
                checks.sort(key=_node_checks_first)
            out.append((node, svc, checks))
        return index, out

    def node_services(self, name: str, ws: WatchSet | None = None) -> tuple[int, Node | None, list[NodeService]]:
        key = name.lower()
        if ws is not None:
            ws.add("node", key)
            ws.add("table", TABLE_NODES)
        index = self.table_index(TABLE_NODES, TABLE_SERVICES)
        node = self._nodes.get(key)
        if node is None:
            return index, None, []
        svcs = sorted(self._services_by_node.get(key, {}).values(), key=lambda s: s.id)
        return index, node, svcs

    def node_checks(self, name: str, ws: WatchSet | None = None) -> tuple[int, list[HealthCheck]]:
        key = name.lower()
        if ws is not None:
            ws.add("node", key)
            ws.add("table", TABLE_NODES)
        checks = sorted(self._checks_by_node.get(key, {}).values(), key=lambda c: c.check_id)
        return self.table_index(TABLE_CHECKS, TABLE_NODES), checks

    def service_checks(self, name: str, ws: WatchSet | None = None) -> tuple[int, list[HealthCheck]]:
        index, pairs = self.service_nodes(name, ws)
        out: list[HealthCheck] = []
        for node, svc in pairs:
            nk = node.node.lower()
            out.extend(self._checks[(nk, cid)] for cid in sorted(self._checks_by_service.get((nk, svc.id), ())))
        return index, out

    def checks_in_state(self, state: str, ws: WatchSet | None = None) -> tuple[int, list[HealthCheck]]:
        """Checks in one status, or all checks for "any"."""
        if ws is not None:
            ws.add("table", TABLE_CHECKS)
        if state == "any":
            checks = list(self._checks.values())
        else:
            checks = [self._checks[k] for k in self._checks_by_status.get(state, ())]
        checks.sort(key=lambda c: (c.node, c.check_id))
        return self.table_index(TABLE_CHECKS), checks

    def get_check(self, node_name: str, check_id: str) -> HealthCheck | None:
        return self._checks.get((node_name.lower(), check_id))

    def get_service(self, node_name: str, service_id: str) -> NodeService | None:
        return self._services.get((node_name.lower(), service_id))

    # ------------------------------------------------------------------ kv writes

    def kv_txn(self, index: int, ops: Iterable[KVOp]) -> tuple[list[TxnResult], list[tuple[int, StateError]]]:
        """Apply KV operations atomically: all of them, or none when any fails.

        Returns (results, errors); errors are (op position, error) and mean nothing was written.
        Every KV write, single or transactional, goes through here.
        """
        overlay = KVOverlay(self)
        results, errors = self._evaluate(overlay, index, ops, read_only=False)
        if errors:
            return [], errors
        for key, entry in overlay.changes.items():
            old = self._kv.get(key)
            if old is not None and old.session and (entry is None or entry.session != old.session):
                self._locks_by_session.get(old.session, set()).discard(key)
            if entry is None:
                if old is not None:
                    self._kv_remove(index, key)
            else:
                if entry.session:
                    self._locks_by_session.setdefault(entry.session, set()).add(key)
                self._kv_write(index, entry)
        return results, errors

    def kv_txn_read(self, ops: Iterable[KVOp]) -> tuple[list[TxnResult], list[tuple[int, StateError]]]:
        """Evaluate read-only KV operations against the current state (Consul's TxnRO); a write verb is an error."""
        results, errors = self._evaluate(KVOverlay(self), 0, ops, read_only=True)
        return ([], errors) if errors else (results, errors)

    @staticmethod
    def _evaluate(overlay: KVOverlay, index: int, ops: Iterable[KVOp], *, read_only: bool
                  ) -> tuple[list[TxnResult], list[tuple[int, StateError]]]:
        """Run every op on the overlay, collecting results and (position, error) for the ops that failed."""
        results: list[TxnResult] = []
        errors: list[tuple[int, StateError]] = []
        for position, op in enumerate(ops):
            try:
                if read_only and op.verb in WRITE_VERBS:
                    raise StateError("cannot insert in read-only transaction")
                results.extend(run_kv_op(overlay, index, op))
            except StateError as exc:
                errors.append((position, exc))
        return results, errors

    def has_session(self, session_id: str) -> bool:
        return session_id in self._sessions

    def _kv_write(self, index: int, entry: DirEntry) -> None:
        self._kv[entry.key] = entry
        self._tombstones.pop(entry.key, None)
        self._bump(TABLE_KVS, index)
        self._touch_key(entry.key)

    def _kv_remove(self, index: int, key: str) -> None:
        entry = self._kv.pop(key)
        if entry.session:
            self._locks_by_session.get(entry.session, set()).discard(key)
        self._tombstones[key] = index
        self._bump(TABLE_KVS, index)
        self._bump(TABLE_TOMBSTONES, index)
        self._touch_key(key)

    def kv_lock_delay_until(self, key: str) -> float:
        """The monotonic time before which `key` may not be acquired (0 when free)."""
        until = self._lock_delay.get(key, 0.0)
        if until and until <= self._clock():
            del self._lock_delay[key]
            return 0.0
        return until

    # ------------------------------------------------------------------ kv reads

    def _prefix_keys(self, prefix: str) -> Iterator[str]:
        for key in _prefix_range(self._kv, prefix):
            if not key.startswith(prefix):
                break
            yield key

    def kv_get(self, key: str, ws: WatchSet | None = None) -> tuple[int, DirEntry | None]:
        if ws is not None:
            ws.add("kv", key)
        entry = self._kv.get(key)
        if entry is not None:
            return entry.modify_index, entry
        return self._kv_table_index(ws), None

    def kv_list(self, prefix: str, ws: WatchSet | None = None) -> tuple[int, list[DirEntry]]:
        """Entries under a prefix; the index counts deletions under it (tombstones) too."""
        if ws is not None:
            ws.add("kvp", prefix)
        entries = [self._kv[k] for k in self._prefix_keys(prefix)]
        index = max((e.modify_index for e in entries), default=0)
        for key in _prefix_range(self._tombstones, prefix):
            if not key.startswith(prefix):
                break
            index = max(index, self._tombstones[key])
        if index == 0:
            index = self._kv_table_index(ws)
        return index, entries

    def _kv_table_index(self, ws: WatchSet | None) -> int:
        """The index of a KV read that found nothing: the table's, watched as such, so any KV write wakes it.

        Consul's radix-tree watch on the nearest existing node wakes such a query on writes next to the
        missing key (Spring's config watch blocks on empty contexts in turn and relies on that); waking on
        every KV write gives the same answers, a little more often.
        """
        if ws is not None:
            ws.add("table", TABLE_KVS)
            ws.add("table", TABLE_TOMBSTONES)
        return self.table_index(TABLE_KVS, TABLE_TOMBSTONES)

    def kv_keys(self, prefix: str, separator: str, ws: WatchSet | None = None) -> tuple[int, list[str]]:
        index, entries = self.kv_list(prefix, ws)
        if not separator:
            return index, [e.key for e in entries]
        keys: list[str] = []
        last = None
        for entry in entries:
            cut = entry.key.find(separator, len(prefix))
            key = entry.key if cut < 0 else entry.key[: cut + len(separator)]
            if key != last:
                keys.append(key)
                last = key
        return index, keys

    # ------------------------------------------------------------------ sessions

    def session_create(self, index: int, session: Session) -> None:
        if session.id in self._sessions:
            raise StateError(f"Session ID '{session.id}' already exists")
        node_key = session.node.lower()
        if node_key not in self._nodes:
            raise StateError("Missing node registration")
        check_keys: list[CheckKey] = []
        for check_id in session.node_checks:
            check_keys.append((node_key, check_id))
        for svc_check in session.service_checks:
            check_keys.append((node_key, svc_check.get("ID", "")))
        for ckey in check_keys:
            check = self._checks.get(ckey)
            if check is None:
                raise StateError(f"Missing check '{ckey[1]}' registration")
            if check.status == CRITICAL:
                raise StateError(f"Check '{ckey[1]}' is in critical state")
        session = replace(session, create_index=index, modify_index=index)
        self._sessions[session.id] = session
        self._sessions_by_node.setdefault(node_key, set()).add(session.id)
        for ckey in check_keys:
            self._sessions_by_check.setdefault(ckey, set()).add(session.id)
        self._bump(TABLE_SESSIONS, index)

    def session_destroy(self, index: int, session_id: str) -> None:
        if session_id in self._sessions:
            self._invalidate_session(index, session_id)

    def _invalidate_session(self, index: int, session_id: str) -> None:
        session = self._sessions.pop(session_id)
        node_key = session.node.lower()
        self._sessions_by_node.get(node_key, set()).discard(session_id)
        for check_id in session.node_checks:
            self._sessions_by_check.get((node_key, check_id), set()).discard(session_id)
        for svc_check in session.service_checks:
            self._sessions_by_check.get((node_key, svc_check.get("ID", "")), set()).discard(session_id)
        held = self._locks_by_session.pop(session_id, set())
        delay = min(session.lock_delay, MAX_LOCK_DELAY_NS)
        delay_until = self._clock() + delay / 1e9 if delay > 0 else 0.0
        for key in sorted(held):
            entry = self._kv.get(key)
            if entry is None or entry.session != session_id:
                continue
            if session.behavior == "delete":
                self._kv_remove(index, key)
            else:
                self._kv_write(index, replace(entry, session="", modify_index=index))
            if delay_until:
                self._lock_delay[key] = delay_until
        self._bump(TABLE_SESSIONS, index)

    def session_get(self, session_id: str, ws: WatchSet | None = None) -> tuple[int, Session | None]:
        if ws is not None:
            ws.add("table", TABLE_SESSIONS)
        return self.table_index(TABLE_SESSIONS), self._sessions.get(session_id)

    def session_list(self, ws: WatchSet | None = None) -> tuple[int, list[Session]]:
        if ws is not None:
            ws.add("table", TABLE_SESSIONS)
        return self.table_index(TABLE_SESSIONS), sorted(self._sessions.values(), key=lambda s: s.id)

    def node_sessions(self, node_name: str, ws: WatchSet | None = None) -> tuple[int, list[Session]]:
        if ws is not None:
            ws.add("table", TABLE_SESSIONS)
        ids = self._sessions_by_node.get(node_name.lower(), ())
        sessions = sorted((self._sessions[i] for i in ids), key=lambda s: s.id)
        return self.table_index(TABLE_SESSIONS), sessions

    # ------------------------------------------------------------------ network coordinates

    def coordinate_batch_update(self, index: int, updates: Iterable[CoordinateEntry]) -> None:
        """Upsert coordinates; an update for a node the catalog does not hold is dropped, as Consul does
        (coordinates are cleaned up with their node, and the node's next update lands once it is registered).
        The table index moves even when every update was dropped."""
        for entry in updates:
            node_key = entry.node.lower()
            if node_key not in self._nodes:
                continue
            self._coordinates.setdefault(node_key, {})[entry.segment.lower()] = entry
            self._touch("coordinate", node_key)
        self._bump(TABLE_COORDINATES, index)

    def coordinates(self, ws: WatchSet | None = None) -> tuple[int, list[CoordinateEntry]]:
        """Every coordinate, by node name then segment (case-insensitively, as Consul's id index orders them)."""
        if ws is not None:
            ws.add("table", TABLE_COORDINATES)
        entries = [entry for node_key in sorted(self._coordinates)
                   for _, entry in sorted(self._coordinates[node_key].items())]
        return self.table_index(TABLE_COORDINATES), entries

    def coordinate(self, node_name: str, ws: WatchSet | None = None) -> tuple[int, dict[str, CoordinateEntry]]:
        """One node's coordinates by segment, with the table's index (Consul's Store.Coordinate)."""
        key = node_name.lower()
        if ws is not None:
            ws.add("coordinate", key)
        found = self._coordinates.get(key, {})
        return self.table_index(TABLE_COORDINATES), {entry.segment: entry for entry in found.values()}

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        """A consistent image of every table and index (consulpy.state.snapshot); lock-delays stay out of it."""
        return dump(self)

    def restore(self, data: bytes) -> None:
        """Replace the whole content with an image from `snapshot()`, then wake every parked waiter.

        A bad image raises SnapshotError (a StateError) and leaves the store as it was. Lock-delays are
        wall-clock state of this process and do not survive a restore.
        """
        fresh = StateStore(self._clock)
        load_into(fresh, data)
        for name, value in vars(fresh).items():
            if name not in _LIVE_ATTRIBUTES:
                setattr(self, name, value)
        self._pending.update(self._waiters)
        self.commit(self.last_index)

    def touch_all(self, index: int) -> None:
        """Record every table and every service as changed at `index` (a restore replaced them all)."""
        for table in TABLES:
            self._bump(table, index)
        for name in list(self._service_index):
            self._bump_service(name, index)
