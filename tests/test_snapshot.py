"""State snapshots: the store image, RestoreRequest's index rule, the archive, GET/PUT /v1/snapshot and the CLI.

Unit tests drive a store through the FSM as Raft would; the rest run real `-dev` agents and the `consulpy`
command, and check Consul's texts, status codes and exit codes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

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
from consulpy.state.snapshot import SnapshotError, SnapshotMeta, write_archive
from tests.agentproc import AgentProcess
from tests.test_cli import consul
from tests.test_state_store import Harness

# --------------------------------------------------------------------------- the store image


def populated() -> Harness:
    """A store with every kind of record, and the leftovers of updates and deletes (tombstones, moved checks)."""
    feed = Harness()
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
    feed = Harness()
    feed.store.restore(original.snapshot())
    feed.index = original.last_index
    feed.apply(SessionRequest("destroy", Session(id="11111111-0000-0000-0000-000000000002", node="beta")))
    assert feed.store.kv_get("locks/b")[1] is None
    feed.apply(SessionRequest("destroy", Session(id="11111111-0000-0000-0000-000000000001", node="Alpha")))
    assert feed.store.kv_get("locks/a")[1].session == ""  # type: ignore[union-attr]


def test_restore_replaces_everything_wakes_every_waiter_and_drops_lock_delays() -> None:
    feed = populated()
    image = feed.store.snapshot()
    target = Harness()
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
    far = Harness()
    far.index = 5000
    far.kv("set", "from-far", b"v")
    image = far.store.snapshot()
    fresh = Harness()
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
    feed = Harness()
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


# --------------------------------------------------------------------------- GET/PUT /v1/snapshot


def put_kv(agent: AgentProcess, key: str, value: bytes, query: str = "") -> bool:
    return requests.put(f"{agent.http}/v1/kv/{key}{query}", data=value, timeout=5).json() is True


def state_view(agent: AgentProcess) -> dict[str, Any]:
    """What a restore must bring back, indexes included, read over HTTP (the test agents' own nodes aside)."""
    base = agent.http
    nodes = [n for n in requests.get(f"{base}/v1/catalog/nodes", timeout=5).json()
             if not n["Node"].startswith("node-127-")]
    return {"kv": requests.get(f"{base}/v1/kv/?recurse", timeout=5).json(),
            "nodes": nodes,
            "db": requests.get(f"{base}/v1/catalog/service/db", timeout=5).json(),
            "db-health": requests.get(f"{base}/v1/health/service/db", timeout=5).json(),
            "sessions": requests.get(f"{base}/v1/session/list", timeout=5).json()}


def seed(agent: AgentProcess) -> str:
    """KV keys, an external node with a service and check, and a session holding a lock; returns its ID."""
    base = agent.http
    for number in range(20):
        assert put_kv(agent, f"app/{number % 4}/key{number}", f"value-{number}".encode(), f"?flags={number}")
    register = {"Node": "ext-1", "Address": "10.20.0.1", "NodeMeta": {"rack": "r1"},
                "Service": {"ID": "db-1", "Service": "db", "Tags": ["primary"], "Port": 5432},
                "Check": {"CheckID": "db-alive", "Name": "db alive", "Status": "passing", "ServiceID": "db-1"}}
    assert requests.put(f"{base}/v1/catalog/register", json=register, timeout=5).json() is True
    session = requests.put(f"{base}/v1/session/create", json={"Name": "locker", "LockDelay": "0s"},
                           timeout=5).json()["ID"]
    assert put_kv(agent, "locks/leader", b"me", f"?acquire={session}")
    return str(session)


def archive_members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_http_save_then_restore_brings_everything_back(start_agent: Callable[..., AgentProcess]) -> None:
    agent = start_agent()
    base = agent.http
    session = seed(agent)
    saved_view = state_view(agent)
    saved = requests.get(f"{base}/v1/snapshot", timeout=10)
    assert saved.status_code == 200
    assert saved.headers["Content-Type"] == "application/x-gzip"
    assert saved.headers["X-Consul-Knownleader"] == "true" and saved.headers["X-Consul-Lastcontact"] == "0"
    members = archive_members(saved.content)
    assert list(members) == ["meta.json", "state.bin", "SHA256SUMS"]
    meta = json.loads(members["meta.json"])
    assert list(meta) == ["Version", "ID", "Index", "Term", "Peers", "Configuration", "ConfigurationIndex", "Size"]
    assert meta["Index"] == int(saved.headers["X-Consul-Index"]) > 0 and meta["Size"] == len(members["state.bin"])
    assert meta["Version"] == 1 and re.fullmatch(rf"{meta['Term']}-{meta['Index']}-\d{{13}}", meta["ID"])
    assert meta["Configuration"]["Servers"][0]["Address"] == f"{agent.address}:8300"
    assert members["SHA256SUMS"].decode() == (f"{hashlib.sha256(members['meta.json']).hexdigest()}  meta.json\n"
                                              f"{hashlib.sha256(members['state.bin']).hexdigest()}  state.bin\n")
    assert requests.get(f"{base}/v1/snapshot?stale", timeout=10).status_code == 200

    # Change everything, then restore while a blocking query waits on the catalog.
    requests.put(f"{base}/v1/session/destroy/{session}", timeout=5)
    requests.delete(f"{base}/v1/kv/app?recurse", timeout=5)
    put_kv(agent, "app/new", b"not in the snapshot")
    requests.put(f"{base}/v1/catalog/deregister", json={"Node": "ext-1"}, timeout=5)
    assert state_view(agent) != saved_view
    before = requests.get(f"{base}/v1/catalog/nodes", timeout=5)
    woken: list[requests.Response] = []
    watcher = threading.Thread(target=lambda: woken.append(requests.get(
        f"{base}/v1/catalog/nodes?index={before.headers['X-Consul-Index']}&wait=20s", timeout=30)))
    watcher.start()
    time.sleep(0.3)
    started = time.monotonic()
    restored = requests.put(f"{base}/v1/snapshot", data=saved.content, timeout=10)
    assert (restored.status_code, restored.text) == (200, "")
    watcher.join(10)
    assert woken and time.monotonic() - started < 5
    assert int(woken[0].headers["X-Consul-Index"]) > int(before.headers["X-Consul-Index"])
    assert state_view(agent) == saved_view
    # The restored lock is still bound to its session: destroying the session releases it.
    requests.put(f"{base}/v1/session/destroy/{session}", timeout=5)
    assert requests.get(f"{base}/v1/kv/locks/leader", timeout=5).json()[0].get("Session") is None
    assert "Traceback" not in agent.log()


def test_restore_into_a_fresh_agent_continues_above_the_snapshot(start_agent: Callable[..., AgentProcess]) -> None:
    source = start_agent()
    seed(source)
    for number in range(30):  # move the source well past where a fresh agent starts
        put_kv(source, "churn", str(number).encode())
    archive = requests.get(f"{source.http}/v1/snapshot", timeout=10)
    saved_index = int(archive.headers["X-Consul-Index"])
    saved_view = state_view(source)
    fresh = start_agent(host=3)
    assert int(requests.get(f"{fresh.http}/v1/kv/?recurse", timeout=5).headers["X-Consul-Index"]) < saved_index
    assert requests.put(f"{fresh.http}/v1/snapshot", data=archive.content, timeout=10).status_code == 200
    assert state_view(fresh) == saved_view
    assert int(requests.get(f"{fresh.http}/v1/catalog/nodes", timeout=5).headers["X-Consul-Index"]) > saved_index
    # The fresh agent's leader duties ran again: its own node is back in the restored catalog.
    own = fresh.node_name
    assert requests.get(f"{fresh.http}/v1/catalog/node/{own}", timeout=5).json()["Node"]["Node"] == own
    assert put_kv(fresh, "after-restore", b"x")
    entry = requests.get(f"{fresh.http}/v1/kv/after-restore", timeout=5).json()[0]
    assert entry["CreateIndex"] > saved_index + 1
    assert "Traceback" not in fresh.log()


def tar_of(*members: tuple[str, bytes]) -> bytes:
    """A tar as Go writes one: USTAR headers, data padded to 512, two zero blocks and nothing after."""
    parts = []
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o600
        parts += [info.tobuf(tarfile.USTAR_FORMAT), data, bytes(-len(data) % 512)]
    return b"".join(parts) + bytes(1024)


def test_bad_archives_get_consul_errors_and_change_nothing(start_agent: Callable[..., AgentProcess]) -> None:
    agent = start_agent()
    seed(agent)
    good = requests.get(f"{agent.http}/v1/snapshot", timeout=10).content
    members = archive_members(good)
    tar = gzip.decompress(good)
    image = members["state.bin"]
    tampered = tar.replace(b"consulpy-state", b"consulpy-statf", 1)
    bad_crc = good[:-8] + bytes(4) + good[-4:]
    foreign = b"\x82\xa4Type\x00\xa4Data\xc0"
    cases = [
        (b"", "failed to decompress snapshot: EOF"),
        (b"garbage", "failed to decompress snapshot: unexpected EOF"),
        (b"this is not a gzip stream at all", "failed to decompress snapshot: gzip: invalid header"),
        (good[:12], "failed to read snapshot file: failed reading snapshot: unexpected EOF"),
        (good[:-4], "unexpected EOF"),
        (bad_crc, "gzip: invalid checksum"),
        (gzip.compress(tampered), 'failed to read snapshot file: failed checking integrity of snapshot: hash check '
                                  'failed for "state.bin"'),
        (gzip.compress(tar + b"extra"), "5 unread uncompressed bytes remain"),
        (gzip.compress(tar_of(("meta.json", members["meta.json"]), ("evil.sh", b"x"))),
         'failed to read snapshot file: unexpected file "evil.sh" in snapshot'),
        (gzip.compress(tar_of(("meta.json", b"{nope"), ("state.bin", image))),
         "failed to read snapshot file: failed to decode snapshot metadata: invalid character 'n' in JSON value"),
        (gzip.compress(tar_of(("meta.json", members["meta.json"]), ("state.bin", image))),
         'failed to read snapshot file: failed checking integrity of snapshot: file missing for "meta.json"'),
        (write_archive(SnapshotMeta(index=5, term=2, size=len(image), version=7), image),
         "Raft error when restoring snapshot: unsupported snapshot version 7"),
        (write_archive(SnapshotMeta(index=5, term=2, size=len(image) + 1), image),
         f"Raft error when restoring snapshot: failed to write snapshot, size didn't match ({len(image)} != "
         f"{len(image) + 1})"),
        (write_archive(SnapshotMeta(index=5, term=2, size=len(foreign)), foreign),
         "Raft error when restoring snapshot: failed to restore snapshot: not a consulpy state image (snapshots "
         "taken by HashiCorp Consul cannot be restored into consulpy)"),
    ]
    before = state_view(agent), requests.get(f"{agent.http}/v1/kv/?recurse", timeout=5).headers["X-Consul-Index"]
    for body, message in cases:
        reply = requests.put(f"{agent.http}/v1/snapshot", data=body, timeout=10)
        assert (reply.status_code, reply.text) == (500, message), body[:40]
    after = state_view(agent), requests.get(f"{agent.http}/v1/kv/?recurse", timeout=5).headers["X-Consul-Index"]
    assert after == before
    stale = requests.put(f"{agent.http}/v1/snapshot?stale", data=good, timeout=10)
    assert (stale.status_code, stale.text) == (500, "stale not allowed for restore")
    elsewhere = requests.get(f"{agent.http}/v1/snapshot?dc=other", timeout=10)
    assert (elsewhere.status_code, elsewhere.text) == (500, "No path to datacenter")
    wrong_method = requests.delete(f"{agent.http}/v1/snapshot", timeout=5)
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "OPTIONS,GET,PUT"
    assert "Traceback" not in agent.log()


# --------------------------------------------------------------------------- consul snapshot save|restore|inspect


def test_cli_save_inspect_restore(start_agent: Callable[..., AgentProcess], tmp_path: Path) -> None:
    agent = start_agent()
    seed(agent)
    file = tmp_path / "backup.snap"
    saved = consul("snapshot", "save", str(file), agent=agent)
    index = requests.get(f"{agent.http}/v1/kv/?recurse", timeout=5).headers["X-Consul-Index"]
    assert (saved.returncode, saved.stdout, saved.stderr) == (0, f"Saved and verified snapshot to index {index}\n",
                                                              "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.snap"]
    meta = json.loads(archive_members(file.read_bytes())["meta.json"])

    shown = consul("snapshot", "inspect", str(file))
    assert shown.returncode == 0 and shown.stderr == ""
    lines = shown.stdout.split("\n")
    head = [f" ID           {meta['ID']}", f" Size         {meta['Size']}", f" Index        {meta['Index']}",
            f" Term         {meta['Term']}", " Version      1", ""]
    assert lines[:6] == head
    assert lines[6] == " Type          Count      Size"
    assert lines[7] == " ----          ----       ----"
    rows = {line.split()[0]: line for line in lines[8:-3]}
    assert sorted(rows) == ["Index", "KVS", "Register", "Session"]
    assert re.fullmatch(r" KVS           21         \d+(\.\d)?(B|KB)", rows["KVS"]), rows
    assert re.fullmatch(r" Session       1          \d+B", rows["Session"]), rows
    assert lines[-3] == " ----          ----       ----" and lines[-1] == ""
    assert re.fullmatch(r" Total                    \d+(\.\d)?(B|KB)", lines[-2])

    detailed = consul("snapshot", "inspect", "-kvdetails", "-kvdepth=1", "-kvfilter=app", str(file))
    kv_lines = detailed.stdout.split("\n\n")[-1].split("\n")
    assert kv_lines[0] == " Key Name      Count      Size" and kv_lines[2].startswith(" app           20         ")
    as_json = json.loads(consul("snapshot", "inspect", "-format=json", str(file)).stdout)
    assert list(as_json) == ["Meta", "Stats", "StatsKV", "TotalSize", "TotalSizeKV"]
    assert as_json["Meta"] == {k: meta[k] for k in ("ID", "Size", "Index", "Term", "Version")}
    assert as_json["StatsKV"] is None and as_json["TotalSizeKV"] == 0
    assert [(s["Name"], s["Count"]) for s in as_json["Stats"] if s["Name"] in ("KVS", "Session")] == [
        ("KVS", 21), ("Session", 1)]
    assert as_json["TotalSize"] == sum(s["Sum"] for s in as_json["Stats"])
    unknown = consul("snapshot", "inspect", "-format=xml", str(file))
    assert (unknown.returncode, unknown.stderr) == (1, "Error outputting enhanced snapshot data: Unknown format: xml\n")

    put_kv(agent, "app/0/key0", b"changed")
    restored = consul("snapshot", "restore", str(file), agent=agent)
    assert (restored.returncode, restored.stdout, restored.stderr) == (0, "Restored snapshot\n", "")
    assert requests.get(f"{agent.http}/v1/kv/app/0/key0?raw", timeout=5).content == b"value-0"

    missing = consul("snapshot", "restore", str(tmp_path / "nope.snap"), agent=agent)
    assert (missing.returncode, missing.stderr) == (
        1, f"Error opening snapshot file: open {tmp_path / 'nope.snap'}: no such file or directory\n")
    junk = tmp_path / "junk.snap"
    junk.write_bytes(b"definitely not a snapshot")
    refused = consul("snapshot", "restore", str(junk), agent=agent)
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1, "", "Error restoring snapshot: Unexpected response code: 500 (failed to decompress snapshot: gzip: "
               "invalid header)\n")
    bad_inspect = consul("snapshot", "inspect", str(junk))
    assert (bad_inspect.returncode, bad_inspect.stderr) == (
        1, "Error reading snapshot: failed to decompress snapshot: gzip: invalid header\n")
    for args, message in ((("save",), "Missing FILE argument"), (("save", "a", "b"), "Too many arguments (expected 1 "
                          "or 3, got 2)"), (("restore",), "Missing FILE argument"),
                          (("inspect", "a", "b"), "Too many arguments (expected 1, got 2)")):
        result = consul("snapshot", *args, agent=agent)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n"), args
    named = consul("snapshot", "save", "-append-filename=version,dc", str(tmp_path / "named.snap"), agent=agent)
    assert named.returncode == 0 and (tmp_path / "named-1.20.1-dc1.snap").exists()
    assert "Traceback" not in agent.log()
