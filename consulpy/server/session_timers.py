"""The leader's session TTL timers: a session with a TTL is destroyed once 2 x TTL passes without a renew.

The timer is armed on create and renew and, when this server becomes leader, for every session in the
store (so a TTL is never cut short by a failover, only lengthened). On expiry the leader proposes a
session destroy through consensus, retrying with backoff. Imports: stdlib, consulpy.duration,
consulpy.fsm, consulpy.server.consensus, consulpy.state.
"""

from __future__ import annotations

import asyncio
import logging

from consulpy.duration import SECOND, DurationError, parse_duration
from consulpy.fsm import SessionRequest
from consulpy.server.consensus import Consensus
from consulpy.state import Session

log = logging.getLogger("consulpy.session_ttl")

SESSION_TTL_MULTIPLIER = 2
MAX_INVALIDATE_ATTEMPTS = 6
INVALIDATE_RETRY_BASE = 10.0  # seconds, doubled on every failed attempt


def session_ttl_ns(session: Session) -> int:
    """The session's TTL in nanoseconds; 0 when it has none (or one that cannot expire)."""
    if not session.ttl:
        return 0
    try:
        return max(parse_duration(session.ttl), 0)
    except DurationError:
        return 0


class SessionTimers:
    """One timer per TTL session, live only while this server leads."""

    def __init__(self, consensus: Consensus) -> None:
        self.consensus = consensus
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._leading = False

    def start(self) -> None:
        """Leadership began: arm a timer for every session the store holds."""
        self._leading = True
        for session in self.consensus.fsm.store.session_list()[1]:
            self.reset(session)

    def stop(self) -> None:
        """Leadership ended (or the agent stops): drop every timer and pending invalidation."""
        self._leading = False
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def armed(self) -> int:
        """How many sessions have a running timer."""
        return len(self._timers)

    def reset(self, session: Session) -> None:
        """(Re)arm the session's timer at 2 x TTL from now; sessions without a TTL get none."""
        if not self._leading:
            return
        ttl = session_ttl_ns(session)
        if ttl == 0:
            return
        self.clear(session.id)
        loop = asyncio.get_running_loop()
        delay = ttl * SESSION_TTL_MULTIPLIER / SECOND
        self._timers[session.id] = loop.call_later(delay, self._expire, session.id)

    def clear(self, session_id: str) -> None:
        handle = self._timers.pop(session_id, None)
        if handle is not None:
            handle.cancel()

    def _expire(self, session_id: str) -> None:
        self._timers.pop(session_id, None)
        task = asyncio.get_running_loop().create_task(self._invalidate(session_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _invalidate(self, session_id: str) -> None:
        request = SessionRequest("destroy", Session(id=session_id, node=""))
        for attempt in range(MAX_INVALIDATE_ATTEMPTS):
            try:
                result = await self.consensus.apply(request)
            except Exception as exc:  # a lost leadership or a failed proposal: retry, as Consul does
                result = exc
            if not isinstance(result, Exception):
                log.debug("session: TTL expired: session=%s", session_id)
                return
            log.error("session: invalidating expired session failed: session=%s error=%s", session_id, result)
            await asyncio.sleep(INVALIDATE_RETRY_BASE * (1 << attempt))
        log.error("session: maximum revoke attempts reached: session=%s", session_id)
