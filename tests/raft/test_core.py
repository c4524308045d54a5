"""Scenario tests of the Raft core: elections, replication, commit rule, snapshots, membership, reads."""

from __future__ import annotations

import random

from consulpy.codec import decode, encode
from consulpy.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    HardState,
    Message,
    MsgType,
    Mutations,
    RaftNode,
    Ready,
    Role,
    Snapshot,
)


class Cluster:
    """A lossless in-order network; `cut` names nodes whose traffic is dropped."""

    def __init__(self, n: int = 3, **cfg: int) -> None:
        boot = Snapshot(0, 0, ConfState(tuple(range(1, n + 1))))
        self.nodes = {
            i: RaftNode(Config(i, **cfg), random.Random(i), snapshot=boot) for i in range(1, n + 1)
        }
        self.cut: set[int] = set()
        self.sent: list[Message] = []
        self.applied: dict[int, list[Entry]] = {i: [] for i in self.nodes}
        self.reads: dict[int, list] = {i: [] for i in self.nodes}

    def flush(self, node: int) -> list[Message]:
        r = self.nodes[node]
        out: list[Message] = []
        while r.has_ready():
            rd = r.ready()
            self.applied[node].extend(rd.committed_entries)
            self.reads[node].extend(rd.read_states)
            out.extend(rd.messages)
            r.advance(rd)
        return out

    def settle(self, limit: int = 1000) -> None:
        queue = [m for i in self.nodes for m in self.flush(i)]
        for _ in range(limit):
            if not queue:
                return
            m = queue.pop(0)
            self.sent.append(m)
            if m.frm in self.cut or m.to in self.cut:
                continue
            self.nodes[m.to].step(m)
            queue.extend(self.flush(m.to))
        raise AssertionError("network did not settle")

    def tick(self, n: int = 1, only: int | None = None) -> None:
        for _ in range(n):
            for i, r in self.nodes.items():
                if only is None or i == only:
                    r.tick()
            self.settle()

    def elect(self, node: int) -> RaftNode:
        r = self.nodes[node]
        for _ in range(3 * r.cfg.election_tick):
            r.tick()
            self.settle()
            if r.role == Role.LEADER:
                return r
        raise AssertionError("no leader")

    def leaders(self) -> list[int]:
        return [i for i, r in self.nodes.items() if r.role == Role.LEADER]


def test_single_node_commits_its_own_proposal() -> None:
    c = Cluster(1)
    r = c.elect(1)
    index = r.propose(b"x")
    c.settle()
    assert [e.data for e in c.applied[1]] == [b"", b"x"]
    assert index == 2


def test_election_uses_pre_vote_then_vote_and_elects_one_leader() -> None:
    c = Cluster(3)
    c.elect(1)
    kinds = [m.type for m in c.sent]
    assert kinds.index(MsgType.PRE_VOTE) < kinds.index(MsgType.VOTE)
    assert c.leaders() == [1]
    assert all(r.term == 1 for r in c.nodes.values())


def test_vote_is_in_the_hard_state_of_the_ready_that_sends_it() -> None:
    c = Cluster(3)
    follower = c.nodes[2]
    follower.step(Message(MsgType.VOTE, 2, 1, 1, 0, 0))
    rd = follower.ready()
    assert rd.hard_state == HardState(1, 1, 0)
    assert [(m.type, m.reject) for m in rd.messages] == [(MsgType.VOTE_RESP, False)]


def test_volatile_vote_mutant_drops_the_vote_from_hard_state() -> None:
    boot = Snapshot(0, 0, ConfState((1, 2, 3)))
    r = RaftNode(Config(2), random.Random(0), snapshot=boot, mutations=Mutations(volatile_vote=True))
    r.step(Message(MsgType.VOTE, 2, 1, 1, 0, 0))
    assert r.ready().hard_state == HardState(1, 0, 0)


def test_proposal_goes_out_at_once_and_proposals_before_ready_share_one_append() -> None:
    c = Cluster(3)
    r = c.elect(1)
    r.propose(b"a")
    r.propose(b"b")
    rd = r.ready()
    appends = [m for m in rd.messages if m.type == MsgType.APPEND]
    assert sorted(m.to for m in appends) == [2, 3]
    assert all([e.data for e in m.entries] == [b"a", b"b"] for m in appends)
    r.advance(rd)


def test_pipeline_is_limited_by_max_inflight() -> None:
    c = Cluster(3, max_inflight=2, max_entries_per_msg=1)
    r = c.elect(1)
    c.cut = {2, 3}
    for i in range(5):
        r.propose(b"p%d" % i)
        c.settle()
    to2 = [m for m in c.sent if m.type == MsgType.APPEND and m.to == 2 and m.entries]
    assert len([m for m in to2 if m.entries[0].data.startswith(b"p")]) == 2
    c.cut = set()
    c.tick(2)
    assert [e.data for e in c.applied[2]][-5:] == [b"p0", b"p1", b"p2", b"p3", b"p4"]


def test_check_quorum_makes_an_isolated_leader_step_down() -> None:
    c = Cluster(3)
    r = c.elect(1)
    c.cut = {1}
    c.tick(2 * r.cfg.election_tick, only=1)
    assert r.role == Role.FOLLOWER


def test_pre_vote_keeps_an_isolated_follower_from_raising_the_term() -> None:
    c = Cluster(3)
    c.elect(1)
    c.cut = {3}
    c.tick(10 * c.nodes[3].cfg.election_tick)
    c.cut = set()
    c.tick(5)
    assert c.leaders() == [1]
    assert {r.term for r in c.nodes.values()} == {1}


def test_leader_stickiness_ignores_a_vote_request_while_the_leader_is_heard() -> None:
    c = Cluster(3)
    c.elect(1)
    follower = c.nodes[2]
    follower.step(Message(MsgType.VOTE, 2, 3, 5, 10, 10))
    assert follower.term == 1 and not follower.has_ready()


def _leader_with_old_entry(mutations: Mutations) -> RaftNode:
    """Node 1 holds (1,1) and an uncommitted (2,2) and wins term 3."""
    boot = Snapshot(0, 0, ConfState((1, 2, 3)))
    r = RaftNode(Config(1, pre_vote=False), random.Random(0), snapshot=boot,
                 entries=[Entry(1, 1), Entry(2, 2, data=b"old")], hard_state=HardState(2, 0, 1),
                 mutations=mutations)
    for _ in range(30):
        r.tick()
        if r.role == Role.CANDIDATE:
            break
    r.ready()
    r.step(Message(MsgType.VOTE_RESP, 1, 2, 3))
    assert r.role == Role.LEADER
    r.advance(r.ready())
    return r


def test_entries_of_earlier_terms_commit_only_with_a_current_term_entry() -> None:
    r = _leader_with_old_entry(Mutations())
    assert r.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4)) == 0
    r.step(Message(MsgType.APPEND_RESP, 1, 2, 3, index=2))
    assert r.log.committed == 1
    r.step(Message(MsgType.APPEND_RESP, 1, 2, 3, index=3))
    assert r.log.committed == 3


def test_fig8_mutant_commits_an_earlier_term_entry_by_counting() -> None:
    r = _leader_with_old_entry(Mutations(commit_old_term=True))
    r.step(Message(MsgType.APPEND_RESP, 1, 2, 3, index=2))
    assert r.log.committed == 2


def test_follower_truncates_only_on_conflict_and_backtracks_by_term() -> None:
    boot = Snapshot(0, 0, ConfState((1, 2, 3)))
    ents = [Entry(1, 1), Entry(1, 2), Entry(2, 3), Entry(2, 4), Entry(2, 5)]
    f = RaftNode(Config(2), random.Random(0), snapshot=boot, entries=ents, hard_state=HardState(2, 0, 2))
    f.step(Message(MsgType.APPEND, 2, 1, 3, 1, 2, (Entry(1, 3), Entry(1, 4)), commit=2))
    assert [(e.term, e.index) for e in f.log.entries] == [(1, 1), (1, 2), (1, 3), (1, 4)]
    f.step(Message(MsgType.APPEND, 2, 1, 3, 1, 1, (Entry(1, 2),), commit=2))
    assert f.log.last_index() == 4
    f.ready()
    f.step(Message(MsgType.APPEND, 2, 1, 3, 3, 9, commit=2))
    resp = f.ready().messages[-1]
    assert resp.reject and resp.reject_hint == 4 and resp.log_term == 1


def test_truncate_always_mutant_drops_entries_on_a_stale_append() -> None:
    boot = Snapshot(0, 0, ConfState((1, 2, 3)))
    ents = [Entry(1, 1), Entry(1, 2), Entry(1, 3)]
    f = RaftNode(Config(2), random.Random(0), snapshot=boot, entries=ents, hard_state=HardState(1, 0, 1),
                 mutations=Mutations(truncate_always=True))
    f.step(Message(MsgType.APPEND, 2, 1, 1, 1, 1, (Entry(1, 2),), commit=1))
    assert f.log.last_index() == 2


def test_lagging_follower_gets_a_snapshot_and_older_snapshots_are_ignored() -> None:
    c = Cluster(3)
    r = c.elect(1)
    c.cut = {3}
    for i in range(10):
        r.propose(b"%d" % i)
        c.settle()
    r.compact(r.log.applied, b"state")
    c.cut = set()
    c.tick(2)
    f = c.nodes[3]
    assert any(m.type == MsgType.SNAPSHOT and m.to == 3 for m in c.sent)
    assert f.log.snapshot.data == b"state" and f.log.committed == r.log.committed
    old = Snapshot(2, 1, ConfState((1, 2, 3)), b"old")
    f.step(Message(MsgType.SNAPSHOT, 3, 1, r.term, snapshot=old))
    assert f.log.snapshot.data == b"state" and f.log.committed == r.log.committed


def test_snapshot_drops_a_log_with_a_conflicting_entry_at_its_index() -> None:
    boot = Snapshot(0, 0, ConfState((1, 2, 3)))
    f = RaftNode(Config(2), random.Random(0), snapshot=boot, entries=[Entry(1, 1), Entry(1, 2), Entry(1, 3)],
                 hard_state=HardState(2, 0, 1))
    f.step(Message(MsgType.SNAPSHOT, 2, 1, 2, snapshot=Snapshot(3, 2, ConfState((1, 2, 3)), b"s")))
    rd = f.ready()
    assert rd.snapshot is not None and f.log.entries == [] and f.log.last_index() == 3
    f.advance(rd)
    keep = RaftNode(Config(2), random.Random(0), snapshot=boot, entries=[Entry(1, 1), Entry(1, 2), Entry(1, 3)])
    keep.step(Message(MsgType.SNAPSHOT, 2, 1, 1, snapshot=Snapshot(2, 1, ConfState((1, 2, 3)), b"s")))
    assert keep.log.last_index() == 3 and keep.log.committed == 2 and keep.ready().snapshot is None


def test_membership_change_rules() -> None:
    c = Cluster(3)
    boot = c.nodes[1].log.snapshot
    c.nodes[4] = RaftNode(Config(4), random.Random(4), snapshot=boot)
    c.applied[4], c.reads[4] = [], []
    r = c.elect(1)
    index = r.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    assert index and r.conf.learners == (4,)
    assert r.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 4)) == 0
    c.settle()
    assert c.nodes[4].log.committed == index and c.nodes[4].conf.learners == (4,)
    assert not c.nodes[4].promotable()
    assert r.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 4))
    assert r.conf.voters == (1, 2, 3, 4)
    c.settle()
    assert r.propose_conf_change(ConfChange(ConfChangeType.REMOVE, 1))
    c.settle()
    c.tick(3 * r.cfg.election_tick)
    assert r.role == Role.FOLLOWER and len(c.leaders()) == 1 and c.leaders()[0] != 1


def test_leadership_transfer() -> None:
    c = Cluster(3)
    r = c.elect(1)
    assert r.transfer_leadership(3)
    c.settle()
    assert c.leaders() == [3] and c.nodes[3].term == 2
    assert any(m.type == MsgType.TIMEOUT_NOW for m in c.sent)


def test_read_index_on_leader_and_follower() -> None:
    c = Cluster(3)
    r = c.elect(1)
    assert r.read_index(b"r1")
    c.settle()
    assert [(s.index, s.context) for s in c.reads[1]] == [(r.log.committed, b"r1")]
    assert c.nodes[2].read_index(b"r2")
    c.settle()
    assert [(s.index, s.context) for s in c.reads[2]] == [(r.log.committed, b"r2")]
    c.cut = {2, 3}
    assert r.read_index(b"r3")
    c.settle()
    assert [s.context for s in c.reads[1]] == [b"r1"]


def test_read_index_refused_before_an_own_term_commit_and_lease() -> None:
    assert not _leader_with_old_entry(Mutations()).read_index(b"x")
    c = Cluster(3)
    r = c.elect(1)
    assert r.read_index(b"x") and r.lease_valid()
    c.cut = {2, 3}
    c.tick(r.cfg.election_tick - 1, only=1)
    assert not r.lease_valid() and r.role == Role.LEADER


def test_messages_round_trip_through_the_codec() -> None:
    snap = Snapshot(5, 2, ConfState((1, 2), (3,)), b"d")
    m = Message(MsgType.APPEND, 2, 1, 3, 2, 5, (Entry(3, 6, 0, b"x"),), 5, False, 0, snap, b"c")
    assert decode(encode(m)) == m
    assert decode(encode(HardState(3, 1, 5))) == HardState(3, 1, 5)


def test_ready_reports_role_and_leader() -> None:
    c = Cluster(3)
    c.elect(2)
    rd: Ready = c.nodes[1].ready()
    assert rd.leader == 2 and rd.role == Role.FOLLOWER
