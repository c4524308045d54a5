"""`consul rtt [-wan] node1 [node2]`: the round trip between two nodes as their network coordinates estimate it,
worded as Consul's (`Estimated a <-> b rtt: 0.610 ms (using LAN coordinates)`).

LAN coordinates come from /v1/coordinate/nodes and are compared in a shared segment; WAN coordinates (node
names as `<node>.<datacenter>`) from /v1/coordinate/datacenters, within one area. The second node defaults
to the agent's own. Imports: stdlib, consulpy.cli, consulpy.endpoints.coordinate (segment intersection),
consulpy.serf (the coordinate record and distance).
"""

from __future__ import annotations

from typing import Any

from consulpy.cli.base import Call, Command, Fail, go_quote, out, usage_error
from consulpy.cli.goflags import FlagSet
from consulpy.cli.http import ApiError, Client
from consulpy.endpoints.coordinate import intersect
from consulpy.serf.coordinate import distance
from consulpy.serf.messages import Coordinate as VivaldiCoordinate


def _flags(flags: FlagSet) -> None:
    flags.add("wan", "Use WAN coordinates instead of LAN coordinates.", kind="bool", default=False)


def _coordinate(raw: dict[str, Any]) -> VivaldiCoordinate:
    coord = raw.get("Coord") or {}
    return VivaldiCoordinate(tuple(coord.get("Vec") or ()), float(coord.get("Error", 0.0)),
                             float(coord.get("Adjustment", 0.0)), float(coord.get("Height", 0.0)))


def _agent_config(client: Client) -> dict[str, Any]:
    try:
        info = client.get_json("/v1/agent/self") or {}
    except ApiError as exc:
        raise Fail(f"Unable to look up agent info: {exc}") from None
    return info.get("Config") or {}


def _get(client: Client, path: str) -> Any:
    try:
        return client.get_json(path) or []
    except ApiError as exc:
        raise Fail(f"Error getting coordinates: {exc}") from None


def _lan(client: Client, nodes: list[str]) -> tuple[VivaldiCoordinate | None, VivaldiCoordinate | None]:
    if len(nodes) < 2:
        nodes.append(str(_agent_config(client).get("NodeName", "")))
    first: dict[str, VivaldiCoordinate] = {}
    second: dict[str, VivaldiCoordinate] = {}
    for entry in _get(client, "/v1/coordinate/nodes"):
        node, segment = str(entry.get("Node", "")), str(entry.get("Segment", ""))
        if node.casefold() == nodes[0].casefold():
            first[segment] = _coordinate(entry)
        if node.casefold() == nodes[1].casefold():
            second[segment] = _coordinate(entry)
    return intersect(first, second)


def _wan(client: Client, nodes: list[str]) -> tuple[VivaldiCoordinate | None, VivaldiCoordinate | None]:
    if len(nodes) < 2:
        config = _agent_config(client)
        nodes.append(f"{config.get('NodeName', '')}.{config.get('Datacenter', '')}")
    parts = [name.split(".") for name in nodes]
    if any(len(part) != 2 for part in parts):
        raise Fail("Node names must be specified as <node name>.<datacenter> with -wan")
    (node1, dc1), (node2, dc2) = parts
    area1 = area2 = None
    coord1 = coord2 = None
    for dc in _get(client, "/v1/coordinate/datacenters"):
        for entry in dc.get("Coordinates") or []:
            name = str(entry.get("Node", ""))
            if dc.get("Datacenter") == dc1 and name.casefold() == node1.casefold():
                area1, coord1 = dc.get("AreaID"), _coordinate(entry)
            if dc.get("Datacenter") == dc2 and name.casefold() == node2.casefold():
                area2, coord2 = dc.get("AreaID"), _coordinate(entry)
            if area1 == area2 and coord1 is not None and coord2 is not None:
                return coord1, coord2
    # Coordinates of different areas cannot be compared: report neither as found.
    return None, None


def rtt(call: Call) -> int:
    nodes = list(call.args)
    if not 1 <= len(nodes) <= 2:
        return usage_error(call, "One or two node names must be specified")
    client = call.client()
    wan = call.values["wan"]
    coord1, coord2 = (_wan if wan else _lan)(client, nodes)
    if coord1 is None:
        raise Fail(f"Could not find a coordinate for node {go_quote(nodes[0])}")
    if coord2 is None:
        raise Fail(f"Could not find a coordinate for node {go_quote(nodes[1])}")
    # serf's DistanceTo is a time.Duration: whole nanoseconds.
    nanoseconds = int(distance(coord1, coord2) * 1e9)
    out(f"Estimated {nodes[0]} <-> {nodes[1]} rtt: {nanoseconds / 1e6:.3f} ms "
        f"(using {'WAN' if wan else 'LAN'} coordinates)")
    return 0


COMMANDS = [
    Command("rtt", "Estimates network round trip time between nodes",
            "Usage: consul rtt [options] node1 [node2]\n\n"
            "  Estimates the round trip time between two nodes from the cluster's network\n"
            "  coordinates. The second node defaults to the agent's own. Node names are as\n"
            "  \"consul members\" shows them, not addresses.\n\n"
            "  LAN coordinates are used by default; with -wan, WAN coordinates of servers are\n"
            "  used and each name takes its datacenter as a suffix (\"myserver.dc1\"). LAN and\n"
            "  WAN coordinates come from separate gossip pools and cannot be compared.",
            rtt, _flags, "client"),
]
