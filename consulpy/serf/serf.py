"""The Serf layer (`Serf`), sans-IO, on top of the gossip core: member statuses, tags, Lamport-ordered
join and leave intents, user events, queries (and the internal keyring queries), reaping, reconnecting,
network coordinates and the snapshot state.

It owns a `Memberlist` and is driven exactly like one (`receive_packet`, `handle_stream`, `stream_reply`,
`tick` at `next_deadline()`, then `poll()`); the core's events are consumed here and Serf's are handed
out instead. No clock reads and no global randomness: `now` comes with every call, randomness from the
injected `random.Random`. Behaviour follows hashicorp/serf's serf.go and delegate.go. Imports: stdlib,
consulpy.codec, consulpy.gossip (and its keyring), and this package.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import partial

from consulpy.codec import encode
from consulpy.gossip import (
    Address,
    JoinResult,
    LeaveComplete,
    LogLine,
    Memberlist,
    PingComplete,
    RemoteState,
    UserMessage,
)
from consulpy.gossip import Event as CoreEvent
from consulpy.gossip import Member as CoreMember
from consulpy.gossip import MemberEvent as CoreMemberEvent
from consulpy.gossip import MemberEventKind as CoreKind
from consulpy.gossip import MemberState as CoreState
from consulpy.gossip.keyring import Keyring
from consulpy.serf.config import SerfConfig
from consulpy.serf.coordinate import CoordinateRejected, VivaldiClient
from consulpy.serf.events import (
    JoinDone,
    KeyringChanged,
    LeaveDone,
    Member,
    MemberEvent,
    MemberEventKind,
    MemberStatus,
    Output,
    Query,
    QueryAck,
    QueryDone,
    QueryResponse,
    SerfState,
    UserEvent,
)
from consulpy.serf.lamport import LamportClock
from consulpy.serf.messages import (
    QUERY_FLAG_ACK,
    QUERY_FLAG_NO_BROADCAST,
    Coordinate,
    EventsAt,
    JoinIntent,
    LeaveIntent,
    NodeKeyResponse,
    PushPullState,
    QueryMessage,
    QueryResponseMessage,
    RelayMessage,
    UserEventMessage,
    decode_coordinate,
    decode_message,
    decode_push_pull,
    decode_tags,
    encode_tags,
)
from consulpy.serf.query import (
    INTERNAL_QUERY_PREFIX,
    KEY_QUERIES,
    LIST_KEYS_QUERY,
    PING_QUERY,
    OpenQuery,
    QueryBuffer,
    answer_key_query,
    default_query_timeout,
    fit_key_list,
)
from consulpy.serf.snapshot import SnapshotState


class SerfError(Exception):
    """An operation Serf refuses, with serf's message."""


class UserEventTooLarge(SerfError):
    pass


class QueryTooLarge(SerfError):
    pass


@dataclass(slots=True, eq=False)
class _MemberState:
    name: str
    address: Address
    tags: dict[str, str]
    status: MemberStatus
    status_ltime: int = 0  # Lamport time of the newest intent applied to this member
    leave_time: float = 0.0  # when it failed or left, for reaping

    def member(self) -> Member:
        return Member(self.name, self.address, dict(self.tags), self.status)


class _IntentKind(Enum):
    JOIN = "join"
    LEAVE = "leave"


@dataclass(slots=True, frozen=True)
class _Intent:
    """An intent about a member we do not know yet, applied when it shows up (serf's nodeIntent)."""

    kind: _IntentKind
    ltime: int
    received: float


@dataclass(slots=True)
class _EventSlot:
    ltime: int
    events: list[tuple[str, bytes]]


@dataclass(slots=True, eq=False)
class _JoinAttempt:
    addresses: tuple[Address, ...]
    pending: list[Address]
    ignore_old: bool
    contacted: int = 0


@dataclass(slots=True)
class _Timers:
    heap: list[tuple[float, int, Callable[[float], None]]] = field(default_factory=list)
    seq: int = 0

    def at(self, when: float, fire: Callable[[float], None]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, fire))

    def run(self, now: float) -> None:
        while self.heap and self.heap[0][0] <= now:
            _, _, fire = heapq.heappop(self.heap)
            fire(now)


def _intent_key(node: str) -> str:
    # A newer intent about a member replaces an older one still queued for gossip.
    return f"serf-intent:{node}"


def _host(address: Address) -> str:
    return address.rpartition(":")[0] or address


class Serf:
    """One member's Serf: its view of the cluster with Serf's statuses, and the protocol keeping it current."""

    def __init__(
        self,
        config: SerfConfig,
        name: str,
        address: Address,
        *,
        rng: random.Random,
        now: float,
        tags: dict[str, str] | None = None,
        previous: SnapshotState | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        """`previous` is the replayed snapshot of an earlier run: its clocks are resumed (events and queries up
        to its clocks are not delivered again) and its alive members are re-joined one at a time. `keyring`
        is the one the transport encrypts with: keyring queries change it in place."""
        self.config = config
        self.name = name
        self.address = address
        self.state = SerfState.ALIVE
        self.stats: Counter[str] = Counter()
        self.clock = LamportClock()
        self.event_clock = LamportClock()
        self.query_clock = LamportClock()
        for clock in (self.clock, self.event_clock, self.query_clock):
            clock.increment()  # serf starts its clocks at 1: time 0 means "never" in its buffers
        self._rng = rng
        self._tags = dict(tags or {})
        self._members: dict[str, _MemberState] = {}
        self._intents: dict[str, _Intent] = {}
        self._event_buffer: list[_EventSlot | None] = [None] * config.event_buffer
        self._event_min_time = 0
        self._last_event_ltime = 0
        self._keyring = keyring
        self._query_buffer = QueryBuffer(config.query_buffer)
        self._query_min_time = 0
        self._open_queries: dict[int, OpenQuery] = {}  # by query-clock time, which is unique per query we send
        self._joins: list[_JoinAttempt] = []
        self._rejoin: list[Address] = []
        self._timers = _Timers()
        self._out = Output()
        self._vivaldi = None if config.disable_coordinates else VivaldiClient(config.vivaldi, rng)
        self._coordinates: dict[str, Coordinate] = {}
        if previous is not None:
            self.clock.witness(previous.clock)
            self.event_clock.witness(previous.event_clock)
            self.query_clock.witness(previous.query_clock)
            self._event_min_time = previous.event_clock + 1
            self._last_event_ltime = previous.event_clock
            self._query_min_time = previous.query_clock + 1
            self._rejoin = [addr for member, addr in sorted(previous.alive.items()) if member != name]
            rng.shuffle(self._rejoin)  # as serf does, so restarted members do not all pick the same one
        self.core = Memberlist(config.gossip, name, address, rng=rng, now=now, meta=encode_tags(self._tags),
                               local_state=self._local_state,
                               ack_payload=self._ack_payload if self._vivaldi is not None else None)
        self._timers.at(now + config.reap_interval, self._reap_tick)
        self._timers.at(now + config.reconnect_interval, self._reconnect_tick)
        self._next_rejoin(now)
        self._pump(now)

    # ---- driving it (as the gossip core is driven) ----------------------------------------------------

    def poll(self) -> Output:
        """Everything produced since the last poll."""
        out, self._out = self._out, Output()
        return out

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.core.next_deadline(), self._timers.heap[0][0] if self._timers.heap
                                 else None) if d is not None]
        return min(deadlines) if deadlines else None

    def tick(self, now: float) -> None:
        self._timers.run(now)
        self.core.tick(now)
        self._pump(now)

    def receive_packet(self, source: Address, data: bytes, now: float) -> None:
        self.core.receive_packet(source, data, now)
        self._pump(now)

    def handle_stream(self, source: Address, data: bytes, now: float) -> bytes | None:
        reply = self.core.handle_stream(source, data, now)
        self._pump(now)
        return reply

    def stream_reply(self, stream_id: int, data: bytes | None, now: float) -> None:
        self.core.stream_reply(stream_id, data, now)
        self._pump(now)

    # ---- operations -----------------------------------------------------------------------------------

    def join(self, addresses: list[Address], now: float, ignore_old: bool = False) -> None:
        """Join through `addresses`; `JoinDone` follows. With `ignore_old`, user events that happened before
        the join are not delivered (serf's ignoreOld, `consul join` never sets it, `-join` does not either)."""
        if self.state != SerfState.ALIVE:
            raise SerfError("Serf can't Join after Leave or Shutdown")
        attempt = _JoinAttempt(tuple(addresses), list(addresses), ignore_old)
        if not addresses:
            self._out.events.append(JoinDone((), 0))
            return
        self._joins.append(attempt)
        self.core.join(list(addresses), now)
        self._pump(now)

    def leave(self, now: float) -> None:
        """Leave gracefully: every member shows us `left`. `LeaveDone` follows once it has been gossiped."""
        if self.state == SerfState.LEFT:
            return
        if self.state == SerfState.LEAVING:
            raise SerfError("Leave already in progress")
        self.state = SerfState.LEAVING
        intent = LeaveIntent(self.clock.time(), self.name, False)
        self.clock.increment()
        self._leave_intent(intent, now)
        if self._has_alive_members():
            self.core.broadcast(encode(intent), _intent_key(self.name))
        # serf waits for the intent to be gossiped before the memberlist leave; the core tells us nothing
        # about user broadcasts, and its own leave message (a dead message from ourselves) carries the same
        # news to every member's Serf, so both go out together.
        self.core.leave(now)
        self._pump(now)

    def force_leave(self, node: str, now: float, prune: bool = False) -> None:
        """Mark a failed member `left` everywhere (serf's RemoveFailedNode); with `prune`, forget it at once."""
        intent = LeaveIntent(self.clock.time(), node, prune)
        self.clock.increment()
        self._leave_intent(intent, now)
        if self._has_alive_members():
            self.core.broadcast(encode(intent), _intent_key(node))
        self._pump(now)

    def set_tags(self, tags: dict[str, str], now: float) -> None:
        """Replace our tags and gossip them; raises `TagsTooLarge` if they exceed the metadata limit."""
        meta = encode_tags(tags)
        self._tags = dict(tags)
        self.core.update_meta(meta, now)
        self._pump(now)

    def user_event(self, name: str, payload: bytes, coalesce: bool = True) -> None:
        """Fire a user event to every member (and ourselves); raises `UserEventTooLarge` past the size limit."""
        limit = self.config.user_event_size_limit
        if len(name.encode()) + len(payload) > limit:
            raise UserEventTooLarge(f"user event exceeds configured limit of {limit} bytes before encoding")
        message = UserEventMessage(self.event_clock.time(), name, payload, coalesce)
        raw = encode(message)
        if len(raw) > limit:
            raise UserEventTooLarge(f"encoded user event exceeds configured limit of {limit} bytes after encoding")
        self.event_clock.increment()
        self._user_event(message)
        self.core.broadcast(raw)

    def query(self, name: str, payload: bytes, now: float, timeout: float | None = None, *,
              relay_factor: int = 0, request_ack: bool = False) -> int:
        """Send a query to every member (ourselves included) and return its id. Each member's answer comes
        back as a `QueryResponse` (with `request_ack`, each delivery as a `QueryAck`), then `QueryDone` once
        the timeout (default `default_query_timeout()`) passes or every member alive now has answered.
        Nothing is emitted during this call: our own handling runs at the next tick, which is due at once,
        so the caller can note the id before any answer arrives. `relay_factor` (0-255) members also relay
        each answer, for when the direct path loses packets. Raises `QueryTooLarge` past the size limit."""
        if not 0 <= relay_factor <= 255:
            raise ValueError("relay factor must be in range [0, 255]")
        ltime = self.query_clock.time()
        self.query_clock.witness(ltime)  # a second query sent before the first is handled gets a later time
        message = QueryMessage(ltime, self._rng.getrandbits(31), self.address, self.name,
                               QUERY_FLAG_ACK if request_ack else 0, relay_factor,
                               float(timeout if timeout is not None else self.default_query_timeout()), name, payload)
        raw = encode(message)
        limit = self.config.query_size_limit
        if len(raw) > limit:
            raise QueryTooLarge(f"query exceeds limit of {limit} bytes")
        alive = {m.name for m in self._members.values() if m.status == MemberStatus.ALIVE}
        self._open_queries[ltime] = OpenQuery(message.id, frozenset(alive | {self.name}), request_ack)
        self._timers.at(now + message.timeout, partial(self._query_timeout, ltime, message.id))
        self._timers.at(now, partial(self._query_here, message))
        self.core.broadcast(raw)
        return message.id

    def respond(self, query: Query, payload: bytes, now: float) -> None:
        """Answer a `Query` event, straight to its sender (and through its relays); raises `SerfError` past
        its deadline or the response size limit."""
        if now > query.deadline:
            raise SerfError("response is past the deadline")
        response = QueryResponseMessage(query.ltime, query.id, self.name, 0, payload)
        raw = encode(response)
        limit = self.config.query_response_size_limit
        if len(raw) > limit:
            raise SerfError(f"response exceeds limit of {limit} bytes")
        self._send_response(query.source_address, query.relay_factor, response, raw)
        self._pump(now)

    def default_query_timeout(self) -> float:
        members = sum(1 for m in self.core.members() if m.state in (CoreState.ALIVE, CoreState.SUSPECT))
        return default_query_timeout(self.config.gossip.gossip_interval, self.config.query_timeout_mult, members)

    # ---- reading it -----------------------------------------------------------------------------------

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._tags)

    def members(self) -> list[Member]:
        """Every member known, in any status, until it is reaped."""
        return [m.member() for m in self._members.values()]

    def member(self, name: str) -> Member | None:
        state = self._members.get(name)
        return state.member() if state is not None else None

    def coordinate(self) -> Coordinate | None:
        """Our network coordinate (None with coordinates disabled)."""
        return self._vivaldi.coordinate() if self._vivaldi is not None else None

    def cached_coordinate(self, name: str) -> Coordinate | None:
        """The coordinate `name` last sent us in an ack (ours for our own name, once we have probed)."""
        return self._coordinates.get(name)

    def snapshot_state(self) -> SnapshotState:
        """What serf's snapshotter would hold now: alive members, the clocks' last used times, leave marker."""
        return SnapshotState(
            alive={m.name: m.address for m in self._members.values() if m.status == MemberStatus.ALIVE},
            clock=max(self.clock.time() - 1, 0),
            event_clock=self._last_event_ltime,
            query_clock=max(self.query_clock.time() - 1, 0),
            left=self.state != SerfState.ALIVE)

    # ---- the core's events ----------------------------------------------------------------------------

    def _pump(self, now: float) -> None:
        """Take the core's output: pass packets and streams on, act on events (which may produce more)."""
        while True:
            out = self.core.poll()
            self._out.packets.extend(out.packets)
            self._out.streams.extend(out.streams)
            if not out.events:
                return
            for event in out.events:
                self._on_core_event(event, now)

    def _on_core_event(self, event: CoreEvent, now: float) -> None:
        if isinstance(event, CoreMemberEvent):
            if event.kind == CoreKind.JOIN:
                self._node_join(event.member)
            elif event.kind == CoreKind.UPDATE:
                self._node_update(event.member)
            else:
                self._node_leave(event.member, event.kind == CoreKind.LEAVE, now)
        elif isinstance(event, UserMessage):
            self._on_message(event.payload, now)
        elif isinstance(event, RemoteState):
            self._merge_remote(event.payload, event.join, now)
        elif isinstance(event, PingComplete):
            self._ping_complete(event)
        elif isinstance(event, JoinResult):
            self._join_result(event, now)
        elif isinstance(event, LeaveComplete):
            self.state = SerfState.LEFT
            self._out.events.append(LeaveDone())
        else:
            self._out.events.append(event)

    def _node_join(self, node: CoreMember) -> None:
        state = self._members.get(node.name)
        if state is None:
            state = _MemberState(node.name, node.address, decode_tags(node.meta), MemberStatus.ALIVE)
            intent = self._intents.get(node.name)
            if intent is not None:
                state.status_ltime = intent.ltime
                if intent.kind == _IntentKind.LEAVE:
                    state.status = MemberStatus.LEAVING
            self._members[node.name] = state
        else:
            state.status, state.leave_time = MemberStatus.ALIVE, 0.0
            state.address, state.tags = node.address, decode_tags(node.meta)
        self._member_event(MemberEventKind.JOIN, state, f"EventMemberJoin: {state.name} {_host(state.address)}")

    def _node_update(self, node: CoreMember) -> None:
        state = self._members.get(node.name)
        if state is None:
            return
        state.address, state.tags = node.address, decode_tags(node.meta)
        self._member_event(MemberEventKind.UPDATE, state, f"EventMemberUpdate: {state.name}")

    def _node_leave(self, node: CoreMember, graceful: bool, now: float) -> None:
        """The core declared a member dead (`graceful`: by its own leave message)."""
        state = self._members.get(node.name)
        if state is None:
            return
        # serf decides left-or-failed by whether a leave intent arrived first; the core also tells us the
        # member announced its own leave, which settles it even if the intent is still on its way.
        if state.status == MemberStatus.LEAVING or (graceful and state.status == MemberStatus.ALIVE):
            state.status = MemberStatus.LEFT
            kind, text = MemberEventKind.LEAVE, "EventMemberLeave"
        elif state.status == MemberStatus.ALIVE:
            state.status = MemberStatus.FAILED
            kind, text = MemberEventKind.FAILED, "EventMemberFailed"
        else:
            self._log("WARN", f"Bad state when leave: {int(state.status)}")
            return
        state.leave_time = now
        self._member_event(kind, state, f"{text}: {state.name} {_host(state.address)}")

    def _on_message(self, payload: bytes, now: float) -> None:
        message = decode_message(payload)
        if message is None:
            self.stats["malformed_messages"] += 1
            self._log("ERR", "Error decoding message")
            return
        if isinstance(message, JoinIntent):
            if self._join_intent(message, now):
                self.core.broadcast(payload, _intent_key(message.node))
        elif isinstance(message, LeaveIntent):
            if self._leave_intent(message, now):
                self.core.broadcast(payload, _intent_key(message.node))
        elif isinstance(message, QueryMessage):
            if self._handle_query(message, now):
                self.core.broadcast(payload)
        elif isinstance(message, QueryResponseMessage):
            self._handle_query_response(message)
        elif isinstance(message, RelayMessage):
            self._handle_relay(message)
        elif self._user_event(message):
            self.core.broadcast(payload)

    # ---- intents --------------------------------------------------------------------------------------

    def _join_intent(self, intent: JoinIntent, now: float) -> bool:
        """Apply a join intent; True when it was news (to be gossiped on)."""
        self.clock.witness(intent.ltime)
        state = self._members.get(intent.node)
        if state is None:
            return self._remember_intent(intent.node, _IntentKind.JOIN, intent.ltime, now)
        if intent.ltime <= state.status_ltime:
            return False
        state.status_ltime = intent.ltime
        if state.status == MemberStatus.LEAVING:
            state.status = MemberStatus.ALIVE
        return True

    def _leave_intent(self, intent: LeaveIntent, now: float) -> bool:
        """Apply a leave intent; True when it was news (to be gossiped on). An intent older than what we
        know of the member is stale and ignored; one about us while we are alive is refuted."""
        self.clock.witness(intent.ltime)
        state = self._members.get(intent.node)
        if state is None:
            return self._remember_intent(intent.node, _IntentKind.LEAVE, intent.ltime, now)
        if intent.ltime <= state.status_ltime:
            return False
        if intent.node == self.name and self.state == SerfState.ALIVE:
            self._log("DEBUG", "Refuting an older leave intent")
            self._broadcast_join(self.clock.time(), now)
            return False
        state.status_ltime = intent.ltime
        if state.status == MemberStatus.ALIVE:
            state.status = MemberStatus.LEAVING
        elif state.status == MemberStatus.FAILED:
            state.status, state.leave_time = MemberStatus.LEFT, now
            self._member_event(MemberEventKind.LEAVE, state,
                               f"EventMemberLeave (forced): {state.name} {_host(state.address)}")
        elif state.status not in (MemberStatus.LEAVING, MemberStatus.LEFT):
            return False
        if intent.prune:
            self._prune(state, now)
        return True

    def _remember_intent(self, node: str, kind: _IntentKind, ltime: int, now: float) -> bool:
        held = self._intents.get(node)
        if held is not None and ltime <= held.ltime:
            return False
        self._intents[node] = _Intent(kind, ltime, now)
        return True

    def _broadcast_join(self, ltime: int, now: float) -> None:
        intent = JoinIntent(ltime, self.name)
        self.clock.witness(ltime)
        self._join_intent(intent, now)
        self.core.broadcast(encode(intent), _intent_key(self.name))

    def _prune(self, state: _MemberState, now: float) -> None:
        """Forget a member at once; one still leaving gets time to finish first, as in serf."""
        if state.status == MemberStatus.LEAVING:
            delay = self.config.broadcast_timeout + self.config.leave_propagate_delay
            self._timers.at(now + delay, partial(self._prune_due, state))
        else:
            self._erase(state, f"EventMemberReap (forced): {state.name} {_host(state.address)}")

    def _prune_due(self, state: _MemberState, _: float) -> None:
        if self._members.get(state.name) is state and state.status != MemberStatus.ALIVE:
            self._erase(state, f"EventMemberReap (forced): {state.name} {_host(state.address)}")

    def _erase(self, state: _MemberState, text: str) -> None:
        del self._members[state.name]
        if self._vivaldi is not None:
            self._vivaldi.forget(state.name)
        self._coordinates.pop(state.name, None)
        self._member_event(MemberEventKind.REAP, state, text)

    def _has_alive_members(self) -> bool:
        return any(m.status == MemberStatus.ALIVE and m.name != self.name for m in self._members.values())

    # ---- user events ----------------------------------------------------------------------------------

    def _user_event(self, message: UserEventMessage) -> bool:
        """Deliver a user event unless seen, too old, or from before our start; True when it was delivered."""
        size = len(self._event_buffer)
        if not self._in_window(self.event_clock, message.ltime, self._event_min_time, size, "event", message.name):
            return False
        index = message.ltime % size
        slot = self._event_buffer[index]
        event = (message.name, message.payload)
        if slot is not None and slot.ltime == message.ltime:
            if event in slot.events:
                return False
            slot.events.append(event)
        else:
            self._event_buffer[index] = _EventSlot(message.ltime, [event])
        self._last_event_ltime = max(self._last_event_ltime, message.ltime)
        self._out.events.append(UserEvent(message.ltime, message.name, message.payload, message.coalesce))
        return True

    # ---- queries --------------------------------------------------------------------------------------

    def _query_here(self, message: QueryMessage, now: float) -> None:
        self._handle_query(message, now)

    def _handle_query(self, message: QueryMessage, now: float) -> bool:
        """Run a query unless seen, too old, or from before our start; True when it is to be gossiped on."""
        if not self._in_window(self.query_clock, message.ltime, self._query_min_time, len(self._query_buffer), "query",
                               message.name):
            return False
        if not self._query_buffer.first_sight(message.ltime, message.id):
            return False
        if message.flags & QUERY_FLAG_ACK:
            ack = QueryResponseMessage(message.ltime, message.id, self.name, QUERY_FLAG_ACK, b"")
            self._send_response(message.address, message.relay_factor, ack, encode(ack))
        if message.name in KEY_QUERIES:
            self._answer_key_query(message)
        elif message.name.startswith(INTERNAL_QUERY_PREFIX):
            if message.name != PING_QUERY:  # a ping's ack is its whole answer
                self._log("WARN", f"Unhandled internal query '{message.name.removeprefix(INTERNAL_QUERY_PREFIX)}'")
        else:
            self._out.events.append(Query(message.ltime, message.id, message.name, message.payload,
                                          message.source_node, message.address, message.relay_factor,
                                          now + message.timeout))
        return not message.flags & QUERY_FLAG_NO_BROADCAST

    def _answer_key_query(self, message: QueryMessage) -> None:
        answer = answer_key_query(self._keyring, message.name, message.payload)
        for level, text in answer.logs:
            self._log(level, text)
        if answer.changed:
            self._out.events.append(KeyringChanged())

        def wrap(response: NodeKeyResponse) -> QueryResponseMessage:
            return QueryResponseMessage(message.ltime, message.id, self.name, 0, encode(response))

        limit = self.config.query_response_size_limit
        response = answer.response
        if message.name == LIST_KEYS_QUERY:
            fitted = fit_key_list(response, lambda r: encode(wrap(r)), limit)
            if fitted is None:
                self._log("ERR", "Failed to truncate response so that it fits into message")
                return
            raw, response = fitted
            if response is not answer.response:
                self._log("WARN", response.message)
        else:
            raw = encode(wrap(response))
            if len(raw) > limit:
                self._log("ERR", f"Failed to respond to key query: response exceeds limit of {limit} bytes")
                return
        self._send_response(message.address, message.relay_factor, wrap(response), raw)

    def _send_response(self, address: Address, relay_factor: int, response: QueryResponseMessage, raw: bytes) -> None:
        """An answer (`raw` encodes `response`) to the querier at `address`, and copies through `relay_factor`
        random other members; our own answer to our own query is taken directly."""
        if address == self.address:
            self._handle_query_response(response)
            return
        self.core.send_user(address, raw)
        # A relay only pays off with enough other members to spread over (serf's check).
        if relay_factor == 0 or len(self._members) < relay_factor + 1:
            return
        relay = encode(RelayMessage(address, raw))
        if len(relay) > self.config.query_response_size_limit:
            self._log("ERR", "failed to relay response: relayed response exceeds limit of "
                             f"{self.config.query_response_size_limit} bytes")
            return
        others = [m for m in self._members.values() if m.status == MemberStatus.ALIVE and m.name != self.name]
        for member in self._rng.sample(others, min(relay_factor, len(others))):
            self.core.send_user(member.address, relay)

    def _handle_relay(self, relay: RelayMessage) -> None:
        """Pass a relayed answer on to its querier (or take it, when the querier is us)."""
        if relay.address != self.address:
            self.core.send_user(relay.address, relay.response)
            return
        response = decode_message(relay.response)
        if isinstance(response, QueryResponseMessage):
            self._handle_query_response(response)
        else:
            self.stats["malformed_messages"] += 1

    def _handle_query_response(self, response: QueryResponseMessage) -> None:
        query = self._open_queries.get(response.ltime)
        if query is None:
            self._log("WARN", f"reply for non-running query (LTime: {response.ltime}, ID: {response.id}) "
                              f"From: {response.from_node}")
            return
        if query.id != response.id:
            self._log("WARN", f"query reply ID mismatch (Local: {query.id}, Response: {response.id})")
            return
        if response.flags & QUERY_FLAG_ACK:
            if response.from_node in query.acks:
                self.stats["query_duplicate_acks"] += 1
                return
            query.acks.add(response.from_node)
            self._out.events.append(QueryAck(query.id, response.from_node))
        else:
            if response.from_node in query.responses:
                self.stats["query_duplicate_responses"] += 1
                return
            query.responses.add(response.from_node)
            self._out.events.append(QueryResponse(query.id, response.from_node, response.payload))
        if query.complete():
            del self._open_queries[response.ltime]
            self._out.events.append(QueryDone(query.id))

    def _query_timeout(self, ltime: int, query_id: int, _: float) -> None:
        query = self._open_queries.get(ltime)
        if query is not None and query.id == query_id:
            del self._open_queries[ltime]
            self._out.events.append(QueryDone(query_id))

    # ---- push-pull ------------------------------------------------------------------------------------

    def _local_state(self, join: bool) -> bytes:
        return encode(PushPullState(
            self.clock.time(),
            {m.name: m.status_ltime for m in self._members.values()},
            tuple(m.name for m in self._members.values() if m.status == MemberStatus.LEFT),
            self.event_clock.time(),
            tuple(EventsAt(s.ltime, tuple(s.events)) for s in self._event_buffer if s is not None),
            self.query_clock.time()))

    def _merge_remote(self, payload: bytes, join: bool, now: float) -> None:
        remote = decode_push_pull(payload)
        if remote is None:
            self.stats["malformed_remote_states"] += 1
            self._log("ERR", "Failed to decode remote state")
            return
        # Minus one: the sender has not used its current times yet.
        for clock, seen in ((self.clock, remote.ltime), (self.event_clock, remote.event_ltime),
                            (self.query_clock, remote.query_ltime)):
            if seen > 0:
                clock.witness(seen - 1)
        # Left members first, one past their last status time (the leave was accepted after it).
        left = set(remote.left_members)
        for name in remote.left_members:
            self._leave_intent(LeaveIntent(remote.status_ltimes.get(name, 0) + 1, name, False), now)
        for name, ltime in remote.status_ltimes.items():
            if name not in left:
                self._join_intent(JoinIntent(ltime, name), now)
        if join and any(attempt.ignore_old for attempt in self._joins):
            self._event_min_time = max(self._event_min_time, remote.event_ltime)
        for slot in remote.events:
            for name, event_payload in slot.events:
                self._user_event(UserEventMessage(slot.ltime, name, event_payload, False))

    # ---- joining, rejoining, reconnecting -------------------------------------------------------------

    def _join_result(self, result: JoinResult, now: float) -> None:
        for attempt in self._joins:
            if result.address in attempt.pending:
                attempt.pending.remove(result.address)
                attempt.contacted += result.ok
                if not attempt.pending:
                    self._joins.remove(attempt)
                    if attempt.contacted > 0 and self.state == SerfState.ALIVE:
                        self._broadcast_join(self.clock.time(), now)
                    self._out.events.append(JoinDone(attempt.addresses, attempt.contacted))
                return
        if self._rejoin and result.address == self._rejoin[0]:
            if result.ok:
                self._log("INFO", f"Re-joined to previously known node: {result.address}")
                self._rejoin.clear()
            else:
                self._rejoin.pop(0)
                if not self._rejoin:
                    self._log("WARN", "Failed to re-join any previously known node")
                self._next_rejoin(now)

    def _next_rejoin(self, now: float) -> None:
        if self._rejoin:
            self._log("INFO", f"Attempting re-join to previously known node: {self._rejoin[0]}")
            self.core.join([self._rejoin[0]], now)

    def _reconnect_tick(self, now: float) -> None:
        """Try one failed member again, with probability failed/alive, so a healed partition rejoins."""
        self._timers.at(now + self.config.reconnect_interval, self._reconnect_tick)
        failed = [m for m in self._members.values() if m.status == MemberStatus.FAILED]
        if not failed or self.state != SerfState.ALIVE:
            return
        left = sum(1 for m in self._members.values() if m.status == MemberStatus.LEFT)
        alive = max(len(self._members) - len(failed) - left, 1)
        if self._rng.random() > len(failed) / alive:
            self._log("DEBUG", "forgoing reconnect for random throttling")
            return
        member = failed[self._rng.randrange(len(failed))]
        self._log("INFO", f"attempting reconnect to {member.name} {member.address}")
        self.core.join([member.address], now)

    def _reap_tick(self, now: float) -> None:
        """Forget failed members after reconnect_timeout and left ones after tombstone_timeout."""
        self._timers.at(now + self.config.reap_interval, self._reap_tick)
        timeouts = {MemberStatus.FAILED: self.config.reconnect_timeout,
                    MemberStatus.LEFT: self.config.tombstone_timeout}
        for state in list(self._members.values()):
            timeout = timeouts.get(state.status)
            if timeout is not None and now - state.leave_time > timeout:
                self._erase(state, f"EventMemberReap: {state.name}")
        expiry = now - self.config.recent_intent_timeout
        self._intents = {node: i for node, i in self._intents.items() if i.received > expiry}

    # ---- coordinates ----------------------------------------------------------------------------------

    def _ack_payload(self) -> bytes:
        assert self._vivaldi is not None
        return encode(self._vivaldi.coordinate())

    def _ping_complete(self, ping: PingComplete) -> None:
        if self._vivaldi is None or not ping.payload:
            return
        coordinate = decode_coordinate(ping.payload, self.config.vivaldi.dimensionality)
        if coordinate is None:
            self.stats["coordinates_rejected"] += 1
            self._log("ERR", f"Failed to decode coordinate from ping by {ping.node}")
            return
        try:
            self._vivaldi.update(ping.node, coordinate, ping.rtt)
        except CoordinateRejected as exc:
            self.stats["coordinates_rejected"] += 1
            self._log("DEBUG", f"Rejected coordinate from {ping.node}: {exc}")
            return
        self._coordinates[ping.node] = coordinate
        self._coordinates[self.name] = self._vivaldi.coordinate()

    # ---- small helpers --------------------------------------------------------------------------------

    def _in_window(self, clock: LamportClock, ltime: int, min_time: int, buffer: int, kind: str, name: str) -> bool:
        """Witness `ltime`; False for a time before our start, or older than a buffer of `buffer` slots can
        still de-duplicate (logged, as serf does)."""
        clock.witness(ltime)
        if ltime < min_time:
            return False
        current = clock.time()
        if current > buffer and ltime < current - buffer:
            self._log("WARN", f"received old {kind} {name} from time {ltime} (current: {current})")
            return False
        return True

    def _member_event(self, kind: MemberEventKind, state: _MemberState, text: str) -> None:
        self._log("INFO", text)
        self._out.events.append(MemberEvent(kind, state.member()))

    def _log(self, level: str, text: str) -> None:
        self._out.events.append(LogLine(level, f"serf: {text}"))
