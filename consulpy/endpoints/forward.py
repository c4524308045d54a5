"""Routing RPCs on a server: run them here when this server leads, else forward them to the leader.

While there is no leader, or the leader is changing, a request is held and retried for `rpc_hold_timeout`
(Consul: 7 s; a blocking read also for its own wait), then answered `No cluster leader`. A retry only happens
when it cannot apply a write twice: the request never left, the remote refused it before acting, or it is a read.
Imports: stdlib, consulpy.duration, consulpy.endpoints.query, consulpy.server (consensus, rpc).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from consulpy.duration import SECOND
from consulpy.endpoints.query import JITTER_FRACTION, QueryOptions, ServerContext
from consulpy.server.consensus import Consensus, NoLeaderError
from consulpy.server.rpc import NotSentError, RetryableError, RPCClient, RPCError

T = TypeVar("T")

WRITE_TIMEOUT = 30.0
QUERY_SLACK = 10.0
RETRY_PAUSE = 0.1


class LeaderForwarder:
    """The `Router` of a server agent."""

    def __init__(self, consensus: Consensus, client: RPCClient, self_address: str, hold_timeout_ns: int,
                 context: ServerContext) -> None:
        self.consensus = consensus
        self.client = client
        self.self_address = self_address
        self.hold_timeout = hold_timeout_ns / SECOND
        self.context = context

    def _timeout(self, opts: QueryOptions | None) -> float:
        if opts is None:
            return WRITE_TIMEOUT
        return self.context.wait_seconds(opts) * 1.1 + self.hold_timeout + QUERY_SLACK

    def _hold(self, opts: QueryOptions | None) -> float:
        """How long after its start a request may still be retried (Consul's HasTimedOut): the hold timeout,
        plus for a blocking read its own capped wait and largest jitter, so a leader lost mid-wait is replaced."""
        if opts is None or opts.min_index == 0:
            return self.hold_timeout
        wait = opts.max_wait_ns if opts.max_wait_ns > 0 else self.context.default_query_time_ns
        wait = min(wait, self.context.max_query_time_ns)
        return self.hold_timeout + (wait + wait / JITTER_FRACTION) / SECOND

    async def route(self, method: str, opts: QueryOptions | None, args: tuple[Any, ...],
                    local: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._hold(opts)
        while True:
            try:
                if self.consensus.is_leader():
                    return await local()
                leader = self.consensus.leader_address()
                if leader and leader != self.self_address:
                    result: T = await self.client.call(leader, method, *args, timeout=self._timeout(opts))
                    return result
            except (NotSentError, RetryableError, NoLeaderError):
                pass
            except (ConnectionResetError, TimeoutError) as exc:
                if opts is None:
                    raise RPCError(f"rpc error making call: {exc or 'timeout'}") from None
            if loop.time() >= deadline:
                raise NoLeaderError()
            await asyncio.sleep(RETRY_PAUSE * (1 + random.random()))
