"""Catalog reads for client agents, which hold no replicated state: fetched from the servers per question.

`FetchedReads` is the resolver's `CatalogReads` over what one question has fetched so far; a read it lacks
raises `MissingRead`, the frontend fetches that read with `ServerReads.fetch` and runs the resolver again.
Imports: stdlib, consulpy.dns.resolver, consulpy.endpoints (catalog, query), consulpy.state (records).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from consulpy.dns.resolver import DNSSettings, Instance
from consulpy.endpoints.catalog import Catalog, Health
from consulpy.endpoints.query import QueryMeta, QueryOptions
from consulpy.state import Node, NodeService

log = logging.getLogger("consulpy.agent.dns")

# What a read is: (kind, name). The kinds follow the RPC a client agent makes for it, as Consul's DNS does.
ReadKey = tuple[str, str]
SERVICE = "service"  # Health.ServiceNodes
NODE = "node"  # Catalog.NodeServices
NODES = "nodes"  # Catalog.ListNodes (reverse lookups)
SERVICES = "services"  # Catalog.ListServices (reverse lookups of service addresses)

MAX_CACHED_SERVICES = 10_000


class MissingRead(Exception):
    """The resolver asked for a read that has not been fetched for this question yet."""

    def __init__(self, key: ReadKey) -> None:
        super().__init__(key)
        self.key = key


class FetchedReads:
    """`CatalogReads` over the results fetched for one question."""

    __slots__ = ("results",)

    def __init__(self) -> None:
        self.results: dict[ReadKey, Any] = {}

    def _get(self, key: ReadKey) -> Any:
        try:
            return self.results[key]
        except KeyError:
            raise MissingRead(key) from None

    def check_service_nodes(self, name: str) -> tuple[int, list[Instance]]:
        return self._get((SERVICE, name))  # type: ignore[no-any-return]

    def nodes(self) -> tuple[int, list[Node]]:
        return self._get((NODES, ""))  # type: ignore[no-any-return]

    def services(self) -> tuple[int, list[tuple[Node, NodeService]]]:
        return self._get((SERVICES, ""))  # type: ignore[no-any-return]

    def get_node(self, name: str) -> Node | None:
        return self._get((NODE, name))  # type: ignore[no-any-return]


class ServerReads:
    """Fetches reads through the agent's endpoints, which a client agent forwards to a server.

    Reads are stale unless `dns_config.allow_stale` is off, and asked again without it when the answering
    server had not heard from the leader within `max_stale`. Service reads are reused for `cache_max_age`
    when `dns_config.use_cache` is on (Consul caches only those); nothing else is kept between questions.
    """

    def __init__(self, catalog: Catalog, health: Health, clock: Callable[[], float] = time.monotonic) -> None:
        self.catalog = catalog
        self.health = health
        self._clock = clock
        self._services: dict[str, tuple[float, Any]] = {}  # name → (expiry, result)

    async def fetch(self, key: ReadKey, settings: DNSSettings) -> Any:
        kind, name = key
        caching = kind == SERVICE and settings.cache_max_age > 0
        if caching:
            cached = self._services.get(name)
            if cached is not None and self._clock() < cached[0]:
                return cached[1]
        meta, result = await self._call(kind, name, settings.allow_stale)
        if settings.allow_stale and meta.last_contact_ms > settings.max_stale_ms:
            log.warning("Query results too stale, re-requesting")
            meta, result = await self._call(kind, name, False)
        if caching:
            if len(self._services) >= MAX_CACHED_SERVICES:
                self._services.clear()
            self._services[name] = (self._clock() + settings.cache_max_age, result)
        return result

    async def _call(self, kind: str, name: str, stale: bool) -> tuple[QueryMeta, Any]:
        opts = QueryOptions(consistency="stale" if stale else "default")
        if kind == SERVICE:
            meta, instances = await self.health.service_nodes(opts, name, [], False, {})
            return meta, (meta.index, instances)
        if kind == NODE:
            meta, (node, _services) = await self.catalog.node_services(opts, name)
            return meta, node
        if kind == NODES:
            meta, nodes = await self.catalog.list_nodes(opts, {})
            return meta, (meta.index, nodes)
        meta, pairs = await self.catalog.list_services(opts, {})
        return meta, (meta.index, pairs)
