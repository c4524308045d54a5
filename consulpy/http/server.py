"""The HTTP server: routing by Consul's path table, the response conventions, and the listener.

Handlers are `async (request, agent, tail) -> body`, where `tail` is the path after a prefix route.
A body of None is an empty 200, a `Reply` sets status/headers/meta, anything else is rendered as JSON;
an `HTTPError` becomes its status with a plain-text reason, as Consul's `wrap` does. Hot reads hand over
a body builder and are rendered through the per-index cache (http/cache.py).
Imports: aiohttp, orjson, stdlib, consulpy.agent.definitions (its error), consulpy.endpoints, consulpy.filter,
consulpy.http, consulpy.server, consulpy.state.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

import orjson
from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11
from aiohttp.web import BaseRequest

from consulpy.agent.definitions import RegistrationError
from consulpy.endpoints.query import QueryMeta
from consulpy.http.cache import RenderCache, cache_key
from consulpy.http.errors import HTTPError
from consulpy.http.params import get_token
from consulpy.server.consensus import NoLeaderError
from consulpy.server.rpc import RPCError
from consulpy.state import StateError

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

log = logging.getLogger("consulpy.http")

Handler = Callable[[BaseRequest, "Agent", str], Awaitable[Any]]

JSON = "application/json"
TEXT_UTF8 = "text/plain; charset=utf-8"

REASONS = {status.value: status.phrase for status in HTTPStatus}
# What aiohttp refuses in a header line (header injection); such a response takes aiohttp's path and its error.
_FORBIDDEN_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(slots=True)
class Reply:
    """A response with more than a JSON body: a status, query metadata headers, raw bytes, headers.

    `build` makes the JSON body on demand and must depend only on the request and `meta.index`: the
    server serves the body it already rendered for the same request at that index instead of calling it.
    """

    body: Any = None
    meta: QueryMeta | None = None
    status: int = 200
    raw: bytes | None = None
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    build: Callable[[], Any] | None = None


@dataclass(slots=True, frozen=True)
class Route:
    """`path` is exact, or a prefix when it ends with "/" (Go ServeMux subtree semantics)."""

    path: str
    methods: tuple[str, ...]
    handler: Handler


class WrittenResponse:
    """A response serialised here in one piece and handed to aiohttp's request loop instead of a web.Response.

    The loop only calls `prepare` and `write_eof` and reads `keep_alive`; building the bytes here skips
    aiohttp's Response object, its header multidict and header preparation, which cost as much as the rest of
    a cached read (and most of the wake-up of many held blocking queries). The head is what aiohttp writes
    for a web.Response with the same headers: ours in order, then Content-Length, Date, Server, and
    Connection where the HTTP version needs it.
    """

    __slots__ = ("_data", "keep_alive")

    def __init__(self, data: bytes, keep_alive: bool) -> None:
        self._data = data
        self.keep_alive = keep_alive

    async def prepare(self, request: BaseRequest) -> None:
        await request.writer.write_eof(self._data)

    async def write_eof(self, data: bytes = b"") -> None:
        """Nothing is left to write: `prepare` wrote the whole response."""


def meta_headers(meta: QueryMeta) -> dict[str, str]:
    return {
        "X-Consul-Index": str(max(meta.index, 1)),
        "X-Consul-Knownleader": "true" if meta.known_leader else "false",
        "X-Consul-Lastcontact": str(meta.last_contact_ms),
        "X-Consul-Effective-Consistency": meta.consistency,
    }


def filter_items(request: BaseRequest, items: Iterable[Any]) -> list[Any]:
    """Apply `?filter=` to JSON-shaped items; a bad expression is Consul's 500."""
    expression = request.query.get("filter", "")
    if not expression:
        return list(items)
    from consulpy.filter import FilterError, compile_filter  # with the first ?filter=: ~6 ms off every agent start

    try:
        matcher = compile_filter(expression)
    except FilterError as exc:
        raise HTTPError(500, f"Failed to create boolean expression evaluator: {exc}") from None
    return [item for item in items if matcher.matches(item)]


async def read_body(request: BaseRequest, limit: int, too_large: Callable[[int], HTTPError]) -> bytes:
    """The whole request body, refusing more than `limit` bytes by Content-Length or as it streams in.

    A refused body is still drained (counted, not kept) so the error can report its size, as Consul does.
    """
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(length)
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.read(1 << 16):
        size += len(chunk)
        if size > limit:
            while chunk := await request.content.read(1 << 16):
                size += len(chunk)
            raise too_large(size)
        parts.append(chunk)
    return b"".join(parts)


class HTTPServer:
    """Routes requests to handlers and renders their results the way Consul's HTTP server does."""

    def __init__(self, agent: Agent, routes: Iterable[Route]) -> None:
        self.agent = agent
        self._exact: dict[str, Route] = {}
        self._prefixes: dict[str, Route] = {}
        for route in routes:
            if route.path.endswith("/") and route.path != "/":
                self._prefixes[route.path] = route
            else:
                self._exact[route.path] = route
        self._longest_prefix = max((len(path) for path in self._prefixes), default=0)
        self._runner: web.ServerRunner | None = None
        self._extra_headers: dict[str, str] = {"X-Consul-Default-Acl-Policy": "allow"}
        self._extra_headers.update(agent.config.http_config.response_headers)
        self.render_cache = RenderCache()
        self._last_written: tuple[tuple[Any, ...], WrittenResponse] | None = None

    def _match(self, path: str) -> tuple[Route | None, str]:
        """The exact route, else the longest prefix route: one dict probe per "/" within prefix length."""
        route = self._exact.get(path)
        if route is not None:
            return route, ""
        end = path.rfind("/", 0, self._longest_prefix)
        while end > 0:
            route = self._prefixes.get(path[:end + 1])
            if route is not None:
                return route, path[end + 1:]
            end = path.rfind("/", 0, end)
        return None, ""

    async def handle(self, request: BaseRequest) -> web.StreamResponse | WrittenResponse:
        path = request.path
        route, tail = self._match(path)
        if route is None:
            if path + "/" in self._prefixes:
                return self._finish(request, web.Response(status=301, headers={"Location": path + "/"}))
            return self._error(request, self._not_found(path))
        if request.method == "OPTIONS":
            return self._finish(request, web.Response(status=200, headers={"Allow": self._allow(route)}))
        if request.method not in route.methods:
            return self._response(request, 405, f"method {request.method} not allowed".encode(), TEXT_UTF8,
                                  {"Allow": self._allow(route)})
        try:
            result = await route.handler(request, self.agent, tail)
            return self._render(request, result)
        except HTTPError as exc:
            return self._error(request, exc)
        except (NoLeaderError, RPCError) as exc:
            return self._error(request, HTTPError(500, str(exc)))
        except StateError as exc:
            return self._error(request, HTTPError(500, str(exc)))
        except RegistrationError as exc:
            return self._error(request, HTTPError(exc.status, exc.reason))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("request failed: method=%s path=%s", request.method, path)
            return self._error(request, HTTPError(500, str(exc)))

    @staticmethod
    def _allow(route: Route) -> str:
        return ",".join(("OPTIONS", *route.methods))

    @staticmethod
    def _not_found(path: str) -> HTTPError:
        if "/v1/" in path:
            return HTTPError(404, "Invalid URL path: not a recognized HTTP API endpoint")
        return HTTPError(404, "Invalid URL path: if attempting to use the HTTP API, ensure the path starts "
                              "with '/v1/'")

    def _error(self, request: BaseRequest, exc: HTTPError) -> web.Response | WrittenResponse:
        if exc.status < 500:
            log.debug("request error: method=%s path=%s status=%d error=%s", request.method, request.path,
                      exc.status, exc.reason)
        return self._response(request, exc.status, exc.reason.encode(), TEXT_UTF8, {})

    def _json(self, request: BaseRequest, body: Any) -> bytes:
        if self.agent.config.dev or "pretty" in request.query:
            return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"
        return orjson.dumps(body)

    def _render(self, request: BaseRequest, result: Any) -> web.Response | WrittenResponse:
        """The response for a handler's result; the headers are one dict, so aiohttp parses nothing."""
        if result is None:
            return self._response(request, 200, b"", TEXT_UTF8, {})
        if not isinstance(result, Reply):
            return self._response(request, 200, self._json(request, result), JSON, {})
        meta = result.meta
        if result.build is not None and meta is not None and result.raw is None:
            return self._render_cached(request, result, meta)
        headers = dict(result.headers)
        if meta is not None:
            headers.update(meta_headers(meta))
        if result.raw is not None:
            body = result.raw
        elif result.body is None:
            body = b""
        else:
            body = self._json(request, result.body)
        content_type = result.content_type if body or result.raw is not None else "text/plain"
        return self._response(request, result.status, body, content_type, headers)

    def _render_cached(self, request: BaseRequest, result: Reply, meta: QueryMeta) -> web.Response | WrittenResponse:
        """A hot read: its body from the render cache, and the whole response shared with the previous one when
        every byte of it would be the same (the many blocking queries a single write wakes at once)."""
        build = result.build
        assert build is not None
        # The request as sent and its token decide the body at an index (what the render cache's key is cut
        # from), so the signature compares them whole and a woken crowd skips cutting the key too.
        token = get_token(request)
        signature = (request.raw_path, token, meta.index, result.status, tuple(result.headers.items()),
                     result.content_type, meta.known_leader, meta.last_contact_ms, meta.consistency, request.method,
                     request.version, request.keep_alive, rfc822_formatted_time())
        last = self._last_written
        if last is not None and last[0] == signature:
            return last[1]
        body = self.render_cache.body(cache_key(request, token), meta.index, lambda: self._json(request, build()))
        headers = dict(result.headers)
        headers.update(meta_headers(meta))
        response = self._response(request, result.status, body, result.content_type if body else "text/plain",
                                  headers)
        if isinstance(response, WrittenResponse):
            self._last_written = (signature, response)
        return response

    def _response(self, request: BaseRequest, status: int, body: bytes, content_type: str,
                  headers: dict[str, str]) -> web.Response | WrittenResponse:
        """The response, written in one piece (WrittenResponse) unless aiohttp's own rules are needed: HEAD,
        statuses without a body, or a header value aiohttp would refuse."""
        headers["Content-Type"] = content_type
        headers.update(self._extra_headers)
        if request.method == "HEAD" or status < 200 or status in (204, 304):
            return web.Response(status=status, body=body, headers=headers)
        version = request.version
        keep_alive = request.keep_alive
        lines = [f"HTTP/{version.major}.{version.minor} {status} {REASONS.get(status, '')}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += (f"Content-Length: {len(body)}", f"Date: {rfc822_formatted_time()}", f"Server: {SERVER_SOFTWARE}")
        if keep_alive and version == HttpVersion10:
            lines.append("Connection: keep-alive")
        elif not keep_alive and version == HttpVersion11:
            lines.append("Connection: close")
        if not "".join(lines).isprintable() and any(_FORBIDDEN_IN_HEADER.search(line) for line in lines):
            return web.Response(status=status, body=body, headers=headers)
        lines.append("\r\n")
        return WrittenResponse("\r\n".join(lines).encode() + body, keep_alive)

    def _finish(self, request: BaseRequest, response: web.Response) -> web.Response:
        response.headers.update(self._extra_headers)
        return response

    async def start(self, hosts: list[str], port: int) -> None:
        # aiohttp's request loop takes a WrittenResponse as it takes a web.Response (see WrittenResponse).
        handler = cast(Callable[[BaseRequest], Awaitable[web.StreamResponse]], self.handle)
        server = web.Server(handler, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, access_log=None)
        await self._runner.setup()
        for host in hosts:
            site = web.TCPSite(self._runner, host, port, reuse_address=True, backlog=1024)
            await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
