"""HTTP handlers for /v1/coordinate/: `GET datacenters` (servers' WAN coordinates), `GET nodes` (blocking),
`GET node/<node>` (404 when it has none), both with `?segment=`, and `PUT update` (one node's LAN coordinate).

Shapes are Consul's: an entry is `{"Node","Segment","Coord":{"Vec","Error","Adjustment","Height"}}`, a datacenter
map `{"Datacenter","AreaID","Coordinates"}`. With `disable_coordinates` every route answers 401.
Imports: stdlib, aiohttp (request type), consulpy.endpoints.coordinate, consulpy.http, consulpy.serf (the
coordinate record), consulpy.state.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp.web import BaseRequest

from consulpy.endpoints.coordinate import DatacenterMap
from consulpy.gojson import json_type
from consulpy.http.catalog import MAX_BODY, _too_large
from consulpy.http.decode import STR, WRITE_REQUEST, DecodeError, Kind, Schema, decode_body, obj
from consulpy.http.errors import HTTPError, bad_request
from consulpy.http.params import query_options
from consulpy.http.server import Reply, Route, read_body
from consulpy.serf.messages import Coordinate as VivaldiCoordinate
from consulpy.state import CoordinateEntry

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

_VEC = Kind("any", go="[]float64")
_FLOAT = Kind("any", go="float64")
COORDINATE = Schema("Coordinate", {"Vec": _VEC, "Error": _FLOAT, "Adjustment": _FLOAT, "Height": _FLOAT})
COORDINATE_UPDATE = Schema("CoordinateUpdateRequest", {
    "Datacenter": STR, "Node": STR, "Segment": STR, "Coord": obj(COORDINATE), "Token": STR,
    "WriteRequest": obj(WRITE_REQUEST), "Namespace": STR, "Partition": STR,
})
_WHERE = "CoordinateUpdateRequest.Coord"


def _check_disabled(agent: Agent) -> None:
    if agent.config.raw.get("disable_coordinates") is True:
        raise HTTPError(401, "Coordinate support disabled")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float(raw: dict[str, Any], name: str) -> float:
    value = raw.get(name, 0.0)
    if not _number(value):
        raise DecodeError(f"json: cannot unmarshal {json_type(value)} into Go struct field {_WHERE}.{name} of "
                          "type float64")
    return float(value)


def _vivaldi(raw: dict[str, Any]) -> VivaldiCoordinate:
    """serf's coordinate.Coordinate from its decoded JSON object, refused where Go's decoder refuses it."""
    vec = raw.get("Vec", [])
    if not isinstance(vec, list):
        raise DecodeError(f"json: cannot unmarshal {json_type(vec)} into Go struct field {_WHERE}.Vec of type "
                          "[]float64")
    for item in vec:
        if not _number(item):
            raise DecodeError(f"json: cannot unmarshal {json_type(item)} into Go struct field {_WHERE}.Vec of "
                              "type float64")
    return VivaldiCoordinate(tuple(float(v) for v in vec), _float(raw, "Error"), _float(raw, "Adjustment"),
                             _float(raw, "Height"))


def entry_json(entry: CoordinateEntry) -> dict[str, Any]:
    return {"Node": entry.node, "Segment": entry.segment,
            "Coord": {"Vec": list(entry.vec), "Error": entry.error, "Adjustment": entry.adjustment,
                      "Height": entry.height}}


def datacenter_json(dc: DatacenterMap) -> dict[str, Any]:
    return {"Datacenter": dc.datacenter, "AreaID": dc.area_id,
            "Coordinates": [entry_json(entry) for entry in dc.coordinates]}


def _in_segment(request: BaseRequest, entries: list[CoordinateEntry]) -> list[CoordinateEntry]:
    """`?segment=` keeps one segment's entries (an empty value: the default segment's)."""
    if "segment" not in request.query:
        return entries
    segment = request.query["segment"]
    return [entry for entry in entries if entry.segment == segment]


def _entries_body(request: BaseRequest, entries: list[CoordinateEntry]) -> list[Any]:
    return [entry_json(entry) for entry in _in_segment(request, entries)]


async def coordinate_datacenters(request: BaseRequest, agent: Agent, tail: str) -> Any:
    _check_disabled(agent)
    return [datacenter_json(dc) for dc in agent.coordinate.list_datacenters()]


async def coordinate_nodes(request: BaseRequest, agent: Agent, tail: str) -> Any:
    _check_disabled(agent)
    opts = query_options(request, agent.datacenter)
    meta, entries = await agent.coordinate.list_nodes(opts)
    return Reply(meta=meta, build=partial(_entries_body, request, entries))


async def coordinate_node(request: BaseRequest, agent: Agent, tail: str) -> Any:
    _check_disabled(agent)
    opts = query_options(request, agent.datacenter)
    meta, entries = await agent.coordinate.node(opts, tail)
    found = _in_segment(request, entries)
    if not found:
        return Reply(meta=meta, status=404)
    return Reply([entry_json(entry) for entry in found], meta)


async def coordinate_update(request: BaseRequest, agent: Agent, tail: str) -> Any:
    _check_disabled(agent)
    try:
        raw = decode_body(await read_body(request, MAX_BODY, _too_large), COORDINATE_UPDATE)
        coord = _vivaldi(raw["Coord"]) if "Coord" in raw else None
    except DecodeError as exc:
        raise bad_request(f"Request decode failed: {exc}") from None
    query_options(request, agent.datacenter)
    await agent.coordinate.update(raw.get("Node", ""), raw.get("Segment", ""), coord)
    return None


GET = ("GET",)

ROUTES = [
    Route("/v1/coordinate/datacenters", GET, coordinate_datacenters),
    Route("/v1/coordinate/nodes", GET, coordinate_nodes),
    Route("/v1/coordinate/node/", GET, coordinate_node),
    Route("/v1/coordinate/update", ("PUT",), coordinate_update),
]
