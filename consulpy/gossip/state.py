"""The SWIM + Lifeguard membership core (`Memberlist`), sans-IO: inputs are received packets and streams,
stream replies and the current time; output is an `Output` batch of packets, stream requests and events.

It never reads a clock or a global random source: `now` (monotonic seconds) comes with every call and
randomness from the injected `random.Random`, so a simulator replays it exactly. Behaviour follows
hashicorp/memberlist's state.go. Imports: stdlib, codec, and this package.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from consulpy.codec import encode
from consulpy.gossip.awareness import Awareness
from consulpy.gossip.broadcast import BroadcastQueue
from consulpy.gossip.config import META_MAX_SIZE, Config
from consulpy.gossip.events import (
    JoinResult,
    LeaveComplete,
    LogLine,
    Member,
    MemberEvent,
    MemberEventKind,
    Output,
    Packet,
    PingComplete,
    RemoteState,
    StreamRequest,
    UserMessage,
)
from consulpy.gossip.messages import (
    COMPOUND_OVERHEAD,
    Ack,
    Address,
    Alive,
    Dead,
    IndirectPing,
    MemberState,
    Nack,
    PacketMessage,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
    compound,
    decode_packet,
    decode_stream,
)
from consulpy.gossip.suspicion import Suspicion, suspicion_timeout

# Above this many members the push-pull interval grows with log2 of the size (memberlist's threshold).
PUSH_PULL_SCALE_THRESHOLD = 32


def push_pull_interval(interval: float, members: int) -> float:
    if members <= PUSH_PULL_SCALE_THRESHOLD:
        return interval
    return (math.ceil(math.log2(members) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1.0) * interval


@dataclass(slots=True, eq=False)
class _Node:
    name: str
    address: Address
    meta: bytes
    incarnation: int
    state: MemberState
    state_change: float

    def dead_or_left(self) -> bool:
        return self.state in (MemberState.DEAD, MemberState.LEFT)

    def member(self) -> Member:
        return Member(self.name, self.address, self.meta, self.state, self.incarnation)


@dataclass(slots=True, eq=False)
class _Probe:
    """One round of probing `target`: direct ping, then helpers and the TCP fallback, until `deadline`."""

    seq: int
    target: str
    address: Address
    incarnation: int
    started: float
    deadline: float
    done: bool = False
    nacks: int = 0
    expected_nacks: int = 0
    fallback_ok: bool = False


@dataclass(slots=True, eq=False)
class _AckHandler:
    on_ack: Callable[[Ack, float], None]
    on_nack: Callable[[], None] | None = None


@dataclass(slots=True, frozen=True)
class _PushPullRequest:
    address: Address
    join: bool


class Memberlist:
    """One member's view of the cluster and the protocol that keeps it current.

    Drive it with `receive_packet`, `handle_stream`, `stream_reply` and `tick` (whenever `next_deadline()`
    has passed), and after each call take what it produced with `poll()`.
    """

    def __init__(
        self,
        config: Config,
        name: str,
        address: Address,
        *,
        rng: random.Random,
        now: float,
        meta: bytes = b"",
        local_state: Callable[[bool], bytes] | None = None,
        ack_payload: Callable[[], bytes] | None = None,
    ) -> None:
        """`local_state(join)` gives the layer above's state for a push-pull; `ack_payload()` what acks carry."""
        _check_meta(meta)
        self.config = config
        self.name = name
        self.address = address
        self.stats: Counter[str] = Counter()
        self._rng = rng
        self._local_state = local_state
        self._ack_payload = ack_payload
        self._nodes: list[_Node] = []
        self._by_name: dict[str, _Node] = {}
        self._probe_index = 0
        self._incarnation = 0
        self._seq = 0
        self._stream_id = 0
        self._broadcasts = BroadcastQueue(config.retransmit_mult)
        self._user_broadcasts = BroadcastQueue(config.retransmit_mult)
        self._awareness = Awareness(config.awareness_max_multiplier, enabled=config.lifeguard)
        self._suspicions: dict[str, Suspicion] = {}
        self._ack_handlers: dict[int, _AckHandler] = {}
        self._streams: dict[int, _Probe | _PushPullRequest] = {}
        self._timers: list[tuple[float, int, Callable[[float], None]]] = []
        self._timer_seq = 0
        self._out = Output()
        self._left = False
        self._leave_pending = False

        self._alive_node(Alive(self._next_incarnation(), name, address, meta), now, bootstrap=True)
        # Random stagger so that members started together do not probe and gossip in lockstep.
        self._at(now + rng.random() * config.probe_interval, self._probe_tick)
        if config.gossip_interval > 0 and config.gossip_nodes > 0:
            self._at(now + rng.random() * config.gossip_interval, self._gossip_tick)
        if config.push_pull_interval > 0:
            self._at(now + rng.random() * config.push_pull_interval, self._push_pull_tick)

    # ---- public surface -------------------------------------------------------------------------------

    def poll(self) -> Output:
        """Everything produced since the last poll."""
        out, self._out = self._out, Output()
        return out

    def next_deadline(self) -> float | None:
        """When `tick` must next be called."""
        return self._timers[0][0] if self._timers else None

    def tick(self, now: float) -> None:
        """Run every timer due at `now`."""
        while self._timers and self._timers[0][0] <= now:
            _, _, fire = heapq.heappop(self._timers)
            fire(now)

    def receive_packet(self, source: Address, data: bytes, now: float) -> None:
        messages = decode_packet(data)
        if messages is None:
            self.stats["malformed_packets"] += 1
            self._log("ERR", f"Failed to decode packet {source}")
            return
        for message in messages:
            self._handle(message, source, now)

    def handle_stream(self, source: Address, data: bytes, now: float) -> bytes | None:
        """An incoming stream frame (push-pull or fallback ping); returns the reply frame, or None to close."""
        message = decode_stream(data)
        if message is None:
            self.stats["malformed_streams"] += 1
            self._log("ERR", f"Failed to decode stream {source}")
            return None
        if isinstance(message, Ping):
            return self._ack_for(message)
        if isinstance(message, PushPull):
            reply = encode(self._local_push_pull(message.join))
            self._merge_remote(message, now)
            return reply
        return None

    def stream_reply(self, stream_id: int, data: bytes | None, now: float) -> None:
        """The reply to a `StreamRequest`, or None if it failed or timed out."""
        request = self._streams.pop(stream_id, None)
        reply = decode_stream(data) if data is not None else None
        if isinstance(request, _Probe):
            if isinstance(reply, Ack) and reply.seq == request.seq:
                request.fallback_ok = True
        elif isinstance(request, _PushPullRequest):
            if isinstance(reply, PushPull):
                self._merge_remote(reply, now)
            else:
                self.stats["push_pull_failed"] += 1
            if request.join:
                self._out.events.append(JoinResult(request.address, isinstance(reply, PushPull)))

    def join(self, addresses: list[Address], now: float) -> None:
        """Start a push-pull with each seed; a `JoinResult` per address follows."""
        for address in addresses:
            self._start_push_pull(address, True, now)

    def leave(self, now: float) -> None:
        """Announce a graceful leave; `LeaveComplete` follows once the announcement has been gossiped."""
        if self._left:
            return
        self._left = True
        me = self._by_name[self.name]
        self._dead_node(Dead(me.incarnation, self.name, self.name), now)
        if any(n.name != self.name and not n.dead_or_left() for n in self._nodes):
            self._leave_pending = True
        else:
            self._out.events.append(LeaveComplete())

    def update_meta(self, meta: bytes, now: float) -> None:
        """Gossip new metadata for this member (Serf tags), under a new incarnation."""
        _check_meta(meta)
        self._alive_node(Alive(self._next_incarnation(), self.name, self.address, meta), now, bootstrap=True)

    def broadcast(self, payload: bytes, key: str | None = None) -> None:
        """Gossip a payload of the layer above to every member; a newer one with the same key replaces it."""
        message = encode(UserMsg(payload))
        if len(message) > self.config.udp_buffer_size - COMPOUND_OVERHEAD:
            raise ValueError(f"broadcast of {len(payload)} bytes does not fit one packet")
        self._user_broadcasts.queue(message, key)
        self._user_broadcasts.prune(self.config.max_user_broadcasts)

    def send_user(self, address: Address, payload: bytes) -> None:
        """Send a payload of the layer above to one member, best effort."""
        message = encode(UserMsg(payload))
        if len(message) > self.config.udp_buffer_size:
            raise ValueError(f"message of {len(payload)} bytes does not fit one packet")
        self._out.packets.append(Packet(address, message))

    def members(self) -> list[Member]:
        """Every member this one knows, in any state (dead ones until they are reaped)."""
        return [n.member() for n in self._nodes]

    def member(self, name: str) -> Member | None:
        node = self._by_name.get(name)
        return node.member() if node is not None else None

    @property
    def health_score(self) -> int:
        """Lifeguard's local health score: 0 is healthy, higher stretches probing."""
        return self._awareness.score

    # ---- timers ---------------------------------------------------------------------------------------

    def _at(self, when: float, fire: Callable[[float], None]) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, fire))

    def _probe_tick(self, now: float) -> None:
        node = self._next_probe_target(now)
        if node is None:
            self._at(now + self.config.probe_interval, self._probe_tick)
        else:
            self._start_probe(node, now)

    def _gossip_tick(self, now: float) -> None:
        self._at(now + self.config.gossip_interval, self._gossip_tick)
        if not self._broadcasts and not self._user_broadcasts:
            return
        dead_for = self.config.gossip_to_the_dead_time

        def eligible(n: _Node) -> bool:
            if n.name == self.name or n.state == MemberState.LEFT:
                return False
            return n.state != MemberState.DEAD or now - n.state_change <= dead_for

        for node in self._random_nodes(self.config.gossip_nodes, eligible):
            messages = self._take_broadcasts(self.config.udp_buffer_size - COMPOUND_OVERHEAD)
            if not messages:
                return
            data = messages[0] if len(messages) == 1 else compound(messages)
            self._out.packets.append(Packet(node.address, data))

    def _push_pull_tick(self, now: float) -> None:
        self._at(now + push_pull_interval(self.config.push_pull_interval, len(self._nodes)), self._push_pull_tick)
        peers = self._random_nodes(1, lambda n: n.name != self.name and n.state == MemberState.ALIVE)
        if peers:
            self._start_push_pull(peers[0].address, False, now)

    # ---- probing --------------------------------------------------------------------------------------

    def _next_probe_target(self, now: float) -> _Node | None:
        """Round robin over a shuffled list; each wrap reaps long-dead members and reshuffles."""
        checked = 0
        while checked < len(self._nodes):
            if self._probe_index >= len(self._nodes):
                self._reset_nodes(now)
                self._probe_index = 0
                checked += 1
                continue
            node = self._nodes[self._probe_index]
            self._probe_index += 1
            if node.name != self.name and not node.dead_or_left():
                return node
            checked += 1
        return None

    def _reset_nodes(self, now: float) -> None:
        keep: list[_Node] = []
        for node in self._nodes:
            if node.name != self.name and node.dead_or_left() and (
                now - node.state_change > self.config.gossip_to_the_dead_time
            ):
                del self._by_name[node.name]
            else:
                keep.append(node)
        self._rng.shuffle(keep)
        self._nodes = keep

    def _start_probe(self, node: _Node, now: float) -> None:
        self._seq += 1
        probe = _Probe(self._seq, node.name, node.address, node.incarnation, now,
                       now + self._awareness.scale(self.config.probe_interval))
        parts = [encode(Ping(probe.seq, node.name, self.address, self.name))]
        if node.state != MemberState.ALIVE and self.config.lifeguard:
            # Lifeguard's buddy system: tell a suspect directly, so it can refute without waiting for gossip.
            parts.append(encode(Suspect(node.incarnation, node.name, self.name)))
        self._send(node.address, parts)

        def nacked() -> None:
            probe.nacks += 1

        self._ack_handlers[probe.seq] = _AckHandler(partial(self._probe_acked, probe), nacked)
        self._at(now + self.config.probe_timeout, partial(self._probe_timed_out, probe))
        self._at(probe.deadline, partial(self._probe_finished, probe))

    def _probe_acked(self, probe: _Probe, ack: Ack, now: float) -> None:
        if probe.done:
            return
        probe.done = True
        self._awareness.apply_delta(-1)
        self._out.events.append(PingComplete(probe.target, now - probe.started, ack.payload))
        self._next_probe(probe, now)

    def _probe_timed_out(self, probe: _Probe, now: float) -> None:
        """No direct ack in time: ask helpers to probe, and try the target over TCP, both until the deadline."""
        if probe.done:
            return
        helpers = self._random_nodes(
            self.config.indirect_checks,
            lambda n: n.name not in (self.name, probe.target) and n.state == MemberState.ALIVE)
        request = encode(IndirectPing(probe.seq, probe.address, probe.target, self.config.lifeguard,
                                      self.address, self.name))
        for helper in helpers:
            self._send(helper.address, [request])
        if self.config.lifeguard:
            probe.expected_nacks = len(helpers)
        if not self.config.disable_tcp_pings:
            self._stream_id += 1
            self._streams[self._stream_id] = probe
            ping = encode(Ping(probe.seq, probe.target, self.address, self.name))
            self._out.streams.append(StreamRequest(self._stream_id, probe.address, ping, probe.deadline))

    def _probe_finished(self, probe: _Probe, now: float) -> None:
        if probe.done:
            return
        probe.done = True
        self._ack_handlers.pop(probe.seq, None)
        if probe.fallback_ok:
            self._log("WARN", f"Was able to connect to {probe.target} over TCP but UDP probes failed, "
                              "network may be misconfigured")
            self._awareness.apply_delta(-1)
        else:
            # Helpers that stayed silent instead of nacking suggest the problem is ours, not the target's.
            missing = probe.expected_nacks - probe.nacks
            self._awareness.apply_delta(max(missing, 0) if probe.expected_nacks > 0 else 1)
            self.stats["probes_failed"] += 1
            self._log("INFO", f"Suspect {probe.target} has failed, no acks received")
            self._suspect_node(Suspect(probe.incarnation, probe.target, self.name), now)
        self._next_probe(probe, now)

    def _next_probe(self, probe: _Probe, now: float) -> None:
        """The next round starts one interval after this one started, or now if this one ran longer."""
        self._at(max(now, probe.started + self.config.probe_interval), self._probe_tick)

    def _ack_for(self, ping: Ping) -> bytes | None:
        if ping.node and ping.node != self.name:
            self._log("WARN", f"Got ping for unexpected node '{ping.node}' from={ping.source_addr}")
            return None
        return encode(Ack(ping.seq, self._ack_payload() if self._ack_payload is not None else b""))

    def _relay_probe(self, request: IndirectPing, source: Address, now: float) -> None:
        """Probe a member for someone else, forward the ack, and nack if it stays silent."""
        self._seq += 1
        seq = self._seq
        reply_to = request.source_addr or source
        acked = [False]

        def forward(_: Ack, __: float) -> None:
            acked[0] = True
            self._send(reply_to, [encode(Ack(request.seq, b""))])

        def expire(_: float) -> None:
            self._ack_handlers.pop(seq, None)
            if request.nack and not acked[0]:
                self._send(reply_to, [encode(Nack(request.seq))])

        self._ack_handlers[seq] = _AckHandler(forward)
        self._at(now + self.config.probe_timeout, expire)
        self._send(request.target, [encode(Ping(seq, request.node, self.address, self.name))])

    # ---- messages -------------------------------------------------------------------------------------

    def _handle(self, message: PacketMessage, source: Address, now: float) -> None:
        if isinstance(message, Ping):
            ack = self._ack_for(message)
            if ack is not None:
                self._send(message.source_addr or source, [ack])
        elif isinstance(message, IndirectPing):
            self._relay_probe(message, source, now)
        elif isinstance(message, Ack):
            handler = self._ack_handlers.pop(message.seq, None)
            if handler is not None:
                handler.on_ack(message, now)
        elif isinstance(message, Nack):
            nack_handler = self._ack_handlers.get(message.seq)
            if nack_handler is not None and nack_handler.on_nack is not None:
                nack_handler.on_nack()
        elif isinstance(message, Alive):
            if len(message.meta) <= META_MAX_SIZE:
                self._alive_node(message, now)
        elif isinstance(message, Suspect | Dead):
            if isinstance(message, Suspect):
                self._suspect_node(message, now)
            else:
                self._dead_node(message, now)
            self._correct_stale(message, source)
        else:
            self._out.events.append(UserMessage(message.payload))

    def _alive_node(self, alive: Alive, now: float, bootstrap: bool = False) -> None:
        if self._left and alive.node == self.name:
            return
        node = self._by_name.get(alive.node)
        updates_address = False
        if node is None:
            node = _Node(alive.node, alive.address, alive.meta, 0, MemberState.DEAD, now)
            self._by_name[node.name] = node
            # A random position keeps the detection bound low: appending everywhere would make every
            # member probe a newcomer last.
            offset = self._rng.randrange(len(self._nodes)) if self._nodes else 0
            self._nodes.append(node)
            self._nodes[offset], self._nodes[-1] = self._nodes[-1], self._nodes[offset]
        elif node.address != alive.address:
            reclaim = self.config.dead_node_reclaim_time
            if node.state == MemberState.LEFT or (
                    node.state == MemberState.DEAD and reclaim > 0 and now - node.state_change > reclaim):
                self._log("INFO", f"Updating address for left or failed node {node.name} from {node.address} "
                                  f"to {alive.address}")
                updates_address = True
            else:
                self.stats["address_conflicts"] += 1
                self._log("ERR", f"Conflicting address for {node.name}. Mine: {node.address} Theirs: "
                                 f"{alive.address} Old state: {node.state.name.lower()}")
                return
        local = node.name == self.name
        if alive.incarnation <= node.incarnation and not local and not updates_address:
            return
        if alive.incarnation < node.incarnation and local:
            return
        self._suspicions.pop(alive.node, None)
        old_state, old_meta = node.state, node.meta
        if local and not bootstrap:
            # Someone gossips about us with our own incarnation or a newer one: only a restart of this
            # member under the same name could cause it, so assert our own view with a newer incarnation.
            if alive.incarnation != node.incarnation or alive.meta != node.meta:
                self._refute(node, alive.incarnation)
                self._log("WARN", f"Refuting an alive message for '{alive.node}' ({alive.address})")
            return
        self._broadcasts.queue(encode(alive), alive.node)
        node.incarnation, node.meta, node.address = alive.incarnation, alive.meta, alive.address
        if node.state != MemberState.ALIVE:
            node.state, node.state_change = MemberState.ALIVE, now
        if old_state in (MemberState.DEAD, MemberState.LEFT):
            self._member_event(MemberEventKind.JOIN, node)
        elif old_meta != node.meta:
            self._member_event(MemberEventKind.UPDATE, node)

    def _suspect_node(self, suspect: Suspect, now: float, accuse: bool = True) -> None:
        """Take in a suspicion. With `accuse` False (learnt from a push-pull, not observed or gossiped) it
        starts our own timer but is neither gossiped nor counted as a confirmation."""
        node = self._by_name.get(suspect.node)
        if node is None or suspect.incarnation < node.incarnation:
            return
        existing = self._suspicions.get(suspect.node)
        if existing is not None:
            # An independent accuser shortens the timer, and is re-gossiped so others hear it too.
            if accuse and existing.confirm(suspect.from_node):
                self._broadcasts.queue(encode(suspect), suspect.node)
                self._at(existing.deadline, partial(self._suspicion_expired, node, existing))
            return
        if node.state != MemberState.ALIVE:
            return
        if node.name == self.name:
            self._refute(node, suspect.incarnation)
            self._log("WARN", f"Refuting a suspect message (from: {suspect.from_node})")
            return
        if accuse:
            self._broadcasts.queue(encode(suspect), suspect.node)
        self.stats["suspicions"] += 1
        node.incarnation, node.state, node.state_change = suspect.incarnation, MemberState.SUSPECT, now
        # Lifeguard expects k confirmations, which arrive in the time the suspect mult leaves beyond two
        # probe intervals; too small a cluster cannot provide them.
        members = len(self._nodes)
        k = self.config.suspicion_mult - 2 if self.config.lifeguard else 0
        if members - 2 < k:
            k = 0
        minimum = suspicion_timeout(self.config.suspicion_mult, members, self.config.probe_interval)
        maximum = self.config.suspicion_max_timeout_mult * minimum
        # A suspicion we only pulled has no accuser of ours, so our own failed probe can still confirm it.
        suspicion = Suspicion(suspect.from_node if accuse else "", k, minimum, maximum, now)
        self._suspicions[node.name] = suspicion
        self._at(suspicion.deadline, partial(self._suspicion_expired, node, suspicion))

    def _suspicion_expired(self, node: _Node, suspicion: Suspicion, now: float) -> None:
        if self._suspicions.get(node.name) is not suspicion or now < suspicion.deadline:
            return
        self._log("INFO", f"Marking {node.name} as failed, suspect timeout reached "
                          f"({suspicion.confirmations} peer confirmations)")
        self._dead_node(Dead(node.incarnation, node.name, self.name), now)

    def _dead_node(self, dead: Dead, now: float) -> None:
        node = self._by_name.get(dead.node)
        if node is None or dead.incarnation < node.incarnation:
            return
        self._suspicions.pop(dead.node, None)
        if node.dead_or_left():
            return
        if node.name == self.name and not self._left:
            self._refute(node, dead.incarnation)
            self._log("WARN", f"Refuting a dead message (from: {dead.from_node})")
            return
        self._broadcasts.queue(encode(dead), dead.node)
        node.incarnation = dead.incarnation
        node.state = MemberState.LEFT if dead.node == dead.from_node else MemberState.DEAD
        node.state_change = now
        self._member_event(MemberEventKind.LEAVE if node.state == MemberState.LEFT else MemberEventKind.FAIL, node)

    def _correct_stale(self, accusation: Suspect | Dead, source: Address) -> None:
        """Answer an accusation older than a member's alive incarnation (including one we have just refuted)
        with that alive message, straight to the sender, and to the accuser when the member is us. A sender
        of old news has not seen the refutation, which gossip reaches each member with only high probability,
        and the accuser's timer is the one sure to run; left alone, it would declare a live member failed.
        (memberlist drops such messages silently; this reply is consulpy's addition, using only Alive.)"""
        node = self._by_name.get(accusation.node)
        if node is None or node.state != MemberState.ALIVE or accusation.incarnation >= node.incarnation:
            return
        targets = {source}
        accuser = self._by_name.get(accusation.from_node)
        if node.name == self.name and accuser is not None and accuser is not node:
            targets.add(accuser.address)
        self.stats["stale_corrected"] += 1
        alive = encode(Alive(node.incarnation, node.name, node.address, node.meta))
        for address in sorted(targets):
            self._send(address, [alive])

    def _refute(self, me: _Node, accused: int) -> None:
        """Gossip that we are alive, with an incarnation beating the accusation."""
        incarnation = self._next_incarnation()
        if accused >= incarnation:
            self._incarnation = incarnation = accused + 1
        me.incarnation = incarnation
        self._awareness.apply_delta(1)
        self.stats["refutations"] += 1
        self._broadcasts.queue(encode(Alive(incarnation, me.name, me.address, me.meta)), me.name)

    # ---- push-pull ------------------------------------------------------------------------------------

    def _start_push_pull(self, address: Address, join: bool, now: float) -> None:
        self._stream_id += 1
        self._streams[self._stream_id] = _PushPullRequest(address, join)
        data = encode(self._local_push_pull(join))
        self._out.streams.append(StreamRequest(self._stream_id, address, data, now + self.config.tcp_timeout))

    def _local_push_pull(self, join: bool) -> PushPull:
        nodes = tuple(PushNodeState(n.name, n.address, n.meta, n.incarnation, int(n.state)) for n in self._nodes)
        return PushPull(join, nodes, self._local_state(join) if self._local_state is not None else b"")

    def _merge_remote(self, remote: PushPull, now: float) -> None:
        for r in remote.nodes:
            if r.state == MemberState.ALIVE:
                if len(r.meta) <= META_MAX_SIZE:
                    self._alive_node(Alive(r.incarnation, r.name, r.address, r.meta), now)
            elif r.state == MemberState.LEFT:
                self._dead_node(Dead(r.incarnation, r.name, r.name), now)
            elif r.state in (MemberState.DEAD, MemberState.SUSPECT):
                # Someone else's verdict only makes us suspect, giving the member a chance to refute. We do
                # not gossip it as our own accusation, as memberlist does: Lifeguard would count it as an
                # independent confirmation, and a slow member's stale suspicion, pulled by healthy members,
                # would come back to it as two confirmations and cut its timer to the minimum.
                self._suspect_node(Suspect(r.incarnation, r.name, self.name), now, accuse=False)
        if remote.user_state:
            self._out.events.append(RemoteState(remote.user_state, remote.join))

    # ---- sending --------------------------------------------------------------------------------------

    def _send(self, address: Address, parts: list[bytes]) -> None:
        """Send messages in one packet, filling the room left with piggybacked broadcasts."""
        space = self.config.udp_buffer_size - COMPOUND_OVERHEAD - sum(len(p) for p in parts)
        parts = parts + self._take_broadcasts(space)
        self._out.packets.append(Packet(address, parts[0] if len(parts) == 1 else compound(parts)))

    def _take_broadcasts(self, space: int) -> list[bytes]:
        members = len(self._nodes)
        messages = self._broadcasts.take(space, members)
        rest = space - sum(len(m) for m in messages)
        if self._user_broadcasts:
            messages += self._user_broadcasts.take(rest, members)
        if self._leave_pending and not self._broadcasts.has(self.name):
            self._leave_pending = False
            self._out.events.append(LeaveComplete())
        return messages

    def _random_nodes(self, k: int, eligible: Callable[[_Node], bool]) -> list[_Node]:
        """Up to k distinct eligible members, picked at random (memberlist's kRandomNodes)."""
        nodes = self._nodes
        chosen: list[_Node] = []
        if len(nodes) < 3 * k:
            for node in self._rng.sample(nodes, len(nodes)):
                if len(chosen) == k:
                    break
                if eligible(node):
                    chosen.append(node)
            return chosen
        for _ in range(3 * len(nodes)):
            if len(chosen) == k:
                break
            node = nodes[self._rng.randrange(len(nodes))]
            if eligible(node) and all(c is not node for c in chosen):
                chosen.append(node)
        return chosen

    # ---- small helpers --------------------------------------------------------------------------------

    def _next_incarnation(self) -> int:
        self._incarnation += 1
        return self._incarnation

    def _member_event(self, kind: MemberEventKind, node: _Node) -> None:
        self._out.events.append(MemberEvent(kind, node.member()))

    def _log(self, level: str, text: str) -> None:
        self._out.events.append(LogLine(level, text))


def _check_meta(meta: bytes) -> None:
    if len(meta) > META_MAX_SIZE:
        raise ValueError(f"node metadata is {len(meta)} bytes, more than the limit of {META_MAX_SIZE}")
