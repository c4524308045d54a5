"""Network coordinates: the state store's table, the FSM command, the Coordinate endpoint and its batching,
the `?near=` sort, and over HTTP and the CLI against a real dev agent."""

from __future__ import annotations

import asyncio
import math

import pytest

from consulpy.codec import decode, encode
from consulpy.endpoints.catalog import Catalog, Health
from consulpy.endpoints.coordinate import Coordinate, entry_of, intersect, sort_by_distance
from consulpy.endpoints.query import QueryOptions, ServerContext
from consulpy.fsm import FSM, CoordinateBatchUpdate, DeregisterRequest, RegisterRequest
from consulpy.serf.messages import Coordinate as VivaldiCoordinate
from consulpy.server.consensus import SingleNode
from consulpy.state import CoordinateEntry, Node, NodeService, StateError, StateStore, WatchSet
from consulpy.state.snapshot import IMAGE_MAGIC, IMAGE_VERSION


def _vivaldi(x: float, dims: int = 8) -> VivaldiCoordinate:
    """A coordinate `x` seconds from the origin along the first axis, with no height or adjustment."""
    return VivaldiCoordinate((x,) + (0.0,) * (dims - 1), 0.5, 0.0, 0.0)


def _entry(node: str, x: float, segment: str = "") -> CoordinateEntry:
    return entry_of(node, segment, _vivaldi(x))


def _store_with_nodes(*names: str) -> tuple[StateStore, FSM]:
    store = StateStore()
    fsm = FSM(store)
    for i, name in enumerate(names, start=1):
        fsm.apply(i, RegisterRequest(Node(id="", node=name, address=f"10.0.0.{i}")))
    return store, fsm


# --------------------------------------------------------------------------- state store and FSM


def test_batch_update_keeps_catalog_nodes_only_and_moves_the_index() -> None:
    store, fsm = _store_with_nodes("b", "a")
    command = decode(encode(CoordinateBatchUpdate((_entry("a", 0.001), _entry("ghost", 0.002), _entry("b", 0.003)))))
    assert fsm.apply(10, command) is True
    index, entries = store.coordinates()
    assert index == 10
    assert [e.node for e in entries] == ["a", "b"]
    assert entries[0] == _entry("a", 0.001)
    # Every update dropped: Consul's table index still moves.
    fsm.apply(11, CoordinateBatchUpdate((_entry("ghost", 0.1),)))
    assert store.coordinates()[0] == 11
    assert store.coordinate("ghost") == (11, {})


def test_segments_and_case_insensitive_nodes() -> None:
    store, fsm = _store_with_nodes("Alpha")
    fsm.apply(5, CoordinateBatchUpdate((_entry("alpha", 0.001), _entry("ALPHA", 0.002, "seg1"))))
    fsm.apply(6, CoordinateBatchUpdate((_entry("Alpha", 0.004),)))
    index, by_segment = store.coordinate("aLPHA")
    assert index == 6
    assert sorted(by_segment) == ["", "seg1"]
    assert by_segment[""] == _entry("Alpha", 0.004)
    assert [e.segment for e in store.coordinates()[1]] == ["", "seg1"]


def test_deleting_a_node_deletes_its_coordinates_and_wakes_watchers() -> None:
    store, fsm = _store_with_nodes("a", "b")
    fsm.apply(3, CoordinateBatchUpdate((_entry("a", 0.001), _entry("b", 0.002))))
    table_ws, node_ws, other_ws = WatchSet(), WatchSet(), WatchSet()
    store.coordinates(table_ws)
    store.coordinate("a", node_ws)
    store.coordinate("b", other_ws)
    woken: list[str] = []
    for name, ws in (("table", table_ws), ("a", node_ws), ("b", other_ws)):
        store.watch(ws, lambda name=name: woken.append(name))
    fsm.apply(4, DeregisterRequest(node="a"))
    assert sorted(woken) == ["a", "table"]
    assert store.coordinates() == (4, [_entry("b", 0.002)])
    # Deleting a node without coordinates leaves the table alone.
    fsm.apply(5, RegisterRequest(Node(id="", node="c", address="10.0.0.9")))
    fsm.apply(6, DeregisterRequest(node="c"))
    assert store.coordinates()[0] == 4


def test_snapshot_carries_coordinates_and_old_images_still_load() -> None:
    store, fsm = _store_with_nodes("a", "b")
    fsm.apply(3, CoordinateBatchUpdate((_entry("a", 0.001), _entry("b", 0.002, "s"))))
    restored = StateStore()
    restored.restore(store.snapshot())
    assert restored.coordinates() == store.coordinates()
    assert restored.coordinate("B")[1] == {"s": _entry("b", 0.002, "s")}

    # An image from before the coordinates table: the same document without its last section.
    image = list(decode(store.snapshot()))
    assert image[:2] == [IMAGE_MAGIC, IMAGE_VERSION] and len(image) == 12
    older = StateStore()
    older.restore(encode(tuple(image[:11])))
    assert [n.node for n in older.nodes()[1]] == ["a", "b"]
    assert older.coordinates()[1] == []


def test_intersect_prefers_a_single_segment() -> None:
    assert intersect({"": 1, "s": 2}, {"": 3, "s": 4}) == (1, 3)
    assert intersect({"s": 2}, {"": 3, "s": 4}) == (2, 4)
    assert intersect({"": 1, "s": 2}, {"t": 5}) == (None, 5)
    assert intersect({}, {"": 3}) == (None, 3)


def test_sort_by_distance_orders_by_rtt_and_puts_unknown_nodes_last() -> None:
    store, fsm = _store_with_nodes("src", "far", "near", "mid", "none")
    fsm.apply(9, CoordinateBatchUpdate((_entry("src", 0.0), _entry("far", 0.030), _entry("near", 0.001),
                                        _entry("mid", 0.010))))
    names = ["far", "none", "mid", "near"]
    assert sort_by_distance(store, "src", names, str) == ["near", "mid", "far", "none"]
    assert sort_by_distance(store, "SRC", names, str) == ["near", "mid", "far", "none"]
    # No source, or a source without coordinates: the order is left alone.
    assert sort_by_distance(store, "", names, str) == names
    assert sort_by_distance(store, "none", names, str) == names
    assert sort_by_distance(store, "nobody", names, str) == names


# --------------------------------------------------------------------------- the endpoint, in process


def _context(store: StateStore, fsm: FSM) -> ServerContext:
    consensus = SingleNode(fsm, "127.0.0.1:8300", "src", "00000000-0000-0000-0000-000000000001")
    return ServerContext(store, consensus, "dc1", "src")


def test_update_validates_and_batches_through_consensus() -> None:
    store, fsm = _store_with_nodes("a", "b")
    applied: list[CoordinateBatchUpdate] = []
    original = fsm.apply

    def recording_apply(index: int, command: object) -> object:
        if isinstance(command, CoordinateBatchUpdate):
            applied.append(command)
        return original(index, command)  # type: ignore[arg-type]

    fsm.apply = recording_apply  # type: ignore[method-assign]
    endpoint = Coordinate(_context(store, fsm), update_period_ns=50_000_000)

    async def scenario() -> None:
        with pytest.raises(StateError, match=r"^invalid coordinate$"):
            await endpoint.update("a", "", VivaldiCoordinate((math.nan,) * 8, 0.1, 0.0, 0.0))
        with pytest.raises(StateError, match=r"^invalid coordinate$"):
            await endpoint.update("a", "", None)
        with pytest.raises(StateError, match=r"^incompatible coordinate$"):
            await endpoint.update("a", "", _vivaldi(0.001, dims=3))
        # A blocking list wakes once the batch lands; repeated updates of one node collapse into the newest.
        index = store.coordinates()[0]
        listing = asyncio.ensure_future(endpoint.list_nodes(QueryOptions(min_index=max(index, 1),
                                                                          max_wait_ns=5_000_000_000)))
        await endpoint.update("a", "", _vivaldi(0.001))
        await endpoint.update("a", "", _vivaldi(0.002))
        await endpoint.update("b", "", _vivaldi(0.003))
        assert store.coordinates()[1] == []
        meta, entries = await asyncio.wait_for(listing, 3)
        assert meta.index > index
        assert entries == [_entry("a", 0.002), _entry("b", 0.003)]
        assert len(applied) == 1
        meta, mine = await endpoint.node(QueryOptions(), "A")
        assert mine == [_entry("a", 0.002)]
        await endpoint.stop()

    asyncio.run(scenario())


def test_list_datacenters_groups_wan_members() -> None:
    store, fsm = _store_with_nodes()
    wan = [("s2.dc2", "dc2", _vivaldi(0.02)), ("s1.dc1", "dc1", _vivaldi(0.0)), ("s0.dc1", "dc1", _vivaldi(0.01))]
    maps = Coordinate(_context(store, fsm), wan_coordinates=lambda: wan).list_datacenters()
    assert [(m.datacenter, m.area_id, [e.node for e in m.coordinates]) for m in maps] == [
        ("dc1", "wan", ["s0", "s1"]), ("dc2", "wan", ["s2"])]
    assert Coordinate(_context(store, fsm)).list_datacenters() == []


def test_catalog_and_health_reads_sort_near_a_node() -> None:
    store, fsm = _store_with_nodes("src", "far", "near")
    for i, name in enumerate(("far", "near", "src"), start=10):
        fsm.apply(i, RegisterRequest(Node(id="", node=name, address="10.1.0.1"),
                                     service=NodeService(id="web", service="web")))
    fsm.apply(20, CoordinateBatchUpdate((_entry("src", 0.0), _entry("far", 0.05), _entry("near", 0.001))))
    ctx = _context(store, fsm)
    catalog, health = Catalog(ctx), Health(ctx)

    async def scenario() -> None:
        opts = QueryOptions()
        _, nodes = await catalog.list_nodes(opts, {}, "src")
        assert [n.node for n in nodes] == ["src", "near", "far"]
        _, nodes = await catalog.list_nodes(opts, {})
        assert [n.node for n in nodes] == ["far", "near", "src"]
        _, pairs = await catalog.service_nodes(opts, "web", [], {}, "near")
        assert [n.node for n, _ in pairs] == ["near", "src", "far"]
        _, found = await health.service_nodes(opts, "web", [], False, {}, "src")
        assert [n.node for n, _, _ in found] == ["src", "near", "far"]

    asyncio.run(scenario())
