"""Encode once: the rendered JSON body of a hot read, kept per request and valid for exactly one index.

A read handler returns the QueryMeta its endpoint produced and a body builder; the server asks this cache
for the body at `meta.index`, so a result is built and encoded once however many clients read it, and
dropped as soon as the index the endpoint reports moves. Only the body is kept: every response still
gets its own X-Consul-* headers. Imports: stdlib, aiohttp (request type).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from aiohttp.web import BaseRequest

# Blocking-query parameters decide *when* a read returns, never *what* it returns.
_WHEN_ONLY = frozenset(("index", "wait"))

MAX_BYTES = 16 << 20
MAX_BODY = 512 << 10
# What an entry costs besides its body (key strings, tuples, dict slot), charged so that many small
# bodies cannot grow the cache past its bound either.
ENTRY_OVERHEAD = 512


def cache_key(request: BaseRequest, token: str) -> Hashable:
    """What a read's body depends on besides the index: the raw path, every query parameter but
    `index`/`wait` (filter, tag, near, pretty, passing, node-meta, consistency flags, ...), and the token
    (`params.get_token` of the request).

    Parameters are compared as sent (still percent-encoded), so distinct queries never share a key.
    """
    path, _, query = request.raw_path.partition("?")
    if "index" in query or "wait" in query:
        query = "&".join(part for part in query.split("&") if part.partition("=")[0] not in _WHEN_ONLY)
    return path, query, token


class RenderCache:
    """Rendered bodies by request key, each tagged with the index it was built at; bounded in bytes
    (oldest entry dropped first).

    Sound because an endpoint's index only moves forward and moves whenever what it covers changes
    (the property blocking queries rest on): the same key at the same index is the same body.
    """

    def __init__(self, max_bytes: int = MAX_BYTES, max_body: int = MAX_BODY) -> None:
        self._max_bytes = max_bytes
        self._max_body = max_body
        self._bytes = 0
        self._entries: dict[Hashable, tuple[int, bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def body(self, key: Hashable, index: int, render: Callable[[], bytes]) -> bytes:
        """The body for `key` at `index`: the cached one when it was built at that index, else `render()`."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] == index:
                return entry[1]
            self._drop(key)
        body = render()
        if len(body) <= self._max_body:
            size = len(body) + ENTRY_OVERHEAD
            while self._entries and self._bytes + size > self._max_bytes:
                self._drop(next(iter(self._entries)))
            self._entries[key] = (index, body)
            self._bytes += size
        return body

    def _drop(self, key: Hashable) -> None:
        self._bytes -= len(self._entries.pop(key)[1]) + ENTRY_OVERHEAD
