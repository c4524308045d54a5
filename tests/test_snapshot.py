"""State snapshots: the store image, RestoreRequest's index rule, the archive, GET/PUT /v1/snapshot and the CLI.

Unit tests drive a store through the FSM as Raft would; the rest run real `-dev` agents and the `consulpy`
command, and check Consul's texts, status codes and exit codes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from consulpy.fsm import FSM, DeregisterRequest, KVSRequest, RegisterRequest, RestoreRequest, SessionRequest
from consulpy.state import (
    CRITICAL,
    PASSING,
    SERF_CHECK_ID,
    WARNING,
    HealthCheck,
    KVOp,
    Node,
    NodeService,
    Session,
    StateError,
    StateStore,
    WatchSet,
    Weights,
)
from consulpy.state.snapshot import SnapshotError

# --------------------------------------------------------------------------- the store image


class Feed:
    """A store fed through the FSM at increasing Raft indexes, with a clock the test owns."""

    def __init__(self) -> None:
        self.now = 500.0
        self.store = StateStore(clock=lambda: self.now)
        self.fsm = FSM(self.store)
        self.index = 0

    def apply(self, command: Any) -> Any:
        self.index += 1
        return self.fsm.apply(self.index, command)

    def kv(self, verb: str, key: str, value: bytes | None = None, **kw: Any) -> Any:
        return self.apply(KVSRequest(KVOp(verb, key, value, **kw)))


def populated() -> Feed:
    """A store with every kind of record, and the leftovers of updates and deletes (tombstones, moved checks)."""
    feed = Feed()
    for name, address in (("Alpha", "10.0.0.1"), ("beta", "10.0.0.2"), ("gamma", "10.0.0.3")):
        feed.apply(RegisterRequest(
            node=Node(id=f"id-{name}", node=name, address=address, datacenter="dc1",
                      tagged_addresses={"lan": address}, meta={"rack": name[0]}),
            checks=(HealthCheck(node=name, check_id=SERF_CHECK_ID, name="Serf Health Status", status=PASSING),)))
    for number, node in enumerate(("Alpha", "beta", "Alpha", "gamma")):
        feed.apply(RegisterRequest(
            node=Node(id="", node=node, address=""), skip_node_update=True,
            service=NodeService(id=f"web-{number}", service="Web" if number % 2 else "web", tags=("v1", "blue"),
                                address=f"10.1.0.{number}", port=8000 + number, meta={"n": str(number)},
                                tagged_addresses={"lan": {"Address": "10.1.0.9", "Port": 80}},
                                weights=Weights(passing=3, warning=1), proxy={"Mode": ""}),
            checks=(HealthCheck(node=node, check_id=f"web-check-{number}", name="http", status=WARNING,
                                service_id=f"web-{number}", type="http", interval="10s",
                                definition={"HTTP": "http://x/"}),)))
    feed.apply(RegisterRequest(node=Node(id="", node="beta", address=""), skip_node_update=True,
                               checks=(HealthCheck(node="beta", check_id="disk", name="disk", status=PASSING),)))
    feed.apply(RegisterRequest(node=Node(id="", node="beta", address=""), skip_node_update=True,
                               checks=(HealthCheck(node="beta", check_id="disk", name="disk", status=CRITICAL,
                                                   output="full"),)))
    feed.apply(DeregisterRequest(node="gamma", service_id="web-3"))
    for number in range(30):
        feed.kv("set", f"app/{number % 3}/key{number:02}", f"value {number}".encode(), flags=number)
    feed.kv("set", "empty", None)
    feed.kv("delete", "app/1/key01")
    feed.kv("delete-tree", "app/2/")
    feed.apply(SessionRequest("create", Session(id="11111111-0000-0000-0000-000000000001", node="Alpha",
                                                name="holder", lock_delay=0, ttl="30s")))
    feed.apply(SessionRequest("create", Session(id="11111111-0000-0000-0000-000000000002", node="beta",
                                                behavior="delete", node_checks=(SERF_CHECK_ID,),
                                                service_checks=({"ID": "web-check-1", "Namespace": ""},))))
    feed.apply(SessionRequest("create", Session(id="11111111-0000-0000-0000-000000000003", node="gamma")))
    assert feed.kv("lock", "locks/a", b"held", session="11111111-0000-0000-0000-000000000001") is True
    assert feed.kv("lock", "locks/b", b"held", session="11111111-0000-0000-0000-000000000002") is True
    assert feed.kv("lock", "locks/c", b"held", session="11111111-0000-0000-0000-000000000003") is True
    feed.apply(SessionRequest("destroy", Session(id="11111111-0000-0000-0000-000000000003", node="gamma")))
    return feed


def content(store: StateStore) -> dict[str, Any]:
    """Everything the store holds apart from the process-local parts; empty containers are the same as none."""

    def tidy(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: tidy(v) for k, v in value.items() if not (isinstance(v, dict | set) and not v)}
        return value

    local = {"_clock", "_waiters", "_prefix_watch_count", "_pending", "_lock_delay"}
    return {name: tidy(value) for name, value in vars(store).items() if name not in local}


def reads(store: StateStore) -> list[Any]:
    """The answer, index included, of every read the endpoints make, over every name in the store."""
    answers: list[Any] = [store.nodes(), store.services(), store.session_list(), store.checks_in_state("any"),
                          store.table_index("nodes", "services", "checks", "kvs", "tombstones", "sessions")]
    for state in (PASSING, WARNING, CRITICAL):
        answers.append(store.checks_in_state(state))
    for name in ("alpha", "Alpha", "beta", "gamma", "missing"):
        answers += [store.node_services(name), store.node_checks(name), store.node_sessions(name),
                    store.get_node(name)]
    for name in ("web", "Web", "missing"):
        answers += [store.service_nodes(name), store.check_service_nodes(name), store.service_checks(name),
                    store.service_index(name)]
    for prefix in ("", "app/", "app/0/", "app/1/", "app/2/", "locks/", "none/"):
        answers += [store.kv_list(prefix), store.kv_keys(prefix, "/"), store.kv_keys(prefix, "")]
    for key in ("app/0/key00", "app/1/key01", "app/2/key02", "empty", "locks/a", "locks/b", "locks/c", "none"):
        answers.append(store.kv_get(key))
    for sid in ("11111111-0000-0000-0000-000000000001", "11111111-0000-0000-0000-000000000003"):
        answers.append(store.session_get(sid))
    return answers


def test_image_round_trip_keeps_every_value_and_index() -> None:
    original = populated().store
    copy = StateStore()
    copy.restore(original.snapshot())
    assert content(copy) == content(original)
    assert reads(copy) == reads(original)
    assert copy.last_index == original.last_index > 0
    assert copy.kv_list("app/2/")[0] == original.kv_list("app/2/")[0] > 0  # a deleted prefix keeps its index
    assert copy.kv_get("locks/a")[1] == original.kv_get("locks/a")[1]
    assert copy.kv_get("locks/a")[1].lock_index == 1  # type: ignore[union-attr]
    # Restored locks are bound to their sessions: destroying one releases (or deletes) what it holds.
    feed = Feed()
    feed.store.restore(original.snapshot())
    feed.index = original.last_index
    feed.apply(SessionRequest("destroy", Session(id="11111111-0000-0000-0000-000000000002", node="beta")))
    assert feed.store.kv_get("locks/b")[1] is None
    feed.apply(SessionRequest("destroy", Session(id="11111111-0000-0000-0000-000000000001", node="Alpha")))
    assert feed.store.kv_get("locks/a")[1].session == ""  # type: ignore[union-attr]


def test_restore_replaces_everything_wakes_every_waiter_and_drops_lock_delays() -> None:
    feed = populated()
    image = feed.store.snapshot()
    target = Feed()
    target.kv("set", "only-here", b"x")
    target.apply(RegisterRequest(node=Node(id="", node="lonely", address="10.9.9.9")))
    assert target.apply(SessionRequest("create", Session(id="s-delay", node="lonely", node_checks=()))) == "s-delay"
    assert target.kv("lock", "delayed", b"", session="s-delay") is True
    target.apply(SessionRequest("destroy", Session(id="s-delay", node="lonely")))
    assert target.store.kv_lock_delay_until("delayed") > target.now
    fired: list[str] = []
    for kind, name in (("kv", "only-here"), ("kvp", "app/"), ("table", "nodes"), ("service", "web"),
                       ("node", "lonely"), ("table", "sessions")):
        ws = WatchSet()
        ws.add(kind, name)
        target.store.watch(ws, lambda label=f"{kind}:{name}": fired.append(label))
    assert target.store.waiting() == 6
    target.store.restore(image)
    assert len(fired) == 6
    assert target.store.kv_get("only-here")[1] is None and target.store.get_node("lonely") is None
    assert content(target.store) == content(feed.store)
    assert target.store.kv_lock_delay_until("delayed") == 0.0


@pytest.mark.parametrize("image", [b"", b"\xc1", b"garbage that is not msgpack", b"\x93\x01\x02\x03",
                                   b"\x92\x00\xc4\x00"])
def test_a_bad_image_changes_nothing(image: bytes) -> None:
    feed = populated()
    before = content(feed.store)
    with pytest.raises(SnapshotError):
        feed.store.restore(image)
    with pytest.raises(SnapshotError):
        feed.fsm.restore(image)
    truncated = feed.store.snapshot()[:-40]
    with pytest.raises(SnapshotError):
        feed.store.restore(truncated)
    result = feed.apply(RestoreRequest(image))
    assert isinstance(result, StateError) and isinstance(result, SnapshotError)
    assert content(feed.store) == before | {"last_index": feed.index}


def test_restore_command_moves_every_index_past_the_raft_index() -> None:
    old = populated()
    saved = old.store.snapshot()
    saved_entry = old.store.kv_get("app/0/key00")
    saved_sessions = old.store.session_list()[1]
    # The store moves on, then the older image is restored through the log at a later Raft index.
    for number in range(5):
        old.kv("set", f"later/{number}", b"x")
    waiter = WatchSet()
    waiter.add("kv", "app/0/key00")
    woken: list[bool] = []
    old.store.watch(waiter, lambda: woken.append(True))
    assert old.apply(RestoreRequest(saved)) is True
    at = old.index
    assert woken == [True]
    assert old.store.last_index == at and old.fsm.index_offset == 0
    for table in ("nodes", "services", "checks", "kvs", "tombstones", "sessions"):
        assert old.store.table_index(table) == at
    assert old.store.service_index("web") == at and old.store.nodes()[0] == at and old.store.session_list()[0] == at
    assert old.store.kv_get("later/0") == (at, None)
    # Records keep their own CreateIndex/ModifyIndex/LockIndex: they read back as saved.
    assert old.store.kv_get("app/0/key00") == saved_entry
    assert old.store.session_list()[1] == saved_sessions
    assert old.kv("set", "after", b"y") is True
    assert old.store.kv_get("after")[0] == at + 1


def test_restore_of_an_image_from_further_along_continues_above_it() -> None:
    far = Feed()
    far.index = 5000
    far.kv("set", "from-far", b"v")
    image = far.store.snapshot()
    fresh = Feed()
    fresh.kv("set", "mine", b"m")
    assert fresh.apply(RestoreRequest(image)) is True
    assert fresh.index == 2
    assert fresh.store.last_index == 5002 and fresh.fsm.index_offset == 5000
    assert fresh.store.kv_get("from-far")[0] == 5001
    assert fresh.store.nodes()[0] == 5002
    fresh.kv("set", "next", b"n")
    assert fresh.store.kv_get("next")[0] == 5003
    # The offset is part of the FSM image, so a follower that installs it continues identically.
    follower = FSM(StateStore())
    follower.restore(fresh.fsm.snapshot())
    assert follower.index_offset == 5000 and content(follower.store) == content(fresh.store)
    follower.apply(4, KVSRequest(KVOp("set", "next2", b"n")))
    fresh.kv("set", "next2", b"n")
    assert content(follower.store) == content(fresh.store)


def test_snapshot_and_restore_of_10k_keys_and_1k_services_is_fast() -> None:
    feed = Feed()
    for node in range(50):
        feed.apply(RegisterRequest(node=Node(id=f"n{node}", node=f"node{node}", address=f"10.0.{node}.1")))
    for number in range(1000):
        node = f"node{number % 50}"
        feed.apply(RegisterRequest(
            node=Node(id="", node=node, address=""), skip_node_update=True,
            service=NodeService(id=f"svc{number}", service=f"service{number % 40}", tags=("a", "b"), port=number,
                                meta={"version": "1"}),
            checks=(HealthCheck(node=node, check_id=f"check{number}", name="c", status=PASSING,
                                service_id=f"svc{number}"),)))
    for number in range(10_000):
        feed.kv("set", f"data/{number % 100}/key{number}", b"v" * 64)
    started = time.perf_counter()
    data = feed.fsm.snapshot()
    taken = time.perf_counter()
    copy = FSM(StateStore())
    copy.restore(data)
    done = time.perf_counter()
    print(f"\nFSM image {len(data)} bytes: snapshot {1000 * (taken - started):.0f} ms, "
          f"restore {1000 * (done - taken):.0f} ms")
    assert content(copy.store) == content(feed.store)
    assert done - started < 1.0  # well under 0.5 s on an idle machine; this bound leaves room for a busy one
