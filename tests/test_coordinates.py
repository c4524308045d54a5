"""Network coordinates: the state store's table, the FSM command, the Coordinate endpoint and its batching,
the `?near=` sort, and over HTTP and the CLI against a real dev agent."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from consulpy.agent.config import load_config
from consulpy.agent.coordinates import coordinate_interval, rate_scaled_interval, update_period
from consulpy.codec import decode, encode
from consulpy.duration import MILLISECOND, SECOND
from consulpy.endpoints.catalog import Catalog, Health
from consulpy.endpoints.coordinate import Coordinate, entry_of, intersect, sort_by_distance
from consulpy.endpoints.query import QueryOptions, ServerContext
from consulpy.fsm import FSM, CoordinateBatchUpdate, DeregisterRequest, RegisterRequest
from consulpy.serf.messages import Coordinate as VivaldiCoordinate
from consulpy.server.consensus import SingleNode
from consulpy.state import CoordinateEntry, Node, NodeService, StateError, StateStore, WatchSet
from consulpy.state.snapshot import IMAGE_MAGIC, IMAGE_VERSION
from tests.agentproc import AgentProcess, wait_until
from tests.clusterproc import ServerSet
from tests.test_cli import failed, ok


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


def test_intervals_from_config() -> None:
    hcl = 'consul { coordinate { update_period = "250ms" } }\nsync_coordinate_interval_min = "3s"'
    tuned = load_config(["-dev", "-hcl", hcl]).config
    assert (update_period(tuned), coordinate_interval(tuned)) == (250 * MILLISECOND, 3 * SECOND)
    dev = load_config(["-dev"]).config
    assert (update_period(dev), coordinate_interval(dev)) == (100 * MILLISECOND, SECOND)
    server = load_config(["-server", "-data-dir", "/nonexistent"]).config
    assert (update_period(server), coordinate_interval(server)) == (5 * SECOND, 15 * SECOND)
    # Consul's RateScaledInterval: 6,400 members at 64 updates a second cluster-wide → one each 100 s.
    assert rate_scaled_interval(15 * SECOND, 6400) == 100.0
    assert rate_scaled_interval(15 * SECOND, 3) == 15.0


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


# --------------------------------------------------------------------------- a real dev agent


def _coord_json(x: float, dims: int = 8) -> dict[str, Any]:
    return {"Vec": [x] + [0.0] * (dims - 1), "Error": 0.5, "Adjustment": 0.0, "Height": 0.0}


def _register(agent: AgentProcess, node: str, address: str) -> None:
    body = {"Node": node, "Address": address, "Service": {"Service": "web", "Port": 80},
            "Check": {"CheckID": "web-check", "Name": "web", "ServiceID": "web", "Status": "passing"}}
    assert requests.put(f"{agent.http}/v1/catalog/register", json=body, timeout=5).status_code == 200


def _put_coordinate(agent: AgentProcess, node: str, x: float, **extra: Any) -> requests.Response:
    return requests.put(f"{agent.http}/v1/coordinate/update",
                        json={"Node": node, "Segment": "", "Coord": _coord_json(x), **extra}, timeout=5)


def _coordinates(agent: AgentProcess, **params: str) -> dict[str, dict[str, Any]]:
    reply = requests.get(f"{agent.http}/v1/coordinate/nodes", params=params, timeout=5)
    assert reply.status_code == 200
    return {entry["Node"]: entry for entry in reply.json()}


def _wait_for_coordinates(agent: AgentProcess, wanted: dict[str, float]) -> None:
    """Until every node of `wanted` shows its coordinate (updates land with the leader's next batch)."""
    def landed() -> bool:
        found = _coordinates(agent)
        return all(node in found and found[node]["Coord"]["Vec"][0] == x for node, x in wanted.items())

    wait_until(landed, timeout=5)


def test_update_and_read_over_http(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    _register(dev_agent, "n1", "10.9.0.1")
    _register(dev_agent, "n2", "10.9.0.2")
    before = requests.get(f"{base}/v1/coordinate/nodes", timeout=5)
    index = int(before.headers["X-Consul-Index"])
    for node, x in (("n1", 0.001), ("n2", 0.030), ("ghost", 0.002)):
        reply = _put_coordinate(dev_agent, node, x)
        assert (reply.status_code, reply.text) == (200, "")
    # A blocking read wakes when the batch lands.
    blocked = requests.get(f"{base}/v1/coordinate/nodes", params={"index": str(index), "wait": "5s"}, timeout=10)
    assert int(blocked.headers["X-Consul-Index"]) > index
    _wait_for_coordinates(dev_agent, {"n1": 0.001, "n2": 0.030})
    found = _coordinates(dev_agent)
    assert "ghost" not in found  # not in the catalog: dropped, as Consul does
    assert found["n1"] == {"Node": "n1", "Segment": "", "Coord": _coord_json(0.001)}
    assert list(found) == sorted(found, key=str.lower)
    assert _coordinates(dev_agent, segment="other") == {}

    node = requests.get(f"{base}/v1/coordinate/node/n2", timeout=5)
    assert node.status_code == 200 and "X-Consul-Index" in node.headers
    assert node.json() == [{"Node": "n2", "Segment": "", "Coord": _coord_json(0.030)}]
    for path in ("/v1/coordinate/node/ghost", "/v1/coordinate/node/n2?segment=other"):
        missing = requests.get(base + path, timeout=5)
        assert (missing.status_code, missing.text) == (404, "")

    datacenters = requests.get(f"{base}/v1/coordinate/datacenters", timeout=5)
    assert datacenters.status_code == 200
    for dc in datacenters.json():
        assert set(dc) == {"Datacenter", "AreaID", "Coordinates"} and dc["AreaID"] == "wan"

    # Bad input: Consul's 400 for what its decoder refuses, 500 with the endpoint's reason otherwise.
    assert requests.post(f"{base}/v1/coordinate/update", json={}, timeout=5).status_code == 405
    bad_json = requests.put(f"{base}/v1/coordinate/update", data=b"{", timeout=5)
    assert bad_json.status_code == 400 and bad_json.text.startswith("Request decode failed: ")
    bad_vec = requests.put(f"{base}/v1/coordinate/update",
                           json={"Node": "n1", "Coord": {"Vec": ["x"], "Error": 0, "Adjustment": 0, "Height": 0}},
                           timeout=5)
    assert (bad_vec.status_code, bad_vec.text) == (
        400, "Request decode failed: json: cannot unmarshal string into Go struct field "
             "CoordinateUpdateRequest.Coord.Vec of type float64")
    unknown = requests.put(f"{base}/v1/coordinate/update", json={"Node": "n1", "Bogus": 1}, timeout=5)
    assert (unknown.status_code, unknown.text) == (400, 'Request decode failed: json: unknown field "Bogus"')
    wrong_dims = requests.put(f"{base}/v1/coordinate/update",
                              json={"Node": "n1", "Coord": _coord_json(0.001, dims=2)}, timeout=5)
    assert (wrong_dims.status_code, wrong_dims.text) == (500, "incompatible coordinate")
    no_coord = requests.put(f"{base}/v1/coordinate/update", json={"Node": "n1"}, timeout=5)
    assert (no_coord.status_code, no_coord.text) == (500, "invalid coordinate")

    # Deleting the node deletes its coordinate.
    assert requests.put(f"{base}/v1/catalog/deregister", json={"Node": "n1"}, timeout=5).status_code == 200
    assert "n1" not in _coordinates(dev_agent)


def test_near_sorts_catalog_and_health_reads(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    placement = {"n1": 0.001, "n2": 0.030, "n3": 0.010}
    for i, node in enumerate(placement, start=1):
        _register(dev_agent, node, f"10.9.1.{i}")
        assert _put_coordinate(dev_agent, node, placement[node]).status_code == 200
    assert _put_coordinate(dev_agent, dev_agent.node_name, 0.0).status_code == 200
    _wait_for_coordinates(dev_agent, placement)
    ours = set(placement)

    def order(path: str, near: str) -> list[str]:
        reply = requests.get(base + path, params={"near": near} if near else {}, timeout=5)
        assert reply.status_code == 200
        names = [item["Node"]["Node"] if isinstance(item["Node"], dict) else item["Node"] for item in reply.json()]
        return [name for name in names if name in ours]

    for path in ("/v1/catalog/nodes", "/v1/catalog/service/web", "/v1/health/service/web",
                 "/v1/health/checks/web", "/v1/health/state/passing"):
        assert order(path, "") == ["n1", "n2", "n3"], path
        assert order(path, "n2") == ["n2", "n3", "n1"], path
        assert order(path, "N2") == ["n2", "n3", "n1"], path
        assert order(path, "_agent") == ["n1", "n3", "n2"], path
        assert order(path, "nobody") == ["n1", "n2", "n3"], path

    # Moving coordinates moves the order, though the catalog's index stays where it was: not a cached body.
    catalog_index = requests.get(f"{base}/v1/catalog/nodes", timeout=5).headers["X-Consul-Index"]
    assert _put_coordinate(dev_agent, "n1", 0.045).status_code == 200
    _wait_for_coordinates(dev_agent, {"n1": 0.045})
    assert order("/v1/catalog/nodes", "n2") == ["n2", "n1", "n3"]
    assert requests.get(f"{base}/v1/catalog/nodes", timeout=5).headers["X-Consul-Index"] == catalog_index


def test_rtt_command(dev_agent: AgentProcess) -> None:
    _register(dev_agent, "n1", "10.9.2.1")
    _register(dev_agent, "n2", "10.9.2.2")
    for node, x in (("n1", 0.001), ("n2", 0.0316)):
        assert _put_coordinate(dev_agent, node, x).status_code == 200
    _wait_for_coordinates(dev_agent, {"n1": 0.001, "n2": 0.0316})
    assert ok("rtt", "n1", "N2", agent=dev_agent) == "Estimated n1 <-> N2 rtt: 30.600 ms (using LAN coordinates)\n"
    assert ok("rtt", f"-http-addr={dev_agent.http}", "n2", "n1") == (
        "Estimated n2 <-> n1 rtt: 30.600 ms (using LAN coordinates)\n")
    assert failed("rtt", "n1", "ghost", agent=dev_agent) == 'Could not find a coordinate for node "ghost"\n'
    assert failed("rtt", "ghost", "n1", agent=dev_agent) == 'Could not find a coordinate for node "ghost"\n'
    assert failed("rtt", agent=dev_agent).startswith("One or two node names must be specified\n\nUsage: consul rtt")
    assert failed("rtt", "a", "b", "c", agent=dev_agent).startswith("One or two node names must be specified\n")
    assert failed("rtt", "-wan", "n1", "n2", agent=dev_agent) == (
        "Node names must be specified as <node name>.<datacenter> with -wan\n")
    assert failed("rtt", "-wan", "nobody.dc1", "n2.dc1", agent=dev_agent) == (
        'Could not find a coordinate for node "nobody.dc1"\n')


def test_updates_through_a_follower_reach_every_server(loopback: str, tmp_path: Path) -> None:
    cluster = ServerSet(loopback, tmp_path, expect=2, extra_hcl='consul { coordinate { update_period = "100ms" } }')
    try:
        cluster.launch_all((2, 3))
        leader = cluster.agreed_leader((2, 3))
        follower = cluster.servers[5 - leader]
        _register(follower, "n1", "10.9.3.1")
        reply = _put_coordinate(follower, "n1", 0.002)
        assert (reply.status_code, reply.text) == (200, "")
        _wait_for_coordinates(follower, {"n1": 0.002})
        for server in cluster.servers.values():
            stale = requests.get(f"{server.http}/v1/coordinate/node/n1", params={"stale": ""}, timeout=5)
            assert stale.status_code == 200 and stale.json()[0]["Coord"] == _coord_json(0.002)
        wrong = _put_coordinate(follower, "n1", 0.002, Coord=_coord_json(0.002, dims=4))
        assert (wrong.status_code, wrong.text) == (500, "incompatible coordinate")
    finally:
        cluster.cleanup()


def test_agent_sends_its_own_coordinate(dev_agent: AgentProcess) -> None:
    """The agent's LAN coordinate reaches the catalog within seconds; its WAN one lists under datacenters."""
    node = dev_agent.node_name
    started = time.monotonic()
    entry = wait_until(lambda: _coordinates(dev_agent).get(node), timeout=6)
    assert time.monotonic() - started < 6
    assert entry["Segment"] == "" and len(entry["Coord"]["Vec"]) == 8
    assert set(entry["Coord"]) == {"Vec", "Error", "Adjustment", "Height"}

    datacenters = requests.get(f"{dev_agent.http}/v1/coordinate/datacenters", timeout=5).json()
    assert [(dc["Datacenter"], dc["AreaID"], [c["Node"] for c in dc["Coordinates"]]) for dc in datacenters] == [
        ("dc1", "wan", [node])]

    lan = ok("rtt", node, agent=dev_agent)
    assert re.fullmatch(rf"Estimated {node} <-> {node} rtt: \d+\.\d{{3}} ms \(using LAN coordinates\)\n", lan)
    wan = ok("rtt", "-wan", f"{node}.dc1", agent=dev_agent)
    assert re.fullmatch(rf"Estimated {node}\.dc1 <-> {node}\.dc1 rtt: \d+\.\d{{3}} ms \(using WAN coordinates\)\n",
                        wan)


def test_client_agent_coordinate_reaches_the_server(start_agent: Callable[..., AgentProcess], loopback: str,
                                                    tmp_path: Path) -> None:
    """A client agent's measured coordinate goes through its server into the catalog; rtt and near use it."""
    hcl = 'sync_coordinate_interval_min = "1s"\nconsul { coordinate { update_period = "100ms" } }'
    server = start_agent(host=2, args=("-server", "-bootstrap-expect", "1", "-data-dir", str(tmp_path / "s"),
                                       "-hcl", hcl), wait=20)
    # A client has no leader of its own to wait for: it is up once its coordinate has reached the server.
    client = AgentProcess(f"{loopback}.3", ("-data-dir", str(tmp_path / "c"), "-retry-join", server.address,
                                            "-retry-interval", "1s", "-hcl", hcl))
    try:
        client.launch()
        wait_until(lambda: {server.node_name, client.node_name} <= set(_coordinates(server)), timeout=15)
        estimate = ok("rtt", server.node_name, agent=client)
        assert re.fullmatch(rf"Estimated {server.node_name} <-> {client.node_name} rtt: \d+\.\d{{3}} ms "
                            r"\(using LAN coordinates\)\n", estimate)
        nodes = requests.get(f"{client.http}/v1/catalog/nodes", params={"near": "_agent"}, timeout=5).json()
        assert [n["Node"] for n in nodes] == [client.node_name, server.node_name]
    finally:
        client.cleanup()
