"""Catalog.* and Health.* endpoints: catalog registration and the service/node/check reads.

Reads that take `near` (a node name) sort their result by estimated round trip from that node.
Imports: stdlib, consulpy.endpoints (query, coordinate), consulpy.fsm, consulpy.state.
"""

from __future__ import annotations

from collections.abc import Awaitable

from consulpy.endpoints.coordinate import sort_by_distance
from consulpy.endpoints.query import QueryMeta, QueryOptions, ServerContext, rpc_endpoint
from consulpy.fsm import DeregisterRequest, RegisterRequest
from consulpy.state import CHECK_STATUSES, PASSING, HealthCheck, Node, NodeService, StateError, WatchSet

ServiceInstance = tuple[Node, NodeService]
CheckedInstance = tuple[Node, NodeService, list[HealthCheck]]


def _meta_matches(node: Node, node_meta: dict[str, str]) -> bool:
    return all(node.meta.get(k) == v for k, v in node_meta.items())


def _has_tags(svc: NodeService, tags: list[str]) -> bool:
    lowered = {t.lower() for t in svc.tags}
    return all(t.lower() in lowered for t in tags)


class Catalog:
    """Catalog.Register / Deregister / ListNodes / ListServices / ServiceNodes / NodeServices."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    @rpc_endpoint("Catalog.Register")
    async def register(self, req: RegisterRequest) -> bool:
        if not req.node.node:
            raise StateError("Must provide node")
        if not req.node.address and not req.skip_node_update:
            raise StateError("Must provide address")
        if req.service is not None and not req.service.service:
            raise StateError("Must provide service name with ID")
        for check in req.checks:
            if check.status not in CHECK_STATUSES:
                raise StateError(f"Invalid check status: '{check.status}'")
        result = await self.ctx.consensus.apply(req)
        if isinstance(result, Exception):
            raise result
        return True

    @rpc_endpoint("Catalog.Deregister")
    async def deregister(self, req: DeregisterRequest) -> bool:
        if not req.node:
            raise StateError("Must provide node")
        result = await self.ctx.consensus.apply(req)
        if isinstance(result, Exception):
            raise result
        return True

    def datacenters(self) -> list[str]:
        return [self.ctx.datacenter]

    @rpc_endpoint("Catalog.ListNodes", read=True)
    def list_nodes(self, opts: QueryOptions, node_meta: dict[str, str], near: str = ""
                   ) -> Awaitable[tuple[QueryMeta, list[Node]]]:
        def query(ws: WatchSet) -> tuple[int, list[Node]]:
            index, nodes = self.ctx.store.nodes(ws)
            kept = [n for n in nodes if _meta_matches(n, node_meta)]
            return index, sort_by_distance(self.ctx.store, near, kept, _node_name)

        return self.ctx.blocking(opts, query)

    @rpc_endpoint("Catalog.ListServices", read=True)
    def list_services(self, opts: QueryOptions, node_meta: dict[str, str]
                      ) -> Awaitable[tuple[QueryMeta, list[ServiceInstance]]]:
        def query(ws: WatchSet) -> tuple[int, list[ServiceInstance]]:
            index, pairs = self.ctx.store.services(ws)
            return index, [p for p in pairs if _meta_matches(p[0], node_meta)]

        return self.ctx.blocking(opts, query)

    @rpc_endpoint("Catalog.ServiceNodes", read=True)
    def service_nodes(self, opts: QueryOptions, name: str, tags: list[str], node_meta: dict[str, str],
                      near: str = "") -> Awaitable[tuple[QueryMeta, list[ServiceInstance]]]:
        def query(ws: WatchSet) -> tuple[int, list[ServiceInstance]]:
            index, pairs = self.ctx.store.service_nodes(name, ws)
            kept = [p for p in pairs if _has_tags(p[1], tags) and _meta_matches(p[0], node_meta)]
            return index, sort_by_distance(self.ctx.store, near, kept, _instance_node)

        return self.ctx.blocking(opts, query)

    @rpc_endpoint("Catalog.NodeServices", read=True)
    def node_services(self, opts: QueryOptions, node: str
                      ) -> Awaitable[tuple[QueryMeta, tuple[Node | None, list[NodeService]]]]:
        def query(ws: WatchSet) -> tuple[int, tuple[Node | None, list[NodeService]]]:
            index, found, services = self.ctx.store.node_services(node, ws)
            return index, (found, services)

        return self.ctx.blocking(opts, query)


class Health:
    """Health.NodeChecks / ServiceChecks / ChecksInState / ServiceNodes."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    @rpc_endpoint("Health.NodeChecks", read=True)
    def node_checks(self, opts: QueryOptions, node: str) -> Awaitable[tuple[QueryMeta, list[HealthCheck]]]:
        return self.ctx.blocking(opts, lambda ws: self.ctx.store.node_checks(node, ws))

    @rpc_endpoint("Health.ServiceChecks", read=True)
    def service_checks(self, opts: QueryOptions, service: str, node_meta: dict[str, str], near: str = ""
                       ) -> Awaitable[tuple[QueryMeta, list[HealthCheck]]]:
        return self.ctx.blocking(opts, lambda ws: self._on_nodes_with_meta(
            self.ctx.store.service_checks(service, ws), node_meta, near))

    @rpc_endpoint("Health.ChecksInState", read=True)
    def checks_in_state(self, opts: QueryOptions, state: str, node_meta: dict[str, str], near: str = ""
                        ) -> Awaitable[tuple[QueryMeta, list[HealthCheck]]]:
        return self.ctx.blocking(opts, lambda ws: self._on_nodes_with_meta(
            self.ctx.store.checks_in_state(state, ws), node_meta, near))

    def _on_nodes_with_meta(self, found: tuple[int, list[HealthCheck]], node_meta: dict[str, str], near: str
                            ) -> tuple[int, list[HealthCheck]]:
        """Keep the checks whose node carries every `node-meta` pair asked for, sorted by distance from `near`."""
        index, checks = found
        store = self.ctx.store
        if node_meta:
            checks = [c for c in checks if _meta_matches(store.get_node(c.node) or _NO_NODE, node_meta)]
        return index, sort_by_distance(store, near, checks, _check_node)

    @rpc_endpoint("Health.ServiceNodes", read=True)
    def service_nodes(self, opts: QueryOptions, service: str, tags: list[str], passing: bool,
                      node_meta: dict[str, str], near: str = "") -> Awaitable[tuple[QueryMeta, list[CheckedInstance]]]:
        def query(ws: WatchSet) -> tuple[int, list[CheckedInstance]]:
            index, found = self.ctx.store.check_service_nodes(service, ws)
            out = [
                item for item in found
                if _has_tags(item[1], tags) and _meta_matches(item[0], node_meta)
                and not (passing and any(c.status != PASSING for c in item[2]))
            ]
            return index, sort_by_distance(self.ctx.store, near, out, _instance_node)

        return self.ctx.blocking(opts, query)


_NO_NODE = Node(id="", node="", address="")


def _node_name(node: Node) -> str:
    return node.node


def _instance_node(instance: ServiceInstance | CheckedInstance) -> str:
    return instance[0].node


def _check_node(check: HealthCheck) -> str:
    return check.node
