"""Consul's user events as an agent holds them: validation, the receiving-side filters, the ring of the last 256
events and blocking waits on it; until the Serf layer exists, also Serf's part (size limits, Lamport clock,
de-duplication window).

The seam for gossip: `fire` validates and encodes an event as Consul does (msgpack, Consul's codec names) and
`broadcast` hands a `SerfUserEvent` (name `consul:event:<name>`, the encoded event, its Lamport time) to the
pluggable `broadcaster`, which today is `ingest` on this same object (local delivery only). The Serf layer will
install a broadcaster that gossips the message and delivers it locally, and call `ingest` with every user event
it receives (anything with `ltime`, `name`, `payload`: `GossipedUserEvent`). `ingest` witnesses the Lamport time,
drops events outside Serf's 512-slot window or whose ID it has seen, applies the node/service/tag filters to this
agent, appends to the ring and wakes blocked `/v1/event/list` queries.
Imports: stdlib, msgpack, consulpy.filter (Go regexp translation), consulpy.serf.lamport, consulpy.state (records).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import msgpack

from consulpy.serf.lamport import LamportClock
from consulpy.state import NodeService

log = logging.getLogger("consulpy.agent")

USER_EVENT_VERSION = 1
RING_SIZE = 256
SERF_EVENT_WINDOW = 512
SERF_EVENT_SIZE_LIMIT = 512
SERF_USER_EVENT_TYPE = 8
EVENT_NAME_PREFIX = "consul:event:"
REMOTE_EXEC_NAME = "_rexec"
TOO_LARGE_BEFORE_ENCODING = (f"error broadcasting event: user event exceeds configured limit of "
                             f"{SERF_EVENT_SIZE_LIMIT} bytes before encoding")
TOO_LARGE_AFTER_ENCODING = (f"error broadcasting event: encoded user event exceeds configured limit of "
                            f"{SERF_EVENT_SIZE_LIMIT} bytes after encoding")


class UserEventError(Exception):
    """An event Consul refuses to fire; the message is Consul's error text."""


class GoRegexpError(ValueError):
    """A pattern Go's regexp package refuses; the message is Go's `error parsing regexp: …` text."""


def _go_regexp_error(pattern: str, exc: re.error) -> str:
    """Go's wording for the syntax error Python found (the usual cases; others keep Python's words)."""
    message, pos = exc.msg, exc.pos or 0
    if message == "unterminated character set":
        return f"missing closing ]: `{pattern[pos:]}`"
    if message.startswith("missing ), unterminated subpattern"):
        return f"missing closing ): `{pattern}`"
    if message == "unbalanced parenthesis":
        return f"unexpected ): `{pattern}`"
    if message == "nothing to repeat":
        return f"missing argument to repetition operator: `{pattern[pos:pos + 1]}`"
    if message == "multiple repeat":
        return f"invalid nested repetition operator: `{pattern[pos - 1:pos + 1]}`"
    if message == "bad escape (end of pattern)":
        return "trailing backslash at end of expression: ``"
    if message.startswith("bad escape"):
        return f"invalid escape sequence: `{pattern[pos:pos + 2]}`"
    if message.startswith("bad character range"):
        return f"invalid character class range: `{message.removeprefix('bad character range ')}`"
    if message == "min repeat greater than max repeat":
        end = pattern.find("}", pos)
        return f"invalid repeat count: `{pattern[pos:end + 1]}`"
    return message


def compile_go_regexp(pattern: str) -> re.Pattern[str]:
    """Go's regexp.Compile: RE2 spellings translated to Python's, errors worded as Go's."""
    from consulpy.filter import translate_go_regex  # loads with the first regexp: ~6 ms off every agent start

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return re.compile(translate_go_regex(pattern), re.ASCII)
    except (re.error, OverflowError, RecursionError) as exc:
        detail = _go_regexp_error(pattern, exc) if isinstance(exc, re.error) else str(exc)
        raise GoRegexpError(f"error parsing regexp: {detail}") from None


def event_index(event_id: str) -> int:
    """Consul's uuidToUint64: the UUID's first 64 bits XOR its last 64 bits, the index of an event list."""
    hex_digits = event_id.replace("-", "")
    return int(hex_digits[:16], 16) ^ int(hex_digits[16:32], 16)


@dataclass(slots=True, frozen=True)
class UserEvent:
    """One user event as Consul's agent.UserEvent; `ltime` is the Lamport time gossip delivered it at."""

    id: str
    name: str
    payload: bytes | None = None
    node_filter: str = ""
    service_filter: str = ""
    tag_filter: str = ""
    version: int = USER_EVENT_VERSION
    ltime: int = 0

    def encode(self) -> bytes:
        """The event as Consul encodes it for gossip (codec names, empty optionals left out, no LTime)."""
        fields: dict[str, object] = {"ID": self.id, "n": self.name}
        if self.payload:
            fields["p"] = self.payload
        for key, value in (("nf", self.node_filter), ("sf", self.service_filter), ("tf", self.tag_filter)):
            if value:
                fields[key] = value
        fields["v"] = self.version
        return msgpack.packb(fields, use_bin_type=True)

    @classmethod
    def decode(cls, raw: bytes, ltime: int) -> UserEvent:
        """An encoded event as gossip carries it; raises ValueError when it is not one."""
        try:
            fields = msgpack.unpackb(raw, raw=False)
        except (msgpack.UnpackException, ValueError) as exc:
            raise ValueError(f"malformed event: {exc}") from None
        if not isinstance(fields, dict):
            raise ValueError("malformed event: not a map")
        payload = fields.get("p")
        texts = [fields.get(key, "") for key in ("ID", "n", "nf", "sf", "tf")]
        version = fields.get("v", 0)
        if not all(isinstance(text, str) for text in texts) or not isinstance(version, int) \
                or not (payload is None or isinstance(payload, bytes)):
            raise ValueError("malformed event: wrong field types")
        event_id, name, node_filter, service_filter, tag_filter = texts
        return cls(event_id, name, payload or None, node_filter, service_filter, tag_filter, version, ltime)

    def json(self) -> dict[str, object]:
        """The event as the HTTP API shows it: Payload base64, or null when there is none."""
        payload = base64.b64encode(self.payload).decode() if self.payload is not None else None
        return {"ID": self.id, "Name": self.name, "Payload": payload, "NodeFilter": self.node_filter,
                "ServiceFilter": self.service_filter, "TagFilter": self.tag_filter, "Version": self.version,
                "LTime": self.ltime}


@dataclass(slots=True, frozen=True)
class SerfUserEvent:
    """What Serf gossips for a user event (its messageUserEvent): the prefixed name, the encoded event, LTime."""

    ltime: int
    name: str
    payload: bytes
    coalesce: bool = False

    def encode(self) -> bytes:
        """Serf's wire form: the message type byte, then msgpack in the old raw-string format."""
        body = {"LTime": self.ltime, "Name": self.name, "Payload": self.payload, "CC": self.coalesce}
        return bytes((SERF_USER_EVENT_TYPE,)) + msgpack.packb(body, use_bin_type=False)


Broadcaster = Callable[[SerfUserEvent], object]


class GossipedUserEvent(Protocol):
    """What `ingest` reads from a Serf user event: a `SerfUserEvent`, or the Serf layer's own record of one."""

    @property
    def ltime(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def payload(self) -> bytes: ...


def bad_filter(node_filter: str, service_filter: str, tag_filter: str) -> tuple[str, GoRegexpError] | None:
    """The first of the filters Go's regexp package refuses, as ("node"|"service"|"tag", its error)."""
    for label, pattern in (("node", node_filter), ("service", service_filter), ("tag", tag_filter)):
        if pattern:
            try:
                compile_go_regexp(pattern)
            except GoRegexpError as exc:
                return label, exc
    return None


def validate(name: str, node_filter: str = "", service_filter: str = "", tag_filter: str = "") -> None:
    """Consul's validateUserEventParams: a name, no tag filter alone, filters that compile."""
    if not name:
        raise UserEventError("User event missing name")
    if tag_filter and not service_filter:
        raise UserEventError("Cannot provide tag filter without service filter")
    bad = bad_filter(node_filter, service_filter, tag_filter)
    if bad is not None:
        raise UserEventError(f"Invalid {bad[0]} filter: {bad[1]}")


@dataclass(slots=True)
class _SeenSlot:
    ltime: int
    ids: set[str] = field(default_factory=set)


class UserEvents:
    """The agent's user events: fire, ingest, the ring, and waiting for the next event."""

    def __init__(self, node_name: str, services: Callable[[], Mapping[str, NodeService]],
                 remote_exec_disabled: bool = True) -> None:
        self.node_name = node_name
        self.services = services
        self.remote_exec_disabled = remote_exec_disabled
        self.clock = LamportClock(start=1)  # as Serf's event clock: no event carries time 0
        self.broadcaster: Broadcaster = self.ingest
        self._ring: deque[UserEvent] = deque(maxlen=RING_SIZE)
        self._seen: list[_SeenSlot | None] = [None] * SERF_EVENT_WINDOW
        self._waiters: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ firing

    def fire(self, name: str, payload: bytes | None = None, node_filter: str = "", service_filter: str = "",
             tag_filter: str = "") -> UserEvent:
        """Validate, encode and broadcast a new event; returns it as Consul's fire endpoint does (LTime 0)."""
        validate(name, node_filter, service_filter, tag_filter)
        event = UserEvent(str(uuid.uuid4()), name, payload or None, node_filter, service_filter, tag_filter)
        self.broadcast(event)
        return event

    def broadcast(self, event: UserEvent) -> None:
        """Serf's UserEvent: both size limits, then the clock moves and the message goes to the broadcaster."""
        serf_name = EVENT_NAME_PREFIX + event.name
        encoded = event.encode()
        if len(serf_name.encode()) + len(encoded) > SERF_EVENT_SIZE_LIMIT:
            raise UserEventError(TOO_LARGE_BEFORE_ENCODING)
        message = SerfUserEvent(self.clock.time(), serf_name, encoded)
        if len(message.encode()) > SERF_EVENT_SIZE_LIMIT:
            raise UserEventError(TOO_LARGE_AFTER_ENCODING)
        self.clock.increment()
        self.broadcaster(message)

    # ------------------------------------------------------------------ receiving

    def ingest(self, message: GossipedUserEvent) -> bool:
        """Take a user event from Serf (local or gossiped); True when it entered the ring."""
        self.clock.witness(message.ltime)
        if not message.name.startswith(EVENT_NAME_PREFIX):
            return False
        now = self.clock.time()
        if now > SERF_EVENT_WINDOW and message.ltime < now - SERF_EVENT_WINDOW:
            log.warning("serf: received old event %s from time %d (current: %d)", message.name, message.ltime, now)
            return False
        try:
            event = UserEvent.decode(message.payload, message.ltime)
        except ValueError as exc:
            log.error("Failed to decode event: error=%s", exc)
            return False
        if not self._first_sighting(event):
            return False
        if not self.should_process(event):
            return False
        if event.name == REMOTE_EXEC_NAME:
            if self.remote_exec_disabled:
                log.info("ignoring remote exec event, disabled.: event_name=%s event_id=%s", event.name, event.id)
            else:
                log.warning("remote exec is not supported: event_name=%s event_id=%s", event.name, event.id)
            return False
        log.debug("new event: event_name=%s event_id=%s", event.name, event.id)
        self._ring.append(event)
        self._wake()
        return True

    def _first_sighting(self, event: UserEvent) -> bool:
        """Serf's de-duplication window: one slot per Lamport time modulo the window, IDs seen at that time."""
        index = event.ltime % SERF_EVENT_WINDOW
        slot = self._seen[index]
        if slot is None or slot.ltime != event.ltime:
            slot = _SeenSlot(event.ltime)
            self._seen[index] = slot
        elif event.id in slot.ids:
            return False
        slot.ids.add(event.id)
        return True

    def should_process(self, event: UserEvent) -> bool:
        """Consul's shouldProcessUserEvent: the event's filters must match this node and its services."""
        if event.version > USER_EVENT_VERSION:
            log.warning("Event version may have unsupported features: version=%d event=%s", event.version,
                        event.name)
        try:
            if event.node_filter and not compile_go_regexp(event.node_filter).search(self.node_name):
                return False
            if event.service_filter:
                return self._matches_a_service(event)
        except GoRegexpError as exc:
            log.error("Failed to parse filter for event: event=%s error=%s", event.name, exc)
            return False
        return True

    def _matches_a_service(self, event: UserEvent) -> bool:
        """A local service whose ID matches the service filter, and one of its tags the tag filter if any."""
        service_re = compile_go_regexp(event.service_filter)
        tag_re = compile_go_regexp(event.tag_filter) if event.tag_filter else None
        for service_id, service in self.services().items():
            if not service_re.search(service_id):
                continue
            if tag_re is None or any(tag_re.search(tag) for tag in service.tags):
                return True
        return False

    # ------------------------------------------------------------------ reading

    def events(self, name: str = "") -> list[UserEvent]:
        """The ring, oldest first, only events called `name` when given."""
        return [event for event in self._ring if not name or event.name == name]

    async def wait_for_new(self, deadline: float) -> None:
        """Park until the next event enters the ring or the loop time reaches `deadline`: a future, no task."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        self._waiters.add(woken)
        timer = loop.call_at(deadline, _resolve, woken)
        try:
            await woken
        finally:
            timer.cancel()
            self._waiters.discard(woken)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            _resolve(waiter)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def list_index(events: list[UserEvent]) -> int:
    """The index an event list answers with: from its last event's ID, 1 when it is empty (Consul's rule)."""
    return event_index(events[-1].id) if events else 1
