"""Raft consensus as a pure state machine (no I/O, no clock, no randomness of its own).

Inputs are `step(message)`, logical `tick()`s and local requests; output is a `Ready` batch taken with
`ready()` and acknowledged with `advance(ready)`. Persistence rule: a Ready's snapshot, entries and hard
state must be durable before its messages are sent and before its committed entries are applied (snapshot
first) — except `early_messages(ready, durable)`, the leader's replication messages, which may go
before the persist when the Ready does not change the durable term or vote; and `must_sync` tells when
there is anything to persist at all (a new commit index alone is not). Imports: stdlib, consulpy.codec,
consulpy.raft.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from consulpy.codec import decode, encode
from consulpy.raft.log import RaftLog
from consulpy.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    ReadState,
    Snapshot,
)

TRANSFER = b"transfer"
LEADER_MESSAGES = frozenset((MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT, MsgType.TIMEOUT_NOW))


class Role(Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(slots=True)
class Mutations:
    """Test-only switches that re-introduce classic Raft bugs; all off in production.

    commit_old_term is the Fig. 8 bug as naive implementations have it: no election no-op, and entries of
    earlier terms committed by counting replicas. unconfirmed_reads answers ReadIndex from the local commit
    index at once, without waiting for an own-term commit or a heartbeat round.
    """

    commit_old_term: bool = False
    volatile_vote: bool = False
    truncate_always: bool = False
    no_prevote_checkquorum: bool = False
    unconfirmed_reads: bool = False


@dataclass(slots=True, frozen=True)
class Config:
    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_entries_per_msg: int = 64
    max_inflight: int = 256
    pre_vote: bool = True
    check_quorum: bool = True


@dataclass(slots=True, frozen=True)
class Ready:
    messages: tuple[Message, ...]
    entries: tuple[Entry, ...]
    hard_state: HardState | None
    committed_entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    read_states: tuple[ReadState, ...]
    leader: int
    role: Role


@dataclass(slots=True)
class Progress:
    """The leader's view of one peer: probing one message at a time, or replicating with a pipeline."""

    match: int
    next: int
    replicating: bool = False
    paused: bool = False
    pending_snapshot: int = 0
    recent_active: bool = True
    last_ack: int = 0
    inflight: deque[int] = field(default_factory=deque)

    def blocked(self, max_inflight: int) -> bool:
        if self.pending_snapshot:
            return True
        return len(self.inflight) >= max_inflight if self.replicating else self.paused

    def become_probe(self) -> None:
        self.next = max(self.match + 1, self.pending_snapshot + 1)
        self.replicating, self.paused, self.pending_snapshot = False, False, 0
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self.replicating, self.paused = True, False
        self.inflight.clear()

    def update(self, index: int) -> bool:
        if index <= self.match:
            return False
        self.match = index
        self.next = max(self.next, index + 1)
        self.paused = False
        return True

    def decr_to(self, rejected: int, hint: int) -> bool:
        """Move `next` back after a rejection; False when the rejection is stale."""
        if self.replicating:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint + 1), self.match + 1)
        self.paused = False
        return True


def apply_conf_change(conf: ConfState, cc: ConfChange) -> ConfState:
    voters, learners = set(conf.voters), set(conf.learners)
    if cc.type == ConfChangeType.ADD_VOTER:
        learners.discard(cc.node)
        voters.add(cc.node)
    elif cc.type == ConfChangeType.ADD_LEARNER:
        if cc.node not in voters:
            learners.add(cc.node)
    else:
        voters.discard(cc.node)
        learners.discard(cc.node)
    return ConfState(tuple(sorted(voters)), tuple(sorted(learners)))


class RaftNode:
    """One Raft peer. Create it from persisted state; a new cluster starts from a snapshot naming its voters."""

    def __init__(
        self,
        config: Config,
        rng: random.Random,
        *,
        snapshot: Snapshot,
        entries: list[Entry] | None = None,
        hard_state: HardState | None = None,
        mutations: Mutations | None = None,
    ) -> None:
        hs = hard_state or HardState()
        self.id = config.id
        self.cfg = config
        self.rng = rng
        self.mut = mutations or Mutations()
        self.pre_vote = config.pre_vote and not self.mut.no_prevote_checkquorum
        self.check_quorum = config.check_quorum and not self.mut.no_prevote_checkquorum
        self.log = RaftLog(snapshot, entries or [], hs.commit)
        self.term = hs.term
        self.vote = hs.vote
        self.role = Role.FOLLOWER
        self.lead = 0
        self.conf = snapshot.conf
        self.prs: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.pending_reads: dict[bytes, tuple[int, int, set[int]]] = {}
        self.pending_conf_index = 0
        self.lead_transferee = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = config.election_tick
        self.now = 0
        self._bcast_pending = False
        self._prev_hs = hs
        self._refresh_conf()
        self._reset(self.term)

    # ---- public inputs ----

    def tick(self) -> None:
        self.now += 1
        self.election_elapsed += 1
        if self.role != Role.LEADER:
            if self.promotable() and self.election_elapsed >= self.randomized_timeout:
                self.election_elapsed = 0
                self._hup(transfer=False)
            return
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            self.lead_transferee = 0
            if self.check_quorum and not self._quorum_active():
                self._become_follower(self.term, 0)
                return
        self.heartbeat_elapsed += 1
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat(b"")

    def propose(self, data: bytes) -> int:
        """Append `data` if leader; returns its log index, or 0 when refused (not leader, transferring)."""
        return self._propose(EntryType.NORMAL, data)

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Append a single-server change; refused (0) before an own-term commit or while one is in flight."""
        if self.role != Role.LEADER or self.log.term(self.log.committed) != self.term:
            return 0
        if self.pending_conf_index > self.log.committed:
            return 0
        voters, learners = set(self.conf.voters), set(self.conf.learners)
        if cc.type == ConfChangeType.ADD_VOTER and cc.node in voters:
            return 0
        if cc.type == ConfChangeType.ADD_LEARNER and (cc.node in voters or cc.node in learners):
            return 0
        if cc.type == ConfChangeType.REMOVE and (cc.node not in voters | learners or voters == {cc.node}):
            return 0
        index = self._propose(EntryType.CONF_CHANGE, encode(cc))
        if index:
            self.pending_conf_index = index
        return index

    def read_index(self, context: bytes) -> bool:
        """Ask for a linearizable read point; answered by a ReadState carrying `context` (must be unique)."""
        if self.role == Role.LEADER:
            return self._leader_read(context, self.id)
        if self.lead:
            self._send(Message(MsgType.READ_INDEX, self.lead, self.id, self.term, context=context))
            return True
        return False

    def lease_valid(self) -> bool:
        """True while a quorum acknowledged this leader within the last election timeout (assumes bounded drift)."""
        if self.role != Role.LEADER or not self.check_quorum:
            return False
        live = sum(
            1 for v in self.conf.voters
            if v == self.id or (v in self.prs and self.now - self.prs[v].last_ack < self.cfg.election_tick - 1)
        )
        return live >= self._quorum()

    def transfer_leadership(self, to: int) -> bool:
        if self.role != Role.LEADER or to == self.id or to not in self.conf.voters:
            return False
        self.lead_transferee = to
        self.election_elapsed = 0
        if self.prs[to].match == self.log.last_index():
            self._send(Message(MsgType.TIMEOUT_NOW, to, self.id, self.term))
        else:
            self._send_append(to)
        return True

    def compact(self, index: int, data: bytes) -> None:
        """The application persisted a snapshot of its state at applied `index`: drop the log up to it."""
        if index <= self.log.snapshot.index or index > self.log.applied:
            return
        term = self.log.term(index)
        assert term is not None
        self.log.compact(Snapshot(index, term, self._conf_at(index), data))

    def step(self, m: Message) -> None:
        if m.term > self.term:
            if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
                in_lease = self.check_quorum and self.lead != 0 and self.election_elapsed < self.cfg.election_tick
                if in_lease and m.context != TRANSFER:
                    return
            probing = m.type == MsgType.PRE_VOTE or (m.type == MsgType.PRE_VOTE_RESP and not m.reject)
            if not probing:
                from_leader = m.type in (MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT)
                self._become_follower(m.term, m.frm if from_leader else 0)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MsgType.APPEND, MsgType.HEARTBEAT):
                self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term))
            elif m.type == MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            return
        if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    # ---- output ----

    def has_ready(self) -> bool:
        return bool(
            self.msgs or self._bcast_pending or self.read_states or self.log.unstable_snapshot
            or self.log.stabled < self.log.last_index() or self._hard_state() != self._prev_hs
            or self.log.next_committed()
        )

    def ready(self) -> Ready:
        """The next batch; hand it back to `advance` before asking for another."""
        if self._bcast_pending:
            self._bcast_pending = False
            self._bcast_append()
        hs = self._hard_state()
        rd = Ready(
            messages=tuple(self.msgs),
            entries=tuple(self.log.unstable_entries()),
            hard_state=hs if hs != self._prev_hs else None,
            committed_entries=tuple(self.log.next_committed()),
            snapshot=self.log.unstable_snapshot,
            read_states=tuple(self.read_states),
            leader=self.lead,
            role=self.role,
        )
        self.msgs = []
        self.read_states = []
        return rd

    def advance(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self._prev_hs = rd.hard_state
        if rd.snapshot is not None:
            if self.log.unstable_snapshot is rd.snapshot:
                self.log.unstable_snapshot = None
            self.log.applied = max(self.log.applied, rd.snapshot.index)
        if rd.entries:
            self.log.stable_to(rd.entries[-1].index, rd.entries[-1].term)
            # The leader counts its own copy of an entry only once it is durable, so it may send entries to
            # followers before persisting them (Raft thesis 10.2.1) without committing on a volatile copy.
            if self.role == Role.LEADER and self.prs[self.id].update(self.log.stabled) and self._maybe_commit():
                self._bcast_pending = True
        if rd.committed_entries:
            self.log.applied = max(self.log.applied, rd.committed_entries[-1].index)

    def promotable(self) -> bool:
        return self.id in self.conf.voters

    # ---- internals ----

    def _hard_state(self) -> HardState:
        vote = 0 if self.mut.volatile_vote else self.vote
        return HardState(self.term, vote, self.log.committed)

    def _send(self, m: Message) -> None:
        self.msgs.append(m)

    def _quorum(self) -> int:
        return len(self.conf.voters) // 2 + 1

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = 0
        self.lead = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self.rng.randrange(self.cfg.election_tick, 2 * self.cfg.election_tick)
        self.votes = {}
        self.lead_transferee = 0
        self.pending_reads = {}

    def _become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = lead

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.lead = self.id
        last = self.log.last_index()
        self.prs = {p: Progress(match=0, next=last + 1, last_ack=self.now) for p in self._members()}
        self.prs[self.id].update(self.log.stabled)
        self.pending_conf_index = last
        if self.mut.commit_old_term:
            self._bcast_pending = True
        else:
            self._propose(EntryType.NORMAL, b"")

    def _members(self) -> list[int]:
        return sorted(set(self.conf.voters) | set(self.conf.learners) | {self.id})

    def _hup(self, transfer: bool) -> None:
        if self.role == Role.LEADER or not self.promotable():
            return
        if self.pre_vote and not transfer:
            self._reset(self.term)
            self.role = Role.PRE_CANDIDATE
            self._campaign(MsgType.PRE_VOTE, self.term + 1, b"")
        else:
            self._become_candidate()
            self._campaign(MsgType.VOTE, self.term, TRANSFER if transfer else b"")

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.role = Role.CANDIDATE
        self.vote = self.id

    def _campaign(self, kind: MsgType, term: int, context: bytes) -> None:
        self.votes = {self.id: True}
        if self._tally_won():
            self._won()
            return
        for peer in self.conf.voters:
            if peer != self.id:
                self._send(Message(kind, peer, self.id, term, self.log.last_term(), self.log.last_index(),
                                   context=context))

    def _tally_won(self) -> bool:
        return sum(1 for v, ok in self.votes.items() if ok and v in self.conf.voters) >= self._quorum()

    def _won(self) -> None:
        if self.role == Role.PRE_CANDIDATE:
            self._become_candidate()
            self._campaign(MsgType.VOTE, self.term, b"")
        else:
            self._become_leader()

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == MsgType.PRE_VOTE
        resp = MsgType.PRE_VOTE_RESP if pre else MsgType.VOTE_RESP
        can_vote = self.vote == m.frm or (self.vote == 0 and self.lead == 0) or (pre and m.term > self.term)
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp, m.frm, self.id, m.term))
            if not pre:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp, m.frm, self.id, self.term, reject=True))

    def _step_candidate(self, m: Message) -> None:
        if m.type in (MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT):
            self._become_follower(m.term, m.frm)
            self._step_follower(m)
            return
        wanted = MsgType.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MsgType.VOTE_RESP
        if m.type != wanted:
            return
        self.votes.setdefault(m.frm, not m.reject)
        if self._tally_won():
            self._won()
        elif sum(1 for v, ok in self.votes.items() if not ok and v in self.conf.voters) >= self._quorum():
            self._become_follower(self.term, 0)

    def _step_follower(self, m: Message) -> None:
        if m.type == MsgType.APPEND:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif m.type == MsgType.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self._send(Message(MsgType.HEARTBEAT_RESP, m.frm, self.id, self.term, context=m.context))
        elif m.type == MsgType.SNAPSHOT:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif m.type == MsgType.TIMEOUT_NOW:
            self._hup(transfer=True)
        elif m.type == MsgType.READ_INDEX and self.lead:
            self._send(Message(MsgType.READ_INDEX, self.lead, self.id, self.term, context=m.context))
        elif m.type == MsgType.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term, index=log.committed))
            return
        if not log.match_term(m.index, m.log_term):
            hint = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
            self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term, log.term(hint) or 0, m.index,
                               reject=True, reject_hint=hint))
            return
        last_new = m.index + len(m.entries)
        if self.mut.truncate_always:
            log.entries = log.slice(log.first_index(), m.index + 1) + list(m.entries)
            log.reindex()
            log.stabled = min(log.stabled, m.index)
            self._refresh_conf()
        else:
            conflict = log.find_conflict(m.entries)
            if conflict:
                assert conflict > log.committed, "conflict with a committed entry"
                log.append([e for e in m.entries if e.index >= conflict])
                self._refresh_conf()
        log.commit_to(min(m.commit, last_new))
        self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term, index=last_new))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        assert snap is not None
        if snap.index > self.log.committed:
            if self.log.match_term(snap.index, snap.term):
                self.log.commit_to(snap.index)
            else:
                self.log.restore(snap)
                self._refresh_conf()
        self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term, index=self.log.last_index()))

    def _step_leader(self, m: Message) -> None:
        if m.type == MsgType.READ_INDEX:
            self._leader_read(m.context, m.frm)
            return
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        if m.type == MsgType.APPEND_RESP:
            pr.recent_active = True
            pr.last_ack = self.now
            self._handle_append_resp(m, pr)
        elif m.type == MsgType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.last_ack = self.now
            pr.paused = False
            if pr.pending_snapshot:
                pr.become_probe()
            if pr.replicating and len(pr.inflight) >= self.cfg.max_inflight:
                pr.inflight.popleft()
            if pr.match < self.log.last_index():
                self._send_append(m.frm)
            if m.context in self.pending_reads:
                self._ack_read(m.context, m.frm)

    def _handle_append_resp(self, m: Message, pr: Progress) -> None:
        if m.reject:
            hint = m.reject_hint
            if m.log_term > 0:
                hint = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.decr_to(m.index, hint):
                if pr.replicating:
                    pr.become_probe()
                self._send_append(m.frm)
            return
        if pr.update(m.index):
            if pr.pending_snapshot and pr.match >= pr.pending_snapshot:
                pr.become_probe()
            if not pr.replicating and not pr.pending_snapshot:
                pr.become_replicate()
            while pr.inflight and pr.inflight[0] <= m.index:
                pr.inflight.popleft()
            if self._maybe_commit():
                self._bcast_append()
            if self.role != Role.LEADER:
                return
        while self._send_append(m.frm, send_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self._send(Message(MsgType.TIMEOUT_NOW, m.frm, self.id, self.term))

    def _send_append(self, to: int, send_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.blocked(self.cfg.max_inflight):
            return False
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        if prev_term is None:
            snap = self.log.snapshot
            self._send(Message(MsgType.SNAPSHOT, to, self.id, self.term, snapshot=snap))
            pr.pending_snapshot = snap.index
            pr.replicating = False
            return False
        hi = min(self.log.last_index() + 1, pr.next + self.cfg.max_entries_per_msg)
        ents = self.log.slice(pr.next, hi)
        if not ents and not send_empty:
            return False
        self._send(Message(MsgType.APPEND, to, self.id, self.term, prev_term, prev, tuple(ents), self.log.committed))
        if pr.replicating:
            if ents:
                pr.next = ents[-1].index + 1
                pr.inflight.append(ents[-1].index)
        else:
            pr.paused = True
        return bool(ents)

    def _bcast_append(self) -> None:
        for peer in self.prs:
            if peer != self.id:
                self._send_append(peer)

    def _bcast_heartbeat(self, context: bytes) -> None:
        for peer, pr in self.prs.items():
            if peer != self.id:
                commit = min(pr.match, self.log.committed)
                self._send(Message(MsgType.HEARTBEAT, peer, self.id, self.term, commit=commit, context=context))

    def _quorum_active(self) -> bool:
        active = 0
        for peer, pr in self.prs.items():
            if peer in self.conf.voters and (peer == self.id or pr.recent_active):
                active += 1
            pr.recent_active = False
        return active >= self._quorum()

    def _maybe_commit(self) -> bool:
        matches = sorted((self.prs[v].match for v in self.conf.voters if v in self.prs), reverse=True)
        if len(matches) < self._quorum():
            return False
        index = matches[self._quorum() - 1]
        if index <= self.log.committed:
            return False
        if self.log.term(index) != self.term and not self.mut.commit_old_term:
            return False
        self.log.commit_to(index)
        if self.id not in self.conf.voters and self.pending_conf_index <= index:
            self._become_follower(self.term, 0)
        return True

    def _propose(self, kind: EntryType, data: bytes) -> int:
        if self.role != Role.LEADER or self.lead_transferee:
            return 0
        entry = Entry(self.term, self.log.last_index() + 1, kind, data)
        self.log.append([entry])
        if kind == EntryType.CONF_CHANGE:
            self._refresh_conf()
        self._bcast_pending = True
        return entry.index

    def _conf_at(self, index: int) -> ConfState:
        conf = self.log.snapshot.conf
        for position in self.log.conf_indexes:
            if position > index:
                break
            conf = apply_conf_change(conf, decode(self.log.entry(position).data))
        return conf

    def _refresh_conf(self) -> None:
        """The configuration is the latest one in the log (effective when appended, reverted on truncation)."""
        self.conf = self._conf_at(self.log.last_index())
        if self.role != Role.LEADER:
            return
        last = self.log.last_index()
        for peer in self._members():
            if peer not in self.prs:
                self.prs[peer] = Progress(match=0, next=last + 1, last_ack=self.now)
        for peer in list(self.prs):
            if peer not in self._members():
                del self.prs[peer]

    def _leader_read(self, context: bytes, requester: int) -> bool:
        if self.mut.unconfirmed_reads:
            self._release_read(self.log.committed, context, requester)
            return True
        if self.log.term(self.log.committed) != self.term:
            return False
        if self.conf.voters == (self.id,):
            self._release_read(self.log.committed, context, requester)
            return True
        self.pending_reads[context] = (self.log.committed, requester, {self.id})
        self._bcast_heartbeat(context)
        return True

    def _ack_read(self, context: bytes, frm: int) -> None:
        acks = self.pending_reads[context][2]
        acks.add(frm)
        if sum(1 for v in acks if v in self.conf.voters) < self._quorum():
            return
        for ctx in list(self.pending_reads):
            index, requester, _ = self.pending_reads.pop(ctx)
            self._release_read(index, ctx, requester)
            if ctx == context:
                break

    def _release_read(self, index: int, context: bytes, requester: int) -> None:
        if requester == self.id:
            self.read_states.append(ReadState(index, context))
        else:
            self._send(Message(MsgType.READ_INDEX_RESP, requester, self.id, self.term, index=index, context=context))


def early_messages(rd: Ready, durable: HardState) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
    """Split a Ready's messages into those that may be sent before its persist and those that must wait.

    A leader's replication messages carry only its term and entries; they may leave before the leader's own
    copy is durable, provided that term (and the vote that won it) is already durable: otherwise a crash
    could let this node lead the same term again with a different log.
    """
    hs = rd.hard_state
    if hs is not None and (hs.term, hs.vote) != (durable.term, durable.vote):
        return (), rd.messages
    early = tuple(m for m in rd.messages if m.type in LEADER_MESSAGES)
    late = tuple(m for m in rd.messages if m.type not in LEADER_MESSAGES)
    return early, late


def must_sync(rd: Ready, durable: HardState) -> bool:
    """Whether a Ready needs a durable write: entries, a snapshot, or a new term or vote (etcd's MustSync).

    A commit index alone is not made durable: it only ever names entries a quorum already holds, and a
    restarted server learns the current one from the leader.
    """
    if rd.entries or rd.snapshot is not None:
        return True
    hs = rd.hard_state
    return hs is not None and (hs.term, hs.vote) != (durable.term, durable.vote)
