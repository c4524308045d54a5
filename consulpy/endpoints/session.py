"""Session.* endpoints: Apply (create/destroy with Consul's validation, IDs generated before proposing),
Get / List / NodeSessions (blocking reads) and Renew (resets the leader's TTL timer).

Imports: stdlib, consulpy.duration, consulpy.endpoints.query, consulpy.fsm, consulpy.server, consulpy.state.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import replace

from consulpy.duration import HOUR, DurationError, format_duration, parse_duration
from consulpy.endpoints.query import QueryMeta, QueryOptions, ServerContext, rpc_endpoint
from consulpy.fsm import SessionRequest
from consulpy.server.consensus import NoLeaderError
from consulpy.server.session_timers import SessionTimers
from consulpy.state import Session, StateError

SESSION_TTL_MAX = 24 * HOUR
BEHAVIORS = ("release", "delete")


class Sessions:
    """Session.Apply / Get / List / NodeSessions / Renew."""

    def __init__(self, ctx: ServerContext, timers: SessionTimers, ttl_min_ns: int) -> None:
        self.ctx = ctx
        self.timers = timers
        self.ttl_min_ns = ttl_min_ns

    def validate(self, session: Session) -> Session:
        """Consul's Session.Apply checks for a create; returns the session with its Behavior defaulted."""
        if not session.node:
            raise StateError("Must provide Node")
        behavior = session.behavior or "release"
        if behavior not in BEHAVIORS:
            raise StateError(f"Invalid Behavior setting '{behavior}'")
        if session.ttl:
            try:
                ttl = parse_duration(session.ttl)
            except DurationError as exc:
                raise StateError(f"Session TTL '{session.ttl}' invalid: {exc}") from None
            if ttl != 0 and not self.ttl_min_ns <= ttl <= SESSION_TTL_MAX:
                raise StateError(f"Invalid Session TTL '{ttl}', must be between "
                                 f"[{format_duration(self.ttl_min_ns)}={format_duration(SESSION_TTL_MAX)}]")
        return replace(session, behavior=behavior)

    @rpc_endpoint("Session.Create")
    async def create(self, session: Session) -> str:
        """Validate, give the session a fresh ID, propose it; arms its TTL timer. Returns the ID."""
        session = self.validate(session)
        session_id = str(uuid.uuid4())
        while self.ctx.store.has_session(session_id):
            session_id = str(uuid.uuid4())
        session = replace(session, id=session_id)
        result = await self.ctx.consensus.apply(SessionRequest("create", session))
        if isinstance(result, Exception):
            raise StateError(f"apply failed: {result}")
        self.timers.reset(session)
        return session_id

    @rpc_endpoint("Session.Destroy")
    async def destroy(self, session_id: str) -> None:
        """Destroy a session (an unknown ID is a no-op) and drop its TTL timer."""
        if not session_id:
            raise StateError("Must provide ID")
        if not self.ctx.store.has_session(session_id):
            return
        result = await self.ctx.consensus.apply(SessionRequest("destroy", Session(id=session_id, node="")))
        self.timers.clear(session_id)
        if isinstance(result, Exception):
            raise StateError(f"apply failed: {result}")

    @rpc_endpoint("Session.Renew")
    async def renew(self, session_id: str) -> Session | None:
        """Reset the session's TTL timer (a leader duty); None when the session does not exist."""
        if not self.ctx.consensus.is_leader():
            raise NoLeaderError()
        _, session = self.ctx.store.session_get(session_id)
        if session is not None:
            self.timers.reset(session)
        return session

    @rpc_endpoint("Session.Get", read=True)
    def get(self, opts: QueryOptions, session_id: str) -> Awaitable[tuple[QueryMeta, Session | None]]:
        return self.ctx.blocking(opts, lambda ws: self.ctx.store.session_get(session_id, ws))

    @rpc_endpoint("Session.List", read=True)
    def list_sessions(self, opts: QueryOptions) -> Awaitable[tuple[QueryMeta, list[Session]]]:
        return self.ctx.blocking(opts, lambda ws: self.ctx.store.session_list(ws))

    @rpc_endpoint("Session.NodeSessions", read=True)
    def node_sessions(self, opts: QueryOptions, node: str) -> Awaitable[tuple[QueryMeta, list[Session]]]:
        return self.ctx.blocking(opts, lambda ws: self.ctx.store.node_sessions(node, ws))
