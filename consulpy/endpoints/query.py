"""Query options and metadata shared by every read endpoint, the blocking-query loop, and `rpc_endpoint`.

A blocking read runs its query, and while the result's index is not past the client's `index`, parks
on the watch set of what it read until a commit touches it or the wait (plus jitter) runs out.
`@rpc_endpoint("KVS.Get", read=True)` names an endpoint method as Consul's RPC; the server context's router
runs it here or forwards it (stale reads on a server, and every call without a router, stay local).
Imports: stdlib, consulpy.codec, consulpy.state, consulpy.server.consensus.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from consulpy.codec import wire
from consulpy.duration import SECOND
from consulpy.server.consensus import Consensus, NoLeaderError
from consulpy.state import StateStore, WatchSet
from consulpy.state.store import call_each

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_QUERY_TIME = 300 * SECOND
MAX_QUERY_TIME = 600 * SECOND
JITTER_FRACTION = 16
# A commit waking at least this many parked queries runs their wake-up without the cyclic GC.
GC_PAUSE_WAKE = 1000


@wire(30)
@dataclass(slots=True)
class QueryOptions:
    """What a read asked for: blocking, consistency, and the datacenter."""

    min_index: int = 0
    max_wait_ns: int = 0
    consistency: str = "default"  # default | stale | consistent
    datacenter: str = ""
    token: str = ""


@wire(31)
@dataclass(slots=True)
class QueryMeta:
    """What a read reports back in X-Consul-* headers."""

    index: int = 1
    known_leader: bool = True
    last_contact_ms: int = 0
    consistency: str = "leader"


class Router(Protocol):
    """Decides where an RPC runs: here (`local`) or elsewhere (forwarded by name with `args`).
    `serves_stale`: stale reads run here without asking the router (a server's own store answers them)."""

    serves_stale: bool

    async def route(self, method: str, opts: QueryOptions | None, args: tuple[Any, ...],
                    local: Callable[[], Awaitable[T]]) -> T: ...


class Deadlines:
    """When parked queries give up: one loop timer per `SLOT` seconds of deadlines, not one per query.

    A query's wake-up joins the slot its deadline rounds up to (so it fires at most a slot late) and leaves it
    when the query is woken sooner; a slot's timer calls what is left in it. Thousands of parked queries thus
    cost a set entry each instead of a timer each, and waking them cancels no timers.
    """

    SLOT = 0.01

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: dict[int, set[Callable[[], None]]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, deadline: float, wake: Callable[[], None]) -> int:
        """Call `wake` at `deadline` (loop time) or up to a slot later; returns the slot for `discard`."""
        if loop is not self._loop:  # timers belong to a loop: a new loop starts with no slots
            self._loop, self._slots = loop, {}
        slot = math.ceil(deadline / self.SLOT)
        waiting = self._slots.get(slot)
        if waiting is None:
            waiting = self._slots[slot] = set()
            loop.call_at(slot * self.SLOT, self._fire, slot)
        waiting.add(wake)
        return slot

    def discard(self, slot: int, wake: Callable[[], None]) -> None:
        waiting = self._slots.get(slot)
        if waiting is not None:
            waiting.discard(wake)

    def _fire(self, slot: int) -> None:
        for wake in self._slots.pop(slot, ()):
            wake()


@dataclass(slots=True)
class ServerContext:
    """What every endpoint works with. Without a router (dev mode) every RPC runs here."""

    store: StateStore
    consensus: Consensus
    datacenter: str
    node_name: str
    default_query_time_ns: int = DEFAULT_QUERY_TIME
    max_query_time_ns: int = MAX_QUERY_TIME
    router: Router | None = None
    deadlines: Deadlines = field(default_factory=Deadlines)

    async def prepare_read(self, opts: QueryOptions) -> QueryMeta:
        """Check the read can be served here in its consistency mode; return the headers' values.

        Default reads are served by a leader holding its lease (else after a ReadIndex round);
        `consistent` reads always confirm leadership with a ReadIndex round first.
        """
        consensus = self.consensus
        if opts.consistency == "stale":
            return QueryMeta(known_leader=bool(consensus.leader_address()),
                             last_contact_ms=consensus.last_contact_ms(), consistency="stale")
        if not consensus.is_leader():
            raise NoLeaderError()
        if opts.consistency == "consistent" or not consensus.lease_valid():
            await consensus.read_barrier()
        return QueryMeta(consistency="consistent" if opts.consistency == "consistent" else "leader")

    def wait_seconds(self, opts: QueryOptions) -> float:
        """The wait for a blocking query: default when unset, capped, plus up to wait/16 jitter, capped."""
        wait = opts.max_wait_ns
        if wait <= 0:
            wait = self.default_query_time_ns
        wait = min(wait, self.max_query_time_ns)
        wait += int(random.random() * (wait / JITTER_FRACTION))
        return min(wait, self.max_query_time_ns) / SECOND

    async def blocking(self, opts: QueryOptions, query: Callable[[WatchSet], tuple[int, T]]) -> tuple[QueryMeta, T]:
        """Run `query`, blocking per `opts`; returns the metadata and the final result.

        While it waits, a query parks on a future that a commit touching its watch set (or its deadline slot)
        resolves: a future, a waiter and a deadline entry, no task, no timer and no extra coroutine frame.
        """
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
            woken: asyncio.Future[None] = loop.create_future()
            wake = functools.partial(_release, woken)
            waiter = self.store.watch(ws, wake)
            del ws, result  # while parked the waiter holds the keys, and the next pass queries afresh
            slot = self.deadlines.add(loop, deadline, wake)
            try:
                await woken
            finally:
                self.deadlines.discard(slot, wake)
                self.store.unwatch(waiter)
        meta.index = max(index, 1)
        return meta, result


def wake_without_gc(callbacks: list[Callable[[], None]]) -> None:
    """`StateStore.wake`: when one commit wakes a crowd of parked queries, keep the cyclic garbage collector
    out of their burst. With thousands of queries parked a full collection walks about a million objects
    (150-330 ms) and frees nothing. The callbacks resolve futures, which queue the woken tasks' next steps;
    the collector is enabled again by a callback queued behind all of them."""
    if len(callbacks) < GC_PAUSE_WAKE or not gc.isenabled():
        call_each(callbacks)
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        call_each(callbacks)
        return
    gc.disable()
    try:
        call_each(callbacks)
    finally:
        loop.call_soon(gc.enable)


def _release(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


def rpc_endpoint(method: str, *, read: bool = False
                 ) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Name an endpoint method as Consul's RPC `method`; a read takes its QueryOptions first.

    The decorated method is routed by its endpoint's `ctx`; `rpc_method` on it names it for the RPC server.
    """

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        def routed(*args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
            endpoint, call_args = args[0], args[1:]
            opts = cast(QueryOptions, call_args[0]) if read else None
            router = endpoint.ctx.router  # type: ignore[attr-defined]
            # Decided before anything is awaited, and the chosen awaitable is handed back rather than awaited
            # here, so a call adds no frame of its own (a parked blocking query keeps no extra frame alive).
            if router is None or (opts is not None and opts.consistency == "stale" and router.serves_stale):
                return fn(*args, **kwargs)
            return router.route(method, opts, call_args, functools.partial(fn, *args, **kwargs))

        routed.rpc_method = method  # type: ignore[attr-defined]
        return routed

    return decorate
