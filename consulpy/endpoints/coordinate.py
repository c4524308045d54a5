"""Coordinate.* endpoints: agents' LAN network coordinates into the catalog and the reads of them, and the
`?near=` sort that catalog and health reads apply (Consul's sortNodesByDistanceFrom).

`Coordinate.Update` only queues an update on the leader; every `update_period` the queue goes through
consensus as `CoordinateBatchUpdate` commands of at most 128 updates, at most 5 of them per period (Consul's
coordinate_update_* defaults), so thousands of agents cost a few Raft entries, not one each.
Imports: stdlib, consulpy.duration, consulpy.endpoints.query, consulpy.fsm, consulpy.serf (the coordinate
record and distance), consulpy.state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from consulpy.duration import SECOND
from consulpy.endpoints.query import QueryMeta, QueryOptions, ServerContext, rpc_endpoint
from consulpy.fsm import CoordinateBatchUpdate
from consulpy.serf.config import VivaldiConfig
from consulpy.serf.coordinate import distance
from consulpy.serf.messages import Coordinate as VivaldiCoordinate
from consulpy.state import CoordinateEntry, StateError, StateStore, WatchSet

log = logging.getLogger("consulpy.coordinate")

T = TypeVar("T")
V = TypeVar("V")

DEFAULT_UPDATE_PERIOD = 5 * SECOND
UPDATE_BATCH_SIZE = 128
UPDATE_MAX_BATCHES = 5
AREA_WAN = "wan"
DIMENSIONALITY = VivaldiConfig().dimensionality

# (member name, datacenter, coordinate) of each server in the WAN pool.
WanCoordinates = Callable[[], list[tuple[str, str, VivaldiCoordinate]]]


def entry_of(node: str, segment: str, coord: VivaldiCoordinate) -> CoordinateEntry:
    return CoordinateEntry(node, segment, tuple(coord.vec), coord.error, coord.adjustment, coord.height)


def vivaldi_of(entry: CoordinateEntry) -> VivaldiCoordinate:
    return VivaldiCoordinate(entry.vec, entry.error, entry.adjustment, entry.height)


def intersect(ours: Mapping[str, V], theirs: Mapping[str, V]) -> tuple[V | None, V | None]:
    """The pair of coordinates (by segment) two nodes can be compared in (Consul's CoordinateSet.Intersect):
    the default segment, unless one side has a single segment, which is then a client's and takes priority."""
    segment = ""
    if len(ours) == 1:
        segment = next(iter(ours))
    if len(theirs) == 1:
        segment = next(iter(theirs))
    return ours.get(segment), theirs.get(segment)


def sort_by_distance(store: StateStore, near: str, items: list[T], node_of: Callable[[T], str]) -> list[T]:
    """`items` in order of estimated round trip from the node `near`; items whose node has no comparable
    coordinate go last, in their order. Without a source node or its coordinates the order is unchanged."""
    if not near:
        return items
    _, source = store.coordinate(near)
    if not source:
        return items

    def rtt(item: T) -> float:
        _, other = store.coordinate(node_of(item))
        a, b = intersect(source, other)
        if a is None or b is None:
            return math.inf
        return distance(vivaldi_of(a), vivaldi_of(b))

    return sorted(items, key=rtt)


@dataclass(slots=True, frozen=True)
class DatacenterMap:
    """The WAN coordinates of one datacenter's servers (Consul's structs.DatacenterMap)."""

    datacenter: str
    area_id: str
    coordinates: tuple[CoordinateEntry, ...]


def _no_wan() -> list[tuple[str, str, VivaldiCoordinate]]:
    return []


class Coordinate:
    """Coordinate.Update / ListNodes / Node, and ListDatacenters from the WAN pool's coordinates."""

    def __init__(self, ctx: ServerContext, wan_coordinates: WanCoordinates = _no_wan,
                 update_period_ns: int = DEFAULT_UPDATE_PERIOD,
                 dimensionality: int = DIMENSIONALITY) -> None:
        self.ctx = ctx
        self.wan_coordinates = wan_coordinates
        self.update_period = update_period_ns / SECOND
        self.dimensionality = dimensionality
        # The newest update per (node, segment) since the last flush.
        self._pending: dict[tuple[str, str], CoordinateEntry] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None

    @rpc_endpoint("Coordinate.Update")
    async def update(self, node: str, segment: str, coord: VivaldiCoordinate | None) -> None:
        """Queue a node's coordinate for the next batch; refuse one that is not finite or not comparable
        with this server's own (its dimensionality differs)."""
        if coord is None or not coord.is_valid():
            raise StateError("invalid coordinate")
        if len(coord.vec) != self.dimensionality:
            raise StateError("incompatible coordinate")
        self._pending[(node, segment)] = entry_of(node, segment, coord)
        if self._timer is None and self._flushing is None:
            self._timer = asyncio.get_running_loop().call_later(self.update_period, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Propose what is queued in batches; on failure the batch is dropped (the agents send again)."""
        pending, self._pending = list(self._pending.values()), {}
        limit = UPDATE_BATCH_SIZE * UPDATE_MAX_BATCHES
        if len(pending) > limit:
            log.warning("Discarded coordinate updates: number_discarded=%d", len(pending) - limit)
            del pending[limit:]
        try:
            for start in range(0, len(pending), UPDATE_BATCH_SIZE):
                result = await self.ctx.consensus.apply(
                    CoordinateBatchUpdate(tuple(pending[start:start + UPDATE_BATCH_SIZE])))
                if isinstance(result, Exception):
                    raise result
        except Exception as exc:
            log.warning("Batch update failed: error=%s", exc)
        finally:
            self._flushing = None
            if self._pending:
                self._timer = asyncio.get_running_loop().call_later(self.update_period, self._start_flush)

    async def stop(self) -> None:
        """Drop what is queued and stop flushing (agent shutdown)."""
        self._pending.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
            self._flushing = None

    @rpc_endpoint("Coordinate.ListNodes", read=True)
    def list_nodes(self, opts: QueryOptions) -> Awaitable[tuple[QueryMeta, list[CoordinateEntry]]]:
        return self.ctx.blocking(opts, lambda ws: self.ctx.store.coordinates(ws))

    @rpc_endpoint("Coordinate.Node", read=True)
    def node(self, opts: QueryOptions, node: str) -> Awaitable[tuple[QueryMeta, list[CoordinateEntry]]]:
        def query(ws: WatchSet) -> tuple[int, list[CoordinateEntry]]:
            index, by_segment = self.ctx.store.coordinate(node, ws)
            return index, [by_segment[segment] for segment in sorted(by_segment)]

        return self.ctx.blocking(opts, query)

    def list_datacenters(self) -> list[DatacenterMap]:
        """Servers' WAN coordinates by datacenter, node names without their `.<datacenter>` suffix; answered
        by this server from its own WAN pool, as Consul's is."""
        by_dc: dict[str, list[CoordinateEntry]] = {}
        for name, dc, coord in self.wan_coordinates():
            node = name.removesuffix(f".{dc}")
            by_dc.setdefault(dc, []).append(entry_of(node, "", coord))
        return [DatacenterMap(dc, AREA_WAN, tuple(sorted(entries, key=lambda e: e.node)))
                for dc, entries in sorted(by_dc.items())]
