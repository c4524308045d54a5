"""HTTP handlers for /v1/event/: `PUT fire/<name>` (payload body, `node`/`service`/`tag` filters, `dc`) and
`GET list` (`name`, blocking on `index`/`wait` as Consul's agent-local loop does: an exact index match parks
until the next event or the wait, up to 600 s, without jitter).

The list's X-Consul-Index comes from the last event's ID (Consul's uuidToUint64), so it is not monotonic and
only equality blocks. Imports: stdlib, aiohttp (request type), consulpy.agent.events, consulpy.duration,
consulpy.http.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp.web import BaseRequest

from consulpy.agent.events import SERF_EVENT_SIZE_LIMIT, TOO_LARGE_BEFORE_ENCODING, UserEventError, list_index, validate
from consulpy.duration import SECOND, DurationError, parse_duration
from consulpy.http.errors import HTTPError, bad_request
from consulpy.http.params import parse_uint
from consulpy.http.server import Reply, Route, read_body

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent
    from consulpy.agent.events import UserEvent

FIRE_PREFIX = "/v1/event/fire/"
# Consul's agent-level maxQueryTime: the event list's default and longest wait, whatever max_query_time says.
MAX_LIST_WAIT = 600 * SECOND


def _too_large(size: int) -> HTTPError:
    # Any body past Serf's limit fails its first size check, so it need not be kept to be refused.
    return HTTPError(500, TOO_LARGE_BEFORE_ENCODING)


async def fire(request: BaseRequest, agent: Agent, tail: str) -> Any:
    name = request.path.removeprefix(FIRE_PREFIX)
    if not name:
        raise bad_request("Missing name")
    query = request.query
    dc = query.get("dc", "") or agent.datacenter
    node_filter, service_filter, tag_filter = query.get("node", ""), query.get("service", ""), query.get("tag", "")
    # Checked before the body is read, so a bad filter is reported before an oversized payload, as in Consul.
    try:
        validate(name, node_filter, service_filter, tag_filter)
    except UserEventError as exc:
        raise HTTPError(500, str(exc)) from None
    if dc != agent.datacenter:
        raise HTTPError(500, "No path to datacenter")
    # As Go's handler: only a body announced by a positive Content-Length is the payload.
    payload = None
    if request.content_length:
        payload = await read_body(request, SERF_EVENT_SIZE_LIMIT, _too_large)
    try:
        event = agent.events.fire(name, payload, node_filter, service_filter, tag_filter)
    except UserEventError as exc:
        raise HTTPError(500, str(exc)) from None
    return event.json()


def _list_wait(request: BaseRequest) -> tuple[int, int]:
    """Consul's parseWait: `wait` is checked before `index`; returns (index, wait in ns)."""
    query = request.query
    wait = 0
    if query.get("wait", ""):
        try:
            wait = parse_duration(query["wait"])
        except DurationError:
            raise bad_request("Invalid wait time") from None
    index = 0
    if query.get("index", ""):
        parsed = parse_uint(query["index"])
        if parsed is None:
            raise bad_request("Invalid index")
        index = parsed
    return index, wait


async def list_events(request: BaseRequest, agent: Agent, tail: str) -> Reply:
    min_index, wait = _list_wait(request)
    name = request.query.get("name", "")
    events = agent.events
    loop = asyncio.get_running_loop()
    # A wait of zero (or one Go would leave unbounded) means the longest wait.
    deadline = loop.time() + (min(wait, MAX_LIST_WAIT) if wait > 0 else MAX_LIST_WAIT) / SECOND
    while True:
        found: list[UserEvent] = events.events(name)
        index = list_index(found)
        if min_index == 0 or index != min_index or loop.time() >= deadline:
            break
        await events.wait_for_new(deadline)
    return Reply(body=[event.json() for event in found], headers={"X-Consul-Index": str(max(index, 1))})


ROUTES = [
    Route(FIRE_PREFIX, ("PUT",), fire),
    Route("/v1/event/list", ("GET",), list_events),
]
