"""The state store's KV, session and catalog semantics, driven through the FSM as Raft would drive it.

Table tests of CAS, lock/unlock, delete-tree, tombstone indexes, watches, session invalidation and
lock-delay (with a fake clock), plus the leader's session TTL timers on a real event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consulpy.fsm import FSM, DeregisterRequest, KVSRequest, RegisterRequest, SessionRequest, TxnRequest
from consulpy.server.consensus import SingleNode
from consulpy.server.session_timers import SessionTimers
from consulpy.state import (
    CRITICAL,
    PASSING,
    SERF_CHECK_ID,
    DirEntry,
    HealthCheck,
    KVOp,
    Node,
    Session,
    StateError,
    StateStore,
    WatchSet,
)

NODE = "node1"


class Harness:
    """A store fed through the FSM at increasing indexes, with a clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.store = StateStore(clock=lambda: self.now)
        self.fsm = FSM(self.store)
        self.index = 0

    def apply(self, command: Any) -> Any:
        self.index += 1
        return self.fsm.apply(self.index, command)

    def kv(self, verb: str, key: str, value: bytes | None = None, **kw: Any) -> Any:
        return self.apply(KVSRequest(KVOp(verb, key, value, **kw)))

    def entry(self, key: str) -> DirEntry | None:
        return self.store.kv_get(key)[1]

    def register(self, node: str = NODE, checks: tuple[tuple[str, str], ...] = ((SERF_CHECK_ID, PASSING),)) -> None:
        health = tuple(HealthCheck(node=node, check_id=cid, name=cid, status=status) for cid, status in checks)
        assert self.apply(RegisterRequest(node=Node(id="", node=node, address="10.0.0.1"), checks=health)) is True

    def session(self, sid: str, node: str = NODE, **kw: Any) -> Any:
        return self.apply(SessionRequest("create", Session(id=sid, node=node, **kw)))


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.register()
    return harness


def test_set_keeps_create_index_and_bumps_modify_index(h: Harness) -> None:
    assert h.kv("set", "a", b"1") is True
    first = h.entry("a")
    assert first is not None and (first.create_index, first.modify_index) == (h.index, h.index)
    created = h.index
    assert h.kv("set", "a", b"2", flags=7) is True
    second = h.entry("a")
    assert second == DirEntry(key="a", value=b"2", flags=7, create_index=created, modify_index=h.index)


def test_unchanged_set_writes_nothing_and_wakes_nobody(h: Harness) -> None:
    h.kv("set", "a", b"1")
    before = h.entry("a")
    ws = WatchSet()
    h.store.kv_get("a", ws)
    woken: list[bool] = []
    h.store.watch(ws, lambda: woken.append(True))
    assert h.kv("set", "a", b"1") is True
    assert h.entry("a") == before
    assert woken == []
    h.kv("set", "a", b"")
    assert woken == [True]
    assert h.entry("a").value is None


@pytest.mark.parametrize(("exists", "cas", "expected"), [
    (False, "zero", True),  # cas=0: create only if absent
    (True, "zero", False),
    (False, "some", False),  # cas=N on a missing key never writes
    (True, "stale", False),
    (True, "current", True),
])
def test_cas_table(h: Harness, exists: bool, cas: str, expected: bool) -> None:
    if exists:
        h.kv("set", "k", b"old")
        h.kv("set", "other", b"x")
    current = h.entry("k").modify_index if exists else 0
    index = {"zero": 0, "some": 5, "stale": current - 1, "current": current}[cas]
    assert h.kv("cas", "k", b"new", index=index) is expected
    found = h.entry("k")
    if expected:
        assert found is not None and found.value == b"new"
    else:
        assert found is None or found.value == b"old"


def test_lock_unlock_semantics(h: Harness) -> None:
    assert h.session("s1") == "s1"
    assert h.session("s2") == "s2"
    missing = h.kv("lock", "l", b"v", session="nope")
    assert isinstance(missing, StateError) and str(missing) == 'invalid session "nope"'
    empty = h.kv("lock", "l", b"v", session="")
    assert isinstance(empty, StateError) and str(empty) == "missing session"
    assert h.entry("l") is None

    assert h.kv("lock", "l", b"v1", session="s1") is True
    held = h.entry("l")
    assert (held.session, held.lock_index, held.value) == ("s1", 1, b"v1")
    assert h.kv("lock", "l", b"v2", session="s1") is True  # re-acquire: value updated, LockIndex kept
    again = h.entry("l")
    assert (again.session, again.lock_index, again.value) == ("s1", 1, b"v2")
    assert h.kv("lock", "l", b"x", session="s2") is False
    assert h.kv("unlock", "l", b"x", session="s2") is False
    assert h.entry("l").session == "s1"

    assert h.kv("unlock", "l", b"v3", session="s1") is True
    released = h.entry("l")
    assert (released.session, released.lock_index, released.value) == ("", 1, b"v3")
    assert released.modify_index == h.index
    assert h.kv("lock", "l", b"v4", session="s2") is True
    assert h.entry("l").lock_index == 2
    assert h.kv("unlock", "missing", session="s2") is False


def test_plain_set_keeps_holder_but_not_lock_index(h: Harness) -> None:
    h.session("s1")
    h.kv("lock", "l", b"v", session="s1")
    assert h.kv("set", "l", b"w", session="ignored") is True
    entry = h.entry("l")
    assert (entry.session, entry.lock_index, entry.value) == ("s1", 0, b"w")


def test_delete_and_delete_cas(h: Harness) -> None:
    h.kv("set", "d", b"1")
    index = h.entry("d").modify_index
    table_before = h.store.kv_list("")[0]
    assert h.kv("delete", "missing") is True
    assert h.store.kv_list("")[0] == table_before  # deleting nothing changes no index
    assert h.kv("delete-cas", "d", index=index + 100) is False
    assert h.entry("d") is not None
    assert h.kv("delete-cas", "d", index=0) is False
    assert h.kv("delete-cas", "d", index=index) is True
    assert h.entry("d") is None
    assert h.kv("delete-cas", "d", index=12345) is True  # nothing to delete: the CAS holds


def test_delete_tree_and_tombstone_indexes(h: Harness) -> None:
    h.kv("set", "app/a", b"1")
    h.kv("set", "app/b", b"2")
    h.kv("set", "other/x", b"3")
    newest = h.index
    assert h.store.kv_list("app/")[0] == newest - 1
    assert h.kv("delete", "app/b") is True
    deleted_at = h.index
    index, entries = h.store.kv_list("app/")
    assert [e.key for e in entries] == ["app/a"]
    assert index == deleted_at  # the tombstone of app/b keeps the prefix index moving forward
    assert h.store.kv_list("other/")[0] == newest
    assert h.store.kv_get("app/b") == (deleted_at, None)  # a missing key reports the table index
    assert h.kv("delete-tree", "app/") is True
    assert h.store.kv_list("app/") == (h.index, [])
    assert [e.key for e in h.store.kv_list("")[1]] == ["other/x"]
    h.kv("set", "app/b", b"back")
    assert h.store.kv_list("app/")[0] == h.index


def test_keys_with_separator(h: Harness) -> None:
    for key in ("a/b/1", "a/b/2", "a/b0", "a/c", "a/", "b"):
        h.kv("set", key, b"x")
    assert h.store.kv_keys("a/", "/")[1] == ["a/", "a/b/", "a/b0", "a/c"]
    assert h.store.kv_keys("", "/")[1] == ["a/", "b"]
    assert h.store.kv_keys("a/b", "")[1] == ["a/b/1", "a/b/2", "a/b0"]


def test_watches_fire_only_for_what_was_read(h: Harness) -> None:
    h.kv("set", "app/config", b"0")
    key_ws, prefix_ws = WatchSet(), WatchSet()
    h.store.kv_get("app/config", key_ws)
    h.store.kv_list("app/", prefix_ws)
    fired: list[str] = []
    h.store.watch(key_ws, lambda: fired.append("key"))
    h.store.watch(prefix_ws, lambda: fired.append("prefix"))
    h.kv("set", "elsewhere", b"1")
    assert fired == []
    h.kv("set", "app/other", b"1")
    assert fired == ["prefix"]
    h.kv("set", "app/config", b"1")
    assert sorted(fired) == ["key", "prefix"]


def test_reads_of_nothing_watch_the_table_index_they_report(h: Harness) -> None:
    h.kv("set", "config/app/greeting", b"hello")
    key_ws, prefix_ws = WatchSet(), WatchSet()
    assert h.store.kv_get("config/application.yml", key_ws) == (h.index, None)
    assert h.store.kv_list("config/application/", prefix_ws) == (h.index, [])
    fired: list[str] = []
    h.store.watch(key_ws, lambda: fired.append("key"))
    h.store.watch(prefix_ws, lambda: fired.append("prefix"))
    h.kv("set", "config/app/greeting", b"changed")
    assert sorted(fired) == ["key", "prefix"]
    assert h.store.kv_list("config/application/")[0] == h.store.kv_get("config/application.yml")[0] == h.index


def test_destroy_releases_locks_and_sets_lock_delay(h: Harness) -> None:
    h.session("s1", lock_delay=5_000_000_000)
    h.kv("lock", "l", b"v", session="s1")
    h.kv("lock", "m", b"v", session="s1")
    h.apply(SessionRequest("destroy", Session(id="s1", node="")))
    for key in ("l", "m"):
        entry = h.entry(key)
        assert (entry.session, entry.lock_index, entry.modify_index) == ("", 1, h.index)
        assert h.store.kv_lock_delay_until(key) == pytest.approx(h.now + 5)
    assert h.store.session_get("s1")[1] is None
    h.now += 5.01
    assert h.store.kv_lock_delay_until("l") == 0


def test_delete_behavior_and_lock_delay_cap(h: Harness) -> None:
    h.session("s1", behavior="delete", lock_delay=3600_000_000_000)
    h.kv("lock", "gone", b"v", session="s1")
    h.apply(SessionRequest("destroy", Session(id="s1", node="")))
    assert h.entry("gone") is None
    assert h.store.kv_list("gone")[0] == h.index
    assert h.store.kv_lock_delay_until("gone") == pytest.approx(h.now + 60)  # capped at 60 s


def test_zero_lock_delay_allows_immediate_reacquire(h: Harness) -> None:
    h.session("s1", lock_delay=0)
    h.kv("lock", "l", b"v", session="s1")
    h.apply(SessionRequest("destroy", Session(id="s1", node="")))
    assert h.store.kv_lock_delay_until("l") == 0


def test_session_create_refusals(h: Harness) -> None:
    assert str(h.session("a", node="ghost")) == "Missing node registration"
    assert str(h.session("b", node_checks=("nope",))) == "Missing check 'nope' registration"
    h.register(checks=((SERF_CHECK_ID, PASSING), ("bad", CRITICAL)))
    assert str(h.session("c", node_checks=("bad",))) == "Check 'bad' is in critical state"
    assert h.session("d") == "d"
    assert str(h.session("d")) == "Session ID 'd' already exists"
    assert [s.id for s in h.store.session_list()[1]] == ["d"]


def test_critical_check_invalidates_session(h: Harness) -> None:
    h.register(checks=((SERF_CHECK_ID, PASSING), ("web", PASSING)))
    h.session("s1", node_checks=(SERF_CHECK_ID, "web"))
    h.session("s2", node_checks=())
    h.kv("lock", "l", b"v", session="s1")
    h.register(checks=(("web", CRITICAL),))
    assert h.store.session_get("s1")[1] is None
    assert h.store.session_get("s2")[1] is not None  # no checks: only a destroy ends it
    assert h.entry("l").session == ""


def test_check_deregistration_invalidates_session(h: Harness) -> None:
    h.register(checks=((SERF_CHECK_ID, PASSING), ("web", PASSING)))
    h.session("s1", node_checks=("web",))
    h.kv("lock", "l", b"v", session="s1")
    h.apply(DeregisterRequest(node=NODE, check_id="web"))
    assert h.store.session_get("s1")[1] is None
    assert h.entry("l").session == ""


def test_node_deregistration_invalidates_sessions(h: Harness) -> None:
    h.register(node="node2")
    h.session("s1", node="node2", node_checks=())
    h.session("s2", node="node2", behavior="delete", node_checks=())
    h.kv("lock", "r", b"v", session="s1")
    h.kv("lock", "d", b"v", session="s2")
    assert [s.id for s in h.store.node_sessions("NODE2")[1]] == ["s1", "s2"]
    h.apply(DeregisterRequest(node="node2"))
    assert h.store.node_sessions("node2")[1] == []
    assert h.entry("r").session == ""
    assert h.entry("d") is None


def test_txn_is_all_or_nothing(h: Harness) -> None:
    h.kv("set", "t/a", b"1")
    before = h.store.kv_list("")
    outcome = h.apply(TxnRequest((KVOp("set", "t/b", b"2"), KVOp("cas", "t/a", b"x", index=999),
                                  KVOp("get", "t/missing"))))
    assert outcome.results == ()
    assert outcome.errors == ((1, 'failed to set key "t/a", index is stale'), (2, 'key "t/missing" doesn\'t exist'))
    assert h.store.kv_list("") == before
    ok = h.apply(TxnRequest((KVOp("set", "t/b", b"2"), KVOp("get", "t/a"), KVOp("get-tree", "t/"),
                             KVOp("delete", "t/a"), KVOp("check-not-exists", "t/a"))))
    assert ok.errors == ()
    assert [(r.key, r.value) for r in ok.results] == [("t/b", None), ("t/a", b"1"), ("t/a", b"1"), ("t/b", b"2")]
    assert h.entry("t/a") is None and h.entry("t/b").modify_index == h.index


def test_txn_checks_and_read_only_evaluation(h: Harness) -> None:
    h.session("s1")
    h.kv("lock", "c", b"v", session="s1")
    index = h.entry("c").modify_index
    results, errors = h.store.kv_txn_read([
        KVOp("check-index", "c", index=index), KVOp("check-session", "c", session="s1"),
        KVOp("get-or-empty", "nothing", flags=3), KVOp("get", "c")])
    assert errors == []
    assert [(r.key, r.value, r.flags) for r in results] == [("c", None, 0), ("c", None, 0), ("nothing", None, 3),
                                                            ("c", b"v", 0)]
    _, failures = h.store.kv_txn_read([
        KVOp("check-index", "c", index=index + 1), KVOp("check-session", "c", session="s2"),
        KVOp("check-index", "nope"), KVOp("set", "c", b"w"), KVOp("bogus", "c")])
    assert [(pos, str(err)) for pos, err in failures] == [
        (0, f'failed index check for key "c", current modify index {index} != {index + 1}'),
        (1, 'failed session check for key "c", current session "s1" != "s2"'),
        (2, 'failed to check index, key "nope" doesn\'t exist'),
        (3, "cannot insert in read-only transaction"),
        (4, 'unknown KV verb "bogus"'),
    ]
    assert h.entry("c").value == b"v"


def test_session_timers_arm_on_leadership_and_expire() -> None:
    async def scenario() -> None:
        harness = Harness()
        harness.register()
        consensus = SingleNode(harness.fsm, "127.0.0.1:8300", "node1", "00000000-0000-0000-0000-000000000001")
        for sid, ttl in (("short", "300ms"), ("none", ""), ("zero", "0s"), ("long", "1h")):
            assert await consensus.apply(SessionRequest("create", Session(id=sid, node=NODE, ttl=ttl))) == sid
        timers = SessionTimers(consensus)
        timers.reset(harness.store.session_get("long")[1])
        assert timers.armed() == 0  # not leading yet: nothing is armed
        timers.start()
        assert timers.armed() == 2  # "short" and "long"; no timer without a TTL
        await asyncio.sleep(0.35)
        assert consensus.fsm.store.session_get("short")[1] is not None  # TTL is a lower bound: 2 x TTL
        while consensus.fsm.store.session_get("short")[1] is not None:
            await asyncio.sleep(0.02)
        assert timers.armed() == 1
        timers.stop()
        assert timers.armed() == 0
        assert consensus.fsm.store.session_get("long")[1] is not None

    asyncio.run(asyncio.wait_for(scenario(), 10))
