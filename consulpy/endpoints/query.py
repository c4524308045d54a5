"""Query options and metadata shared by every read endpoint, and the blocking-query loop.

A blocking read runs its query, and while the result's index is not past the client's `index`, parks
on the watch set of what it read until a commit touches it or the wait (plus jitter) runs out.
Imports: stdlib, consulpy.state, consulpy.server.consensus.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from consulpy.duration import SECOND
from consulpy.server.consensus import Consensus, NoLeaderError
from consulpy.state import StateStore, WatchSet

T = TypeVar("T")

DEFAULT_QUERY_TIME = 300 * SECOND
MAX_QUERY_TIME = 600 * SECOND
JITTER_FRACTION = 16


@dataclass(slots=True)
class QueryOptions:
    """What a read asked for: blocking, consistency, and the datacenter."""

    min_index: int = 0
    max_wait_ns: int = 0
    consistency: str = "default"  # default | stale | consistent
    datacenter: str = ""
    token: str = ""


@dataclass(slots=True)
class QueryMeta:
    """What a read reports back in X-Consul-* headers."""

    index: int = 1
    known_leader: bool = True
    last_contact_ms: int = 0
    consistency: str = "leader"


@dataclass(slots=True)
class ServerContext:
    """What every endpoint works with."""

    store: StateStore
    consensus: Consensus
    datacenter: str
    node_name: str
    default_query_time_ns: int = DEFAULT_QUERY_TIME
    max_query_time_ns: int = MAX_QUERY_TIME

    async def prepare_read(self, opts: QueryOptions) -> QueryMeta:
        """Check the read can be served here in its consistency mode; return the headers' values."""
        consensus = self.consensus
        leader = consensus.leader_address()
        if opts.consistency == "stale":
            return QueryMeta(known_leader=bool(leader), last_contact_ms=consensus.last_contact_ms(),
                             consistency="stale")
        if not consensus.is_leader():
            raise NoLeaderError()
        if opts.consistency == "consistent":
            await consensus.read_barrier()
            return QueryMeta(consistency="consistent")
        return QueryMeta(consistency="leader")

    def wait_seconds(self, opts: QueryOptions) -> float:
        """The wait for a blocking query: default when unset, capped, plus up to wait/16 jitter, capped."""
        wait = opts.max_wait_ns
        if wait <= 0:
            wait = self.default_query_time_ns
        wait = min(wait, self.max_query_time_ns)
        wait += int(random.random() * (wait / JITTER_FRACTION))
        return min(wait, self.max_query_time_ns) / SECOND

    async def blocking(self, opts: QueryOptions, query: Callable[[WatchSet], tuple[int, T]]) -> tuple[QueryMeta, T]:
        """Run `query`, blocking per `opts`; returns the metadata and the final result."""
        meta = await self.prepare_read(opts)
        loop = asyncio.get_running_loop()
        deadline = 0.0
        while True:
            ws = WatchSet()
            index, result = query(ws)
            if opts.min_index == 0 or index > opts.min_index:
                break
            if not deadline:
                deadline = loop.time() + self.wait_seconds(opts)
            elif loop.time() >= deadline:
                break
            await self._park(ws, deadline)
        meta.index = max(index, 1)
        return meta, result

    async def _park(self, ws: WatchSet, deadline: float) -> None:
        """Sleep until a commit touches `ws` or the deadline passes; costs a future, not a task."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        waiter = self.store.watch(ws, wake)
        timer = loop.call_at(deadline, wake)
        try:
            await woken
        finally:
            timer.cancel()
            self.store.unwatch(waiter)
