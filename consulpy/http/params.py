"""Query-string parsing with Consul's rules: presence flags, Go bools, index/wait, consistency, tokens.

Imports: stdlib, aiohttp (request type), consulpy.duration, consulpy.endpoints.query, consulpy.http.errors.
"""

from __future__ import annotations

from aiohttp.web import BaseRequest

from consulpy.duration import DurationError, parse_duration
from consulpy.endpoints.query import QueryOptions
from consulpy.http.errors import HTTPError, bad_request

MAX_UINT64 = (1 << 64) - 1


def parse_uint(text: str) -> int | None:
    if not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if value <= MAX_UINT64 else None


def get_token(request: BaseRequest) -> str:
    """The ACL token: `?token=`, then `X-Consul-Token`, then `Authorization: Bearer`."""
    token = request.query.get("token", "")
    if token:
        return token
    token = request.headers.get("X-Consul-Token", "")
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    parts = auth.split(None, 1)
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1].strip()
    return ""


def query_options(request: BaseRequest, datacenter: str) -> QueryOptions:
    """Parse `index`, `wait`, `stale`/`consistent`, `dc` and the token, or raise Consul's 400/500."""
    query = request.query
    opts = QueryOptions(datacenter=datacenter, token=get_token(request))
    dc = query.get("dc", "")
    if dc and dc != datacenter:
        raise HTTPError(500, "No path to datacenter")
    if "index" in query:
        index = parse_uint(query["index"])
        if index is None:
            raise bad_request("Invalid index")
        opts.min_index = index
    if "wait" in query:
        try:
            opts.max_wait_ns = parse_duration(query["wait"])
        except DurationError:
            raise bad_request("Invalid wait time") from None
    stale = "stale" in query
    consistent = "consistent" in query
    if stale and consistent:
        raise bad_request("Cannot specify ?stale with ?consistent, conflicting semantics.")
    if "max_stale" in query:
        try:
            parse_duration(query["max_stale"])
        except DurationError:
            raise bad_request(f'Invalid max_stale value "{query["max_stale"]}"') from None
    if "cached" in query and consistent:
        raise bad_request("Cannot specify ?cached with ?consistent, conflicting semantics.")
    if stale:
        opts.consistency = "stale"
    elif consistent:
        opts.consistency = "consistent"
    return opts


def node_meta_filters(request: BaseRequest) -> dict[str, str]:
    """`node-meta=key:value`, repeatable; all must match."""
    filters: dict[str, str] = {}
    for item in request.query.getall("node-meta", []):
        key, _, value = item.partition(":")
        filters[key] = value
    return filters
