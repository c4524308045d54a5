"""HTTP handlers for /v1/session/*: create, destroy, renew, info, node, list.

The create body is decoded as Consul's Session.UnmarshalJSON does: keys match case-insensitively,
unknown keys are ignored (the custom unmarshaller does not forbid them), `LockDelay` is a Go duration
string or a number where values under 1000 mean seconds, and the default `serfHealth` node check is
dropped when the body lists checks (`"Checks": []` means none). Imports: stdlib, aiohttp (request type),
consulpy.duration, consulpy.http, consulpy.state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp.web import BaseRequest

from consulpy.duration import SECOND, DurationError, parse_duration
from consulpy.http.decode import STR, STRLIST, UINT, DecodeError, Kind, Schema, decode_object, listof, parse_json
from consulpy.http.errors import HTTPError, bad_request
from consulpy.http.params import query_options
from consulpy.http.render import session_json
from consulpy.http.server import Reply, Route, read_body
from consulpy.state import SERF_CHECK_ID, Session

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

MAX_BODY = 1 << 20
DEFAULT_LOCK_DELAY = 15 * SECOND
LOCK_DELAY_MIN_THRESHOLD = 1000  # Consul's lockDelayMinThreshold: smaller values are seconds

SERVICE_CHECK = Schema("ServiceCheck", {"ID": STR, "Namespace": STR})
SESSION = Schema("Session", {
    "ID": STR, "Name": STR, "Node": STR, "LockDelay": Kind("any", go="interface {}"), "Behavior": STR,
    "TTL": STR, "NodeChecks": STRLIST, "ServiceChecks": listof(SERVICE_CHECK), "Checks": STRLIST,
    "CreateIndex": UINT, "ModifyIndex": UINT, "Namespace": STR, "Partition": STR,
})


_JSON_KINDS = {list: "array", str: "string", bool: "bool"}


def _too_large(size: int) -> HTTPError:
    return HTTPError(413, f"Request body({size} bytes) too large, max size: {MAX_BODY} bytes.")


def lock_delay(value: Any) -> int:
    """Consul's LockDelay rule: a duration string or a number of ns; under 1000 it is read as seconds."""
    if isinstance(value, str):
        delay = parse_duration(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        delay = int(value)
    else:
        delay = 0
    return delay * SECOND if delay < LOCK_DELAY_MIN_THRESHOLD else delay


def _present_as_null(data: dict[str, Any], field: str) -> bool:
    """A slice sent as JSON null: Go sets it to nil, which differs from leaving the default in place."""
    return any(k.lower() == field.lower() and v is None for k, v in data.items())


def decode_session(body: bytes, node_name: str) -> Session:
    """The create body over Consul's defaults (this node, serfHealth, 15s lock-delay, release)."""
    data = parse_json(body)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DecodeError(f"json: cannot unmarshal {_JSON_KINDS.get(type(data), 'number')} into Go value of "
                          f"type structs.Session")
    known = {k: v for k, v in data.items() if SESSION.canonical(k) is not None}
    raw = decode_object(known, SESSION)
    delay = DEFAULT_LOCK_DELAY
    if "LockDelay" in raw:
        try:
            delay = lock_delay(raw["LockDelay"])
        except DurationError as exc:
            raise DecodeError(str(exc)) from None
    checks: list[str] | None = [SERF_CHECK_ID]
    if "Checks" in raw:
        checks = raw["Checks"]
    elif _present_as_null(known, "Checks"):
        checks = None
    node_checks = [SERF_CHECK_ID]
    if "NodeChecks" in raw:
        node_checks = raw["NodeChecks"]
    elif _present_as_null(known, "NodeChecks"):
        node_checks = []
    # Consul's fixupEmptySessionChecks: legacy Checks and NodeChecks both default to serfHealth.
    if not checks:
        node_checks, checks = [], []
    elif checks == [SERF_CHECK_ID] or not node_checks:
        checks = []
    merged = list(dict.fromkeys([*node_checks, *checks]))
    service_checks = tuple({"ID": c.get("ID", ""), "Namespace": c.get("Namespace", "")}
                           for c in raw.get("ServiceChecks", ()))
    return Session(id="", node=raw.get("Node", node_name), name=raw.get("Name", ""), lock_delay=delay,
                   behavior=raw.get("Behavior", ""), ttl=raw.get("TTL", ""), node_checks=tuple(merged),
                   service_checks=service_checks)


def _check_dc(request: BaseRequest, agent: Agent) -> None:
    """Writes only look at `dc` (and the token): another datacenter has no path from here."""
    dc = request.query.get("dc", "")
    if dc and dc != agent.datacenter:
        raise HTTPError(500, "No path to datacenter")


def _session_id(tail: str) -> str:
    if not tail:
        raise bad_request("Missing session")
    return tail


async def session_create(request: BaseRequest, agent: Agent, tail: str) -> Any:
    _check_dc(request, agent)
    body = await read_body(request, MAX_BODY, _too_large)
    if body:
        try:
            session = decode_session(body, agent.node_name)
        except DecodeError as exc:
            raise bad_request(f"Request decode failed: {exc}") from None
    else:
        session = Session(id="", node=agent.node_name, lock_delay=DEFAULT_LOCK_DELAY)
    return {"ID": await agent.sessions.create(session)}


async def session_destroy(request: BaseRequest, agent: Agent, tail: str) -> Any:
    _check_dc(request, agent)
    await agent.sessions.destroy(_session_id(tail))
    return True


async def session_renew(request: BaseRequest, agent: Agent, tail: str) -> Any:
    query_options(request, agent.datacenter)
    session_id = _session_id(tail)
    session = await agent.sessions.renew(session_id)
    if session is None:
        raise HTTPError(404, f"Session id '{session_id}' not found")
    return [session_json(session)]


async def session_info(request: BaseRequest, agent: Agent, tail: str) -> Any:
    opts = query_options(request, agent.datacenter)
    meta, session = await agent.sessions.get(opts, _session_id(tail))
    return Reply([session_json(session)] if session is not None else [], meta)


async def session_node(request: BaseRequest, agent: Agent, tail: str) -> Any:
    opts = query_options(request, agent.datacenter)
    if not tail:
        raise bad_request("Missing node name")
    meta, sessions = await agent.sessions.node_sessions(opts, tail)
    return Reply([session_json(s) for s in sessions], meta)


async def session_list(request: BaseRequest, agent: Agent, tail: str) -> Any:
    opts = query_options(request, agent.datacenter)
    meta, sessions = await agent.sessions.list_sessions(opts)
    return Reply([session_json(s) for s in sessions], meta)


GET = ("GET",)
PUT = ("PUT",)

ROUTES = [
    Route("/v1/session/create", PUT, session_create),
    Route("/v1/session/destroy/", PUT, session_destroy),
    Route("/v1/session/renew/", PUT, session_renew),
    Route("/v1/session/info/", GET, session_info),
    Route("/v1/session/node/", GET, session_node),
    Route("/v1/session/list", GET, session_list),
]
