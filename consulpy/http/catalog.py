"""HTTP handlers for /v1/catalog/*, /v1/health/* and /v1/status/*.

Imports: aiohttp (request type), consulpy.endpoints, consulpy.fsm, consulpy.http, consulpy.state.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp.web import BaseRequest

from consulpy.endpoints.query import QueryMeta
from consulpy.endpoints.status import STALE
from consulpy.fsm import DeregisterRequest, RegisterRequest
from consulpy.gostrconv import parse_bool
from consulpy.http.decode import CATALOG_DEREGISTER, CATALOG_REGISTER, DecodeError, decode_body
from consulpy.http.errors import HTTPError, bad_request
from consulpy.http.params import node_meta_filters, query_options
from consulpy.http.render import (
    catalog_service_json,
    check_json,
    check_service_node_json,
    node_json,
    service_json,
)
from consulpy.http.server import Reply, Route, filter_items, read_body
from consulpy.state import CHECK_STATUSES, CRITICAL, HealthCheck, Node, NodeService, Weights

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

MAX_BODY = 1 << 20


def _too_large(size: int) -> HTTPError:
    return HTTPError(413, f"Request body({size} bytes) too large, max size: {MAX_BODY} bytes.")


def _node_service(raw: dict[str, Any]) -> NodeService:
    weights = raw.get("Weights") or {}
    service_name = raw.get("Service", "")
    return NodeService(
        id=raw.get("ID") or service_name,
        service=service_name,
        tags=tuple(raw.get("Tags", ())),
        address=raw.get("Address", ""),
        port=raw.get("Port", 0),
        meta=raw.get("Meta", {}),
        tagged_addresses=raw.get("TaggedAddresses", {}),
        weights=Weights(weights.get("Passing", 1), weights.get("Warning", 1)),
        enable_tag_override=raw.get("EnableTagOverride", False),
        kind=raw.get("Kind", ""),
        socket_path=raw.get("SocketPath", ""),
        proxy=raw.get("Proxy"),
        connect=raw.get("Connect"),
        locality=raw.get("Locality"),
    )


def _health_check(raw: dict[str, Any], node: str) -> HealthCheck:
    status = raw.get("Status") or CRITICAL
    if status not in CHECK_STATUSES:
        raise bad_request(f"Invalid check status: '{status}'")
    definition = raw.get("Definition")
    return HealthCheck(
        node=node, check_id=raw.get("CheckID") or raw.get("Name", ""), name=raw.get("Name", ""),
        status=status, notes=raw.get("Notes", ""), output=raw.get("Output", ""),
        service_id=raw.get("ServiceID", ""), type=raw.get("Type", ""),
        interval=raw.get("Interval", ""), timeout=raw.get("Timeout", ""),
        definition=definition if isinstance(definition, dict) else {},
    )


async def catalog_register(request: BaseRequest, agent: Agent, tail: str) -> Any:
    query_options(request, agent.datacenter)
    try:
        raw = decode_body(await read_body(request, MAX_BODY, _too_large), CATALOG_REGISTER)
    except DecodeError as exc:
        raise bad_request(f"Request decode failed: {exc}") from None
    node_name = raw.get("Node", "")
    service = _node_service(raw["Service"]) if "Service" in raw else None
    raw_checks = ([raw["Check"]] if "Check" in raw else []) + raw.get("Checks", [])
    checks = tuple(_health_check(c, node_name) for c in raw_checks)
    for check in checks:
        if not check.check_id:
            raise bad_request("Missing check ID")
    node = Node(id=raw.get("ID", ""), node=node_name, address=raw.get("Address", ""),
                datacenter=agent.datacenter, tagged_addresses=raw.get("TaggedAddresses", {}),
                meta=raw.get("NodeMeta", {}))
    req = RegisterRequest(node=node, service=service, checks=checks,
                          skip_node_update=raw.get("SkipNodeUpdate", False))
    return await agent.catalog.register(req)


async def catalog_deregister(request: BaseRequest, agent: Agent, tail: str) -> Any:
    query_options(request, agent.datacenter)
    try:
        raw = decode_body(await read_body(request, MAX_BODY, _too_large), CATALOG_DEREGISTER)
    except DecodeError as exc:
        raise bad_request(f"Request decode failed: {exc}") from None
    req = DeregisterRequest(node=raw.get("Node", ""), service_id=raw.get("ServiceID", ""),
                            check_id=raw.get("CheckID", ""))
    return await agent.catalog.deregister(req)


async def catalog_datacenters(request: BaseRequest, agent: Agent, tail: str) -> Any:
    return agent.catalog.datacenters()


# Body builders for the cached reads (see Reply.build). They are module functions bound with partial rather
# than closures: a handler's frame stays alive while its blocking query waits, and closures would give it
# a cell per captured name.

def _nodes_body(request: BaseRequest, nodes: list[Node], dc: str) -> list[Any]:
    return filter_items(request, (node_json(n, dc) for n in nodes))


def _services_body(request: BaseRequest, pairs: list[tuple[Node, NodeService]], dc: str) -> dict[str, list[str]]:
    if request.query.get("filter"):
        kept = filter_items(request, (catalog_service_json(n, s, dc) for n, s in pairs))
        names = [(item["ServiceName"], item["ServiceTags"]) for item in kept]
    else:
        names = [(svc.service, svc.tags) for _, svc in pairs]
    services: dict[str, list[str]] = {}
    for name, tags in names:
        known = services.setdefault(name, [])
        for tag in tags:
            if tag not in known:
                known.append(tag)
    return services


def _service_nodes_body(request: BaseRequest, pairs: list[tuple[Node, NodeService]], dc: str) -> list[Any]:
    return filter_items(request, (catalog_service_json(n, s, dc) for n, s in pairs))


def _node_body(request: BaseRequest, node: Node, services: list[NodeService], dc: str) -> dict[str, Any]:
    kept = filter_items(request, (service_json(s) for s in services))
    return {"Node": node_json(node, dc), "Services": {s["ID"]: s for s in kept}}


def _node_services_body(request: BaseRequest, node: Node, services: list[NodeService], dc: str) -> dict[str, Any]:
    return {"Node": node_json(node, dc), "Services": filter_items(request, (service_json(s) for s in services))}


def _checks_body(request: BaseRequest, checks: list[HealthCheck]) -> list[Any]:
    return filter_items(request, (check_json(c) for c in checks))


def _health_service_body(request: BaseRequest, found: list[tuple[Node, NodeService, list[HealthCheck]]],
                         dc: str) -> list[Any]:
    return filter_items(request, [check_service_node_json(n, s, c, dc) for n, s, c in found])


def _near(request: BaseRequest, agent: Agent) -> str:
    """`?near=`: the node to sort by round trip from; `_agent` is this agent's own node."""
    near = request.query.get("near", "")
    return agent.node_name if near == "_agent" else near


def _reply(meta: QueryMeta, build: Callable[[], Any], near: str) -> Reply:
    """A cached read's reply. A result sorted by `near` is built fresh: its order follows coordinates,
    which the read's index does not cover, so a body cached at that index could be stale."""
    if near:
        return Reply(build(), meta)
    return Reply(meta=meta, build=build)


async def catalog_nodes(request: BaseRequest, agent: Agent, tail: str) -> Any:
    opts = query_options(request, agent.datacenter)
    near = _near(request, agent)
    meta, nodes = await agent.catalog.list_nodes(opts, node_meta_filters(request), near)
    return _reply(meta, partial(_nodes_body, request, nodes, agent.datacenter), near)


async def catalog_services(request: BaseRequest, agent: Agent, tail: str) -> Any:
    opts = query_options(request, agent.datacenter)
    meta, pairs = await agent.catalog.list_services(opts, node_meta_filters(request))
    return Reply(meta=meta, build=partial(_services_body, request, pairs, agent.datacenter))


def _required(tail: str, what: str) -> str:
    if not tail:
        raise bad_request(f"Missing {what}")
    return tail


async def catalog_service(request: BaseRequest, agent: Agent, tail: str) -> Any:
    name = _required(tail, "service name")
    opts = query_options(request, agent.datacenter)
    tags = request.query.getall("tag", [])
    near = _near(request, agent)
    meta, pairs = await agent.catalog.service_nodes(opts, name, tags, node_meta_filters(request), near)
    return _reply(meta, partial(_service_nodes_body, request, pairs, agent.datacenter), near)


async def catalog_node(request: BaseRequest, agent: Agent, tail: str) -> Any:
    name = _required(tail, "node name")
    opts = query_options(request, agent.datacenter)
    meta, (node, services) = await agent.catalog.node_services(opts, name)
    if node is None:
        return Reply(None, meta, raw=b"null")
    return Reply(meta=meta, build=partial(_node_body, request, node, services, agent.datacenter))


async def catalog_node_services(request: BaseRequest, agent: Agent, tail: str) -> Any:
    name = _required(tail, "node name")
    opts = query_options(request, agent.datacenter)
    meta, (node, services) = await agent.catalog.node_services(opts, name)
    if node is None:
        return Reply({"Node": None, "Services": None}, meta)
    return Reply(meta=meta, build=partial(_node_services_body, request, node, services, agent.datacenter))


async def health_node(request: BaseRequest, agent: Agent, tail: str) -> Any:
    name = _required(tail, "node name")
    opts = query_options(request, agent.datacenter)
    meta, checks = await agent.health.node_checks(opts, name)
    return Reply(meta=meta, build=partial(_checks_body, request, checks))


async def health_checks(request: BaseRequest, agent: Agent, tail: str) -> Any:
    name = _required(tail, "service name")
    opts = query_options(request, agent.datacenter)
    near = _near(request, agent)
    meta, checks = await agent.health.service_checks(opts, name, node_meta_filters(request), near)
    return _reply(meta, partial(_checks_body, request, checks), near)


async def health_state(request: BaseRequest, agent: Agent, tail: str) -> Any:
    # Consul does not validate the state: one no check can be in (e.g. py-consul's "unknown") lists nothing.
    state = _required(tail, "check state")
    opts = query_options(request, agent.datacenter)
    meta, checks = await agent.health.checks_in_state(opts, state, node_meta_filters(request),
                                                      _near(request, agent))
    return Reply(filter_items(request, (check_json(c) for c in checks)), meta)


def parse_passing(request: BaseRequest) -> bool:
    """`passing` is a real boolean: absent or false → no filter, empty → true, garbage → 400."""
    if "passing" not in request.query:
        return False
    text = request.query["passing"]
    if text == "":
        return True
    value = parse_bool(text)
    if value is None:
        raise bad_request("Invalid value for ?passing")
    return value


async def health_service(request: BaseRequest, agent: Agent, tail: str) -> Any:
    name = _required(tail, "service name")
    opts = query_options(request, agent.datacenter)
    passing = parse_passing(request)
    tags = request.query.getall("tag", [])
    near = _near(request, agent)
    meta, found = await agent.health.service_nodes(opts, name, tags, passing, node_meta_filters(request), near)
    return _reply(meta, partial(_health_service_body, request, found, agent.datacenter), near)


async def status_leader(request: BaseRequest, agent: Agent, tail: str) -> Any:
    query_options(request, agent.datacenter)
    return await agent.status.leader(STALE)


async def status_peers(request: BaseRequest, agent: Agent, tail: str) -> Any:
    query_options(request, agent.datacenter)
    return await agent.status.peers(STALE)


GET = ("GET",)
PUT = ("PUT",)

ROUTES = [
    Route("/v1/catalog/register", PUT, catalog_register),
    Route("/v1/catalog/deregister", PUT, catalog_deregister),
    Route("/v1/catalog/datacenters", GET, catalog_datacenters),
    Route("/v1/catalog/nodes", GET, catalog_nodes),
    Route("/v1/catalog/services", GET, catalog_services),
    Route("/v1/catalog/service/", GET, catalog_service),
    Route("/v1/catalog/node/", GET, catalog_node),
    Route("/v1/catalog/node-services/", GET, catalog_node_services),
    Route("/v1/health/node/", GET, health_node),
    Route("/v1/health/checks/", GET, health_checks),
    Route("/v1/health/state/", GET, health_state),
    Route("/v1/health/service/", GET, health_service),
    Route("/v1/status/leader", GET, status_leader),
    Route("/v1/status/peers", GET, status_peers),
]
