"""HTTP handlers for /v1/kv/: GET (single key, ?recurse, ?keys, ?raw, blocking), PUT (set, ?cas, ?acquire,
?release, ?flags) and DELETE (?recurse, ?cas), with Consul's key validation and error texts.

The key is taken from the raw request path and percent-decoded here, strictly: invalid escapes, invalid
UTF-8, `.`/`..` segments (plain or URL-encoded, also double-encoded), non-printable characters and
leading/trailing whitespace are refused with 400 (CVE-2025-11392); empty segments (`a//b`) get Go's 301 to
the cleaned path. Imports: stdlib, aiohttp (request type), consulpy.endpoints, consulpy.http, consulpy.state.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote

from aiohttp.web import BaseRequest

from consulpy.endpoints.query import QueryOptions
from consulpy.http.errors import HTTPError, bad_request
from consulpy.http.params import MAX_UINT64, query_options
from consulpy.http.render import kv_json
from consulpy.http.server import Reply, Route, read_body
from consulpy.state import DirEntry, KVOp
from consulpy.state.kv_ops import go_quote

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

KV_PREFIX = "/v1/kv/"
KV_MAX_VALUE_SIZE_DOCS = "https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size"
_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_DOT_SEGMENT = re.compile(r"(?:^|[/\\])\.{1,2}(?:[/\\]|$)")
_PATH_SAFE = "/!$&'()*+,;=:@~"


def _decode_path(raw: str) -> str:
    """Percent-decode a raw URL path (ASCII: the HTTP parser refuses other bytes) strictly, then as UTF-8."""
    data = raw.encode("latin-1")
    bad = _ESCAPE.search(data)
    if bad is not None:
        raise bad_request(f"invalid URL escape {go_quote(data[bad.start():bad.start() + 3].decode('latin-1'))}")
    decoded = re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes((int(m.group(1), 16),)), data)
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("Invalid key: key is not valid UTF-8") from None


def _hides_dot_segment(key: str) -> bool:
    """True when further rounds of percent-decoding turn the key into one with `.`/`..` segments."""
    for _ in range(3):
        decoded = unquote(key, errors="replace")
        if decoded == key:
            return False
        if _DOT_SEGMENT.search(decoded):
            return True
        key = decoded
    return False


def kv_key(request: BaseRequest) -> str | Reply:
    """The decoded key after /v1/kv/, or a 301 Reply to the cleaned path; invalid keys raise 400."""
    raw_path, _, raw_query = request.raw_path.partition("?")
    if _DOT_SEGMENT.search(raw_path):
        raise bad_request("URL path contains invalid traversal sequence")
    if "%" in raw_path or not raw_path.isascii():
        path = _decode_path(raw_path)
        key = path.removeprefix(KV_PREFIX)
        if _DOT_SEGMENT.search(path) or _hides_dot_segment(key):
            raise bad_request("URL path contains encoded traversal sequence")
    else:
        # Nothing is escaped: the path is the key as sent, already checked for dot segments above.
        path = raw_path
        key = path.removeprefix(KV_PREFIX)
    if not key.isprintable():
        raise bad_request("Invalid key: key contains non-printable characters")
    if key != key.strip():
        raise bad_request("Invalid key: key must not begin or end with whitespace")
    if "//" in path:
        cleaned = re.sub("/{2,}", "/", path)
        location = quote(cleaned, safe=_PATH_SAFE)
        if raw_query:
            location += "?" + raw_query
        return Reply(status=301, headers={"Location": location})
    return key


def _conflicting(request: BaseRequest, *flags: str) -> None:
    """Two non-composable flags → Consul's 400 `Conflicting flags: <all params, encoded>`."""
    if sum(1 for flag in flags if flag in request.query) < 2:
        return
    grouped: dict[str, list[str]] = {}
    for name, value in request.query.items():
        grouped.setdefault(name, []).append(value)
    encoded = "&".join(f"{quote_plus(name)}={quote_plus(value)}"
                       for name in sorted(grouped) for value in grouped[name])
    raise bad_request(f"Conflicting flags: {encoded}\n")


def _uint_param(request: BaseRequest, name: str) -> int:
    """A uint64 query parameter; bad text is Consul's 500 with Go's strconv.ParseUint message."""
    text = request.query[name]
    if not text.isascii() or not text.isdigit():
        raise HTTPError(500, f"strconv.ParseUint: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if value > MAX_UINT64:
        raise HTTPError(500, f"strconv.ParseUint: parsing {go_quote(text)}: value out of range")
    return value


def _separator(request: BaseRequest) -> str:
    """`separator`, or its historic misspelling `seperator` (the correct spelling wins)."""
    query = request.query
    if "separator" in query:
        return query["separator"]
    return query.get("seperator", "")


def _entries_json(entries: Iterable[DirEntry]) -> list[dict[str, Any]]:
    return [kv_json(entry) for entry in entries]


async def _get(request: BaseRequest, agent: Agent, key: str, opts: QueryOptions) -> Reply:
    # Bodies are built by module functions bound with partial, not closures: this frame stays alive while
    # a blocking query waits, and closures would give it a cell per captured name.
    query = request.query
    if "keys" in query:
        meta, keys = await agent.kvs.list_keys(opts, key, _separator(request))
        if not keys and key:
            return Reply(meta=meta, status=404)
        return Reply(meta=meta, build=partial(list, keys))
    if "recurse" in query:
        meta, entries = await agent.kvs.list_entries(opts, key)
        if not entries:
            return Reply(meta=meta, status=404)
        return Reply(meta=meta, build=partial(_entries_json, entries))
    if not key:
        raise bad_request("Missing key name")
    meta, entry = await agent.kvs.get(opts, key)
    if entry is None:
        return Reply(meta=meta, status=404)
    if "raw" in query:
        return Reply(meta=meta, raw=entry.value or b"", content_type="text/plain",
                     headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})
    return Reply(meta=meta, build=partial(_entries_json, (entry,)))


async def _put(request: BaseRequest, agent: Agent, key: str) -> bool:
    if not key:
        raise bad_request("Missing key name")
    _conflicting(request, "cas", "acquire", "release")
    query = request.query
    verb, flags, index, session = "set", 0, 0, ""
    if "flags" in query:
        flags = _uint_param(request, "flags")
    if "cas" in query:
        verb, index = "cas", _uint_param(request, "cas")
    if "acquire" in query:
        verb, session = "lock", query["acquire"]
    if "release" in query:
        verb, session = "unlock", query["release"]
    limit = agent.config.limits.kv_max_value_size

    def too_large(size: int) -> HTTPError:
        return HTTPError(413, f"Request body({size} bytes) too large, max size: {limit} bytes. "
                              f"See {KV_MAX_VALUE_SIZE_DOCS}.")

    value = await read_body(request, limit, too_large)
    applied = await agent.kvs.apply(KVOp(verb, key, value or None, flags, index, session))
    return True if verb == "set" else applied


async def _delete(request: BaseRequest, agent: Agent, key: str) -> bool:
    _conflicting(request, "recurse", "cas")
    query = request.query
    verb, index = "delete", 0
    if "recurse" in query:
        verb = "delete-tree"
    elif not key:
        raise bad_request("Missing key name")
    if "cas" in query:
        verb, index = "delete-cas", _uint_param(request, "cas")
    applied = await agent.kvs.apply(KVOp(verb, key, index=index))
    return applied if verb == "delete-cas" else True


async def _ready(reply: Reply) -> Reply:
    return reply


def kv_endpoint(request: BaseRequest, agent: Agent, tail: str) -> Awaitable[Any]:
    """Validate, then hand back the method's coroutine itself: a held blocking GET keeps one coroutine frame
    (`_get`'s) rather than two. Bad input raises here, inside the server's handler call."""
    key = kv_key(request)
    if isinstance(key, Reply):
        return _ready(key)
    opts = query_options(request, agent.datacenter)
    if request.method == "GET":
        return _get(request, agent, key, opts)
    if request.method == "PUT":
        return _put(request, agent, key)
    return _delete(request, agent, key)


ROUTES = [
    Route(KV_PREFIX, ("GET", "PUT", "DELETE"), kv_endpoint),
]
