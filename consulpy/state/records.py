"""The records the state store holds, as frozen dataclasses that travel through the codec unchanged.

Field names are Pythonic; `consulpy.http.render` maps them to Consul's JSON names. Maps are dicts,
sequences are tuples. Imports: stdlib, consulpy.codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consulpy.codec import wire

PASSING = "passing"
WARNING = "warning"
CRITICAL = "critical"
MAINTENANCE = "maintenance"
CHECK_STATUSES = (PASSING, WARNING, CRITICAL)

SERF_CHECK_ID = "serfHealth"
SERF_CHECK_NAME = "Serf Health Status"
NODE_MAINT_CHECK_ID = "_node_maintenance"
SERVICE_MAINT_PREFIX = "_service_maintenance:"


@wire(1)
@dataclass(slots=True, frozen=True)
class Node:
    id: str
    node: str
    address: str
    datacenter: str = ""
    tagged_addresses: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    create_index: int = 0
    modify_index: int = 0

    def same_as(self, other: Node) -> bool:
        return (self.id, self.node, self.address, self.datacenter, self.tagged_addresses, self.meta) == (
            other.id, other.node, other.address, other.datacenter, other.tagged_addresses, other.meta)


@wire(2)
@dataclass(slots=True, frozen=True)
class Weights:
    passing: int = 1
    warning: int = 1


@wire(3)
@dataclass(slots=True, frozen=True)
class NodeService:
    id: str
    service: str
    tags: tuple[str, ...] = ()
    address: str = ""
    port: int = 0
    meta: dict[str, str] = field(default_factory=dict)
    tagged_addresses: dict[str, dict[str, Any]] = field(default_factory=dict)
    weights: Weights = field(default_factory=Weights)
    enable_tag_override: bool = False
    kind: str = ""
    socket_path: str = ""
    proxy: dict[str, Any] | None = None
    connect: dict[str, Any] | None = None
    locality: dict[str, Any] | None = None
    create_index: int = 0
    modify_index: int = 0

    def same_as(self, other: NodeService) -> bool:
        return _content(self) == _content(other)


@wire(4)
@dataclass(slots=True, frozen=True)
class HealthCheck:
    node: str
    check_id: str
    name: str
    status: str = CRITICAL
    notes: str = ""
    output: str = ""
    service_id: str = ""
    service_name: str = ""
    service_tags: tuple[str, ...] = ()
    type: str = ""
    interval: str = ""
    timeout: str = ""
    exposed_port: int = 0
    definition: dict[str, Any] = field(default_factory=dict)
    create_index: int = 0
    modify_index: int = 0

    def same_as(self, other: HealthCheck) -> bool:
        return _content(self) == _content(other)


@wire(5)
@dataclass(slots=True, frozen=True)
class DirEntry:
    key: str
    value: bytes | None = None
    flags: int = 0
    session: str = ""
    lock_index: int = 0
    create_index: int = 0
    modify_index: int = 0


@wire(6)
@dataclass(slots=True, frozen=True)
class Session:
    id: str
    node: str
    name: str = ""
    lock_delay: int = 15_000_000_000
    behavior: str = "release"
    ttl: str = ""
    node_checks: tuple[str, ...] = (SERF_CHECK_ID,)
    service_checks: tuple[dict[str, str], ...] = ()
    create_index: int = 0
    modify_index: int = 0


@wire(7)
@dataclass(slots=True, frozen=True)
class CoordinateEntry:
    """A node's Vivaldi network coordinate in one network segment (Consul's structs.Coordinate, flattened:
    `vec`, `error`, `adjustment`, `height` are serf's coordinate fields, distances in seconds)."""

    node: str
    segment: str
    vec: tuple[float, ...]
    error: float
    adjustment: float
    height: float


def _content(record: Any) -> tuple[Any, ...]:
    """A record's fields without its Raft indexes, for "did anything change" comparisons."""
    names = [f for f in record.__slots__ if f not in ("create_index", "modify_index")]
    return tuple(getattr(record, name) for name in names)
