"""Deterministic simulator for the Raft core: seeded network (delay, reorder, duplication, loss, partitions),
logical clock, a per-node disk that loses un-persisted Ready data (optionally a torn tail) on crash, and
the §1.9 safety invariants checked after every step. Imports: stdlib, consulpy.codec, consulpy.raft.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from consulpy.codec import decode, encode
from consulpy.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    Mutations,
    RaftNode,
    Ready,
    Role,
    Snapshot,
    early_messages,
    must_sync,
)

ELECTION = 10


class Violation(AssertionError):
    """A safety or liveness property failed; the message names the seed that replays it."""


@dataclass
class Params:
    """Fault mix of one run, drawn from the seed."""

    nodes: int
    loss: float
    dup: float
    max_delay: int
    p_propose: float
    p_partition: float
    p_crash: float
    p_pause: float
    p_crash_persist: float
    p_crash_after_vote: float
    p_crash_leader_commit: float
    p_crash_leader: float
    p_conf: float
    p_transfer: float
    snapshot_every: int
    max_entries: int
    max_inflight: int

    @classmethod
    def draw(cls, rng: random.Random) -> Params:
        return cls(
            nodes=rng.choice((3, 5)),
            loss=rng.uniform(0, 0.3),
            dup=rng.uniform(0, 0.05),
            max_delay=rng.randint(1, 4),
            p_propose=rng.uniform(0.1, 0.6),
            p_partition=rng.uniform(0, 0.03),
            p_crash=rng.uniform(0, 0.02),
            p_pause=rng.uniform(0, 0.02),
            p_crash_persist=rng.choice((0.0, 0.02, 0.1)),
            p_crash_after_vote=rng.choice((0.0, 0.3)),
            p_crash_leader_commit=rng.choice((0.0, 0.05, 0.2)),
            p_crash_leader=rng.choice((0.0, 0.03, 0.1)),
            p_conf=rng.uniform(0, 0.02),
            p_transfer=rng.uniform(0, 0.01),
            snapshot_every=rng.randint(10, 60),
            max_entries=rng.choice((1, 1, 2, 4, 8)),
            max_inflight=rng.randint(1, 16),
        )


@dataclass
class Disk:
    hs: HardState
    snapshot: Snapshot
    entries: list[Entry] = field(default_factory=list)

    def write(self, rd: Ready, torn: int | None) -> None:
        """Persist a Ready; with `torn` only that many leading entries reach the disk and no hard state."""
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            self.entries = []
        if rd.entries:
            first = rd.entries[0].index
            new = rd.entries if torn is None else rd.entries[:torn]
            self.entries = [e for e in self.entries if e.index < first] + list(new)
        if torn is None and rd.hard_state is not None:
            self.hs = rd.hard_state


@dataclass
class SimNode:
    id: int
    disk: Disk
    raft: RaftNode | None = None
    fsm: list[tuple[int, bytes]] = field(default_factory=list)
    restart_at: int = 0
    paused_until: int = 0


class Sim:
    def __init__(self, seed: int, mutations: Mutations | None = None, params: Params | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.p = params or Params.draw(self.rng)
        self.mut = mutations or Mutations()
        self.now = 0
        self.seq = 0
        self.net: list[tuple[int, int, Message]] = []
        self.groups: dict[int, int] = {}
        self.heal_at = 0
        self.leaders: dict[int, int] = {}
        self.granted: dict[tuple[int, int], int] = {}
        self.committed: dict[int, tuple[int, int]] = {}
        self.applied: dict[int, tuple[int, bytes]] = {}
        self.pred: dict[tuple[int, int], int | None] = {}
        self.data_at: dict[tuple[int, int], bytes] = {}
        self.proposed: dict[bytes, tuple[int, int]] = {}
        self.acked: set[bytes] = set()
        self.max_acked = 0
        self.reads: dict[bytes, int] = {}
        self.stats: Counter[str] = Counter()
        self.live_commit: dict[int, int] = {}
        self.proposals = 0
        self.faults = True
        self.final_by: tuple[int, int] | None = None
        voters = tuple(range(1, self.p.nodes + 1))
        spare = self.p.nodes + 1  # starts outside the configuration; joins through membership changes
        boot = Snapshot(0, 0, ConfState(voters))
        self.nodes: dict[int, SimNode] = {}
        for i in (*voters, spare):
            self.nodes[i] = SimNode(i, Disk(HardState(), boot))
            self._start(self.nodes[i])

    # ---- plumbing ----

    def fail(self, what: str) -> None:
        raise Violation(f"SEED={self.seed} t={self.now}: {what}")

    def _start(self, n: SimNode) -> None:
        cfg = Config(n.id, election_tick=ELECTION, heartbeat_tick=2, max_entries_per_msg=self.p.max_entries,
                     max_inflight=self.p.max_inflight)
        d = n.disk
        n.raft = RaftNode(cfg, random.Random(self.rng.random()), snapshot=d.snapshot, entries=list(d.entries),
                          hard_state=d.hs, mutations=self.mut)
        n.fsm = list(decode(d.snapshot.data)) if d.snapshot.data else []
        self.live_commit[n.id] = n.raft.log.committed

    def crash(self, n: SimNode, down_for: int) -> None:
        self.stats["crashes"] += 1
        n.raft = None
        n.restart_at = self.now + down_for

    def _blocked(self, a: int, b: int) -> bool:
        return self.groups.get(a, 0) != self.groups.get(b, 0)

    def _send(self, m: Message) -> None:
        if self.faults and self.rng.random() < self.p.loss:
            return
        self.stats[MsgType(m.type).name] += 1
        copies = 2 if self.faults and self.rng.random() < self.p.dup else 1
        for _ in range(copies):
            self.seq += 1
            delay = self.rng.randint(1, self.p.max_delay) if self.faults else 1
            heapq.heappush(self.net, (self.now + delay, self.seq, m))

    def drain(self, n: SimNode) -> None:
        while n.raft is not None and n.raft.has_ready():
            r = n.raft
            rd = r.ready()
            early, late = early_messages(rd, n.disk.hs)
            for m in early:
                self._send(m)
            if self.faults and self.rng.random() < self.p.p_crash_persist:
                self._crash_while_persisting(n, rd)
                return
            old = n.disk.hs
            if must_sync(rd, n.disk.hs):
                n.disk.write(rd, None)
            if n.disk.hs.term < old.term or n.disk.hs.commit < old.commit:
                self.fail(f"node {n.id} persisted hard state went back: {old} -> {n.disk.hs}")
            self._check_ready(n, rd)
            voted = False
            for m in late:
                if m.type == MsgType.VOTE_RESP and not m.reject:
                    prev = self.granted.setdefault((m.frm, m.term), m.to)
                    if prev != m.to:
                        self.fail(f"node {m.frm} voted for {prev} and {m.to} in term {m.term}")
                    voted = True
                self._send(m)
            for rs in rd.read_states:
                if rs.index < self.reads.pop(rs.context, 0):
                    self.fail(f"read {rs.context!r} on node {n.id} at {rs.index} misses an acknowledged write")
                self.stats["reads"] += 1
            if rd.snapshot is not None:
                self.stats["snapshots-installed"] += 1
                n.fsm = list(decode(rd.snapshot.data)) if rd.snapshot.data else []
            for e in rd.committed_entries:
                self._apply(n, e)
            r.advance(rd)
            if voted and self.faults and self.rng.random() < self.p.p_crash_after_vote:
                self.crash(n, self.rng.randint(1, 3))
                return
            leading = rd.role == Role.LEADER and rd.committed_entries
            if leading and self.faults and self.rng.random() < self.p.p_crash_leader_commit:
                self.crash(n, self.rng.randint(1, 3 * ELECTION))
                return
            if r.log.applied - r.log.snapshot.index >= self.p.snapshot_every:
                data = encode(n.fsm)
                r.compact(r.log.applied, data)
                self.stats["compactions"] += 1
                n.disk.snapshot = r.log.snapshot
                n.disk.entries = [e for e in n.disk.entries if e.index > r.log.snapshot.index]

    def _crash_while_persisting(self, n: SimNode, rd: Ready) -> None:
        """Crash before the write, in the middle of it (torn tail, no hard state), or after it but before sending."""
        mode = self.rng.randrange(3)
        self.stats[f"crash-persist-{mode}"] += 1
        if mode == 1 and rd.entries:
            n.disk.write(rd, self.rng.randint(0, len(rd.entries) - 1))
        elif mode == 2:
            n.disk.write(rd, None)
        self.crash(n, self.rng.randint(1, 3 * ELECTION))

    def _apply(self, n: SimNode, e: Entry) -> None:
        seen = self.applied.setdefault(e.index, (e.term, e.data))
        if seen != (e.term, e.data):
            self.fail(f"node {n.id} applied {(e.term, e.data)!r} at {e.index}, others applied {seen!r}")
        assert n.raft is not None
        term, learned = self.committed.get(e.index, (e.term, n.raft.term))
        self.committed[e.index] = (term, min(learned, n.raft.term))
        if e.type == EntryType.CONF_CHANGE:
            self.stats["conf-changes-applied"] += 1
        if e.type == EntryType.NORMAL and e.data:
            n.fsm.append((e.index, e.data))
            if self.proposed.get(e.data) == (n.id, e.index):
                self.acked.add(e.data)
                self.max_acked = max(self.max_acked, e.index)

    def _check_ready(self, n: SimNode, rd: Ready) -> None:
        r = n.raft
        assert r is not None
        if rd.role == Role.LEADER:
            prev = self.leaders.setdefault(r.term, n.id)
            if prev != n.id:
                self.fail(f"two leaders in term {r.term}: {prev} and {n.id}")
            if prev == n.id and rd.entries and rd.entries[0].index <= r.log.last_index() - len(rd.entries):
                self.fail(f"leader {n.id} overwrote its log in term {r.term}")
        for e in rd.entries:
            key = (e.index, e.term)
            data = self.data_at.setdefault(key, e.data)
            pred = self.pred.setdefault(key, r.log.term(e.index - 1))
            if data != e.data or (pred is not None and r.log.term(e.index - 1) not in (None, pred)):
                self.fail(f"log matching broken at {key} on node {n.id}")
        if r.log.committed > r.log.last_index():
            self.fail(f"node {n.id} commit {r.log.committed} beyond its log {r.log.last_index()}")
        if r.log.committed < self.live_commit.get(n.id, 0):
            self.fail(f"node {n.id} commit went back")
        self.live_commit[n.id] = r.log.committed

    def check_leader_completeness(self) -> None:
        for n in self.nodes.values():
            r = n.raft
            if r is None or r.role != Role.LEADER:
                continue
            for index, (term, learned) in self.committed.items():
                if r.term > learned and index > r.log.snapshot.index and r.log.term(index) != term:
                    self.fail(f"leader {n.id} (term {r.term}) lacks committed entry {index}/{term}")

    # ---- driving ----

    def leader(self) -> SimNode | None:
        best = None
        for n in self.nodes.values():
            if n.raft is not None and n.raft.role == Role.LEADER and (best is None or n.raft.term > best.raft.term):
                best = n
        return best

    def step(self) -> None:
        self.now += 1
        if self.faults:
            self._faults()
        for n in self.nodes.values():
            if n.raft is None and n.restart_at <= self.now:
                self._start(n)
        while self.net and self.net[0][0] <= self.now:
            _, _, m = heapq.heappop(self.net)
            dst = self.nodes[m.to]
            if dst.raft is None or self._blocked(m.frm, m.to):
                continue
            if dst.paused_until > self.now:
                self.seq += 1
                heapq.heappush(self.net, (dst.paused_until, self.seq, m))
                continue
            dst.raft.step(m)
            self.drain(dst)
        for n in self.nodes.values():
            if n.raft is not None and n.paused_until <= self.now:
                n.raft.tick()
                self.drain(n)
        self.check_leader_completeness()

    def propose(self) -> None:
        lead = self.leader()
        if lead is None or lead.raft is None:
            return
        self.proposals += 1
        data = f"{self.seed}-{self.proposals}".encode()
        index = lead.raft.propose(data)
        if index:
            self.proposed[data] = (lead.id, index)
        self.drain(lead)

    def read(self) -> None:
        """A linearizable read on a random live node must see every write acknowledged before it began."""
        live = [n for n in self.nodes.values() if n.raft is not None and n.paused_until <= self.now]
        if not live:
            return
        n = self.rng.choice(live)
        assert n.raft is not None
        context = f"read-{self.now}-{n.id}".encode()
        if n.raft.read_index(context):
            self.reads[context] = self.max_acked
        self.drain(n)

    def _faults(self) -> None:
        p, rng = self.p, self.rng
        if rng.random() < p.p_propose:
            self.propose()
        if self.groups and self.now >= self.heal_at:
            self.groups = {}
        elif not self.groups and rng.random() < p.p_partition:
            lead = self.leader()
            self.stats["partitions"] += 1
            if lead is not None and rng.random() < 0.5:
                self.groups = {lead.id: 1}
            else:
                self.groups = {i: rng.randint(0, 1) for i in self.nodes}
            self.heal_at = self.now + rng.randint(ELECTION, 8 * ELECTION)
        if rng.random() < p.p_propose / 2:
            self.read()
        if rng.random() < p.p_pause:
            victim = rng.choice(list(self.nodes.values()))
            victim.paused_until = self.now + rng.randint(1, 2 * ELECTION)
            self.stats["pauses"] += 1
        if rng.random() < p.p_crash:
            live = [n for n in self.nodes.values() if n.raft is not None]
            if live:
                self.crash(rng.choice(live), rng.randint(1, 5 * ELECTION))
        lead = self.leader()
        if lead is None or lead.raft is None:
            return
        if rng.random() < p.p_crash_leader:
            self.crash(lead, rng.randint(1, 2 * ELECTION))
            return
        if rng.random() < p.p_conf:
            lead.raft.propose_conf_change(self._random_change(lead.raft))
            self.drain(lead)
        if rng.random() < p.p_transfer:
            lead.raft.transfer_leadership(rng.choice(lead.raft.conf.voters))
            self.drain(lead)

    def _random_change(self, r: RaftNode) -> ConfChange:
        voters, learners = r.conf.voters, r.conf.learners
        outside = [i for i in self.nodes if i not in voters and i not in learners]
        if learners:
            return ConfChange(ConfChangeType.ADD_VOTER, self.rng.choice(learners))
        if outside and self.rng.random() < 0.5:
            return ConfChange(ConfChangeType.ADD_LEARNER, self.rng.choice(outside))
        if len(voters) > 3:
            return ConfChange(ConfChangeType.REMOVE, self.rng.choice(voters))
        return ConfChange(ConfChangeType.ADD_LEARNER, self.rng.choice(outside or list(voters)))

    # ---- scenario ----

    def heal(self) -> None:
        self.faults = False
        self.groups = {}
        for n in self.nodes.values():
            n.paused_until = 0
            if n.raft is None:
                self._start(n)

    def run_until(self, cond: Callable[[], bool], limit: int) -> bool:
        for _ in range(limit):
            if cond():
                return True
            self.step()
        return bool(cond())

    def members(self) -> list[SimNode]:
        lead = self.leader()
        assert lead is not None and lead.raft is not None
        conf = lead.raft.conf
        return [self.nodes[i] for i in (*conf.voters, *conf.learners)]

    def converged(self) -> bool:
        lead = self.leader()
        if lead is None or lead.raft is None:
            return False
        target = lead.raft.log.committed
        return all(n.raft is not None and n.raft.log.applied == target for n in self.members())

    def run(self, chaos_ticks: int = 300) -> None:
        for _ in range(chaos_ticks):
            self.step()
        self.heal()
        if not self.run_until(lambda: self.leader() is not None, 10 * ELECTION):
            self.fail("no leader within 10 election timeouts after healing")
        if not self.run_until(self.final_proposal_applied, 10 * 2 * ELECTION):
            self.fail("live members did not converge after healing")
        fsms = {n.id: n.fsm for n in self.members()}
        first = next(iter(fsms.values()))
        for nid, fsm in fsms.items():
            if fsm != first:
                self.fail(f"node {nid} applied a different sequence")
            missing = self.acked - {d for _, d in fsm}
            if missing:
                self.fail(f"node {nid} lost acknowledged proposals {sorted(missing)[:3]}")
        self.stability_probe()

    def final_proposal_applied(self) -> bool:
        """Propose (again on each new leader) after healing; true once that proposal is applied everywhere."""
        lead = self.leader()
        if lead is None or lead.raft is None:
            return False
        if self.final_by != (lead.id, lead.raft.term):
            self.propose()
            if f"{self.seed}-{self.proposals}".encode() in self.proposed:
                self.final_by = (lead.id, lead.raft.term)
            return False
        return f"{self.seed}-{self.proposals}".encode() in self.acked and self.converged()

    def stability_probe(self) -> None:
        """Isolate one follower for 5 election timeouts and heal: the leader and its term must not change."""
        lead = self.leader()
        assert lead is not None and lead.raft is not None
        term = lead.raft.term
        followers = [n.id for n in self.members() if n.id != lead.id and n.id in lead.raft.conf.voters]
        victim = self.rng.choice(followers)
        self.groups = {victim: 1}
        for _ in range(5 * ELECTION):
            self.step()
        self.groups = {}
        for _ in range(5 * ELECTION):
            self.step()
        after = self.leader()
        if after is not lead or lead.raft is None or lead.raft.term != term:
            self.fail(f"isolating follower {victim} disrupted leader {lead.id} of term {term}")
