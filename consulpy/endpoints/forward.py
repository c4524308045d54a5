"""Routing RPCs: on a server, run them here when this server leads, else forward them to the leader; on a
client agent, send every one of them to a server of the datacenter (which routes it on).

While there is no leader (or no reachable server), or the leader is changing, a request is held and retried
for `rpc_hold_timeout` (Consul: 7 s; a blocking read also for its own wait), then answered `No cluster
leader` (`No known Consul servers` on a client that knows none). A retry only happens when it cannot apply
a write twice: the request never left, the remote refused it before acting, or it is a read.
Imports: stdlib, consulpy.duration, consulpy.endpoints.query, consulpy.server (consensus, rpc).
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
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


class NoServersError(RPCError):
    """A client agent that knows no alive server of its datacenter (Consul's structs.ErrNoServers)."""

    def __init__(self) -> None:
        super().__init__("No known Consul servers")


class _Forwarder(ABC):
    """Holding and retrying, shared by both routers; `_attempt` says where one try goes."""

    serves_stale = True

    def __init__(self, client: RPCClient, hold_timeout_ns: int, context: ServerContext) -> None:
        self.client = client
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

    @abstractmethod
    async def _attempt(self, method: str, opts: QueryOptions | None, args: tuple[Any, ...],
                       local: Callable[[], Awaitable[T]]) -> T:
        """One try; NotSentError/RetryableError/NoLeaderError mean it may be tried again."""

    def _unavailable(self) -> Exception:
        return NoLeaderError()

    async def route(self, method: str, opts: QueryOptions | None, args: tuple[Any, ...],
                    local: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._hold(opts)
        while True:
            try:
                return await self._attempt(method, opts, args, local)
            except (NotSentError, RetryableError, NoLeaderError):
                pass
            except (ConnectionResetError, TimeoutError) as exc:
                if opts is None:
                    raise RPCError(f"rpc error making call: {exc or 'timeout'}") from None
            if loop.time() >= deadline:
                raise self._unavailable()
            await asyncio.sleep(RETRY_PAUSE * (1 + random.random()))


class LeaderForwarder(_Forwarder):
    """The `Router` of a server agent."""

    def __init__(self, consensus: Consensus, client: RPCClient, self_address: str, hold_timeout_ns: int,
                 context: ServerContext) -> None:
        super().__init__(client, hold_timeout_ns, context)
        self.consensus = consensus
        self.self_address = self_address

    async def _attempt(self, method: str, opts: QueryOptions | None, args: tuple[Any, ...],
                       local: Callable[[], Awaitable[T]]) -> T:
        if self.consensus.is_leader():
            return await local()
        leader = self.consensus.leader_address()
        if not leader or leader == self.self_address:
            raise NoLeaderError()
        result: T = await self.client.call(leader, method, *args, timeout=self._timeout(opts))
        return result


class ServerForwarder(_Forwarder):
    """The `Router` of a client agent: every RPC, stale reads included, goes to one server, kept while it
    answers; a server that cannot be reached is moved to the back and the next one is tried (Consul's
    client router)."""

    serves_stale = False

    def __init__(self, client: RPCClient, servers: Callable[[], list[str]], hold_timeout_ns: int,
                 context: ServerContext) -> None:
        super().__init__(client, hold_timeout_ns, context)
        self.servers = servers
        self.current = ""
        self._failed: list[str] = []

    def _unavailable(self) -> Exception:
        return NoLeaderError() if self.servers() else NoServersError()

    def _pick(self) -> str:
        known = self.servers()
        if self.current in known:
            return self.current
        fresh = [address for address in known if address not in self._failed]
        if not fresh:
            self._failed = [address for address in self._failed if address in known]
            fresh = known
        self.current = random.choice(fresh) if fresh else ""
        return self.current

    def _server_failed(self, address: str) -> None:
        if self.current == address:
            self.current = ""
        if address in self._failed:
            self._failed.remove(address)
        self._failed.append(address)

    async def _attempt(self, method: str, opts: QueryOptions | None, args: tuple[Any, ...],
                       local: Callable[[], Awaitable[T]]) -> T:
        server = self._pick()
        if not server:
            raise NotSentError("no known servers")
        try:
            result: T = await self.client.call(server, method, *args, timeout=self._timeout(opts))
        except (NotSentError, ConnectionResetError, TimeoutError):
            self._server_failed(server)
            raise
        return result
