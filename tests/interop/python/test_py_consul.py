"""py-consul (the maintained Python client, criteo/py-consul) against a real `consulpy agent -dev`.

Every call goes through the library exactly as an application would make it, so its request shapes
(lower-case JSON keys, `enable=True`, `recurse=1`, `keys=True`, `wait=…`) and its response handling
(index headers required, 404 → None, status → exception mapping) are what is being checked.
Incompatibilities found this way are listed in docs/interop.md.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import consul
import pytest
from consul.exceptions import ClientError

from tests.agentproc import AgentProcess

T = TypeVar("T")


def client(agent: AgentProcess, **kwargs: Any) -> consul.Consul:
    return consul.Consul(host=agent.address, port=8500, **kwargs)


def node_name(agent: AgentProcess) -> str:
    return f"node-{agent.address.replace('.', '-')}"


def wait_for(probe: Callable[[], T], timeout: float = 10.0) -> T:
    """Call `probe` until it returns something truthy; fail with its last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout}s: {value!r}"
            return value
        time.sleep(0.05)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------------------------- KV


def test_kv_put_get_flags_cas_keys_and_delete(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    assert c.kv.put("app/config/a", "1") is True
    assert c.kv.put("app/config/b", b"\x00\xffbinary", flags=42) is True
    assert c.kv.put("app/config/sub/c", "3") is True
    assert c.kv.put("app/empty", None) is True

    index, item = c.kv.get("app/config/a")
    assert item is not None
    assert item["Key"] == "app/config/a"
    assert item["Value"] == b"1"
    assert item["Flags"] == 0
    assert int(index) == item["ModifyIndex"] >= item["CreateIndex"] > 0
    assert "Session" not in item

    _, binary = c.kv.get("app/config/b")
    assert binary["Value"] == b"\x00\xffbinary"
    assert binary["Flags"] == 42
    _, empty = c.kv.get("app/empty")
    assert empty["Value"] is None

    # A missing key is None, and its 404 still carries a non-zero index (the library requires the header).
    index_missing, missing = c.kv.get("app/nope")
    assert missing is None
    assert int(index_missing) > 0

    index_tree, tree = c.kv.get("app/config/", recurse=True)
    assert [entry["Key"] for entry in tree] == ["app/config/a", "app/config/b", "app/config/sub/c"]
    assert int(index_tree) == max(entry["ModifyIndex"] for entry in tree)
    assert tree[2]["Value"] == b"3"

    _, keys = c.kv.get("app/", keys=True)
    assert keys == ["app/config/a", "app/config/b", "app/config/sub/c", "app/empty"]
    _, shallow = c.kv.get("app/config/", keys=True, separator="/")
    assert shallow == ["app/config/a", "app/config/b", "app/config/sub/"]

    # Check-and-set: 0 means "only if absent"; a stale index loses.
    modify = item["ModifyIndex"]
    assert c.kv.put("app/config/a", "x", cas=0) is False
    assert c.kv.put("app/config/new", "n", cas=0) is True
    assert c.kv.put("app/config/a", "2", cas=modify) is True
    assert c.kv.put("app/config/a", "3", cas=modify) is False
    _, item = c.kv.get("app/config/a")
    assert item["Value"] == b"2"
    assert item["ModifyIndex"] > modify

    # Delete with cas, then a whole tree.
    assert c.kv.delete("app/config/a", cas=modify) is False
    assert c.kv.delete("app/config/a", cas=item["ModifyIndex"]) is True
    assert c.kv.get("app/config/a")[1] is None
    assert c.kv.delete("app/config/", recurse=True) is True
    assert c.kv.get("app/config/", recurse=True)[1] is None
    _, rest = c.kv.get("app/", keys=True)
    assert rest == ["app/empty"]
    assert c.kv.delete("app/empty") is True

    # Values above the 512 KiB limit: Consul's 413, which the library raises as ClientError.
    with pytest.raises(ClientError, match=r"^413 Request body\(524289 bytes\) too large, max size: 524288 bytes"):
        c.kv.put("app/big", "x" * (512 * 1024 + 1))
    assert c.kv.put("app/big", "x" * (512 * 1024)) is True
    # Malformed query values surface as Consul's errors.
    with pytest.raises(consul.ConsulException, match=r'^500 strconv\.ParseUint: parsing "-1": invalid syntax'):
        c.kv.put("app/big", "y", flags=-1)
    with pytest.raises(consul.ConsulException, match=r"^400 Invalid wait time"):
        c.kv.get("app/big", index=1, wait="soon")


def test_kv_consistency_modes_datacenter_and_token(dev_agent: AgentProcess) -> None:
    assert client(dev_agent).kv.put("mode", "v") is True
    for mode in ("consistent", "stale"):
        index, item = client(dev_agent, consistency=mode).kv.get("mode")
        assert item["Value"] == b"v"
        assert int(index) > 0
    # An explicit dc and a token (ACLs are off, so it is accepted and ignored) change nothing.
    named = client(dev_agent, dc="dc1", token="00000000-0000-0000-0000-000000000001")
    assert named.kv.get("mode")[1]["Value"] == b"v"
    assert named.kv.put("mode", "w") is True
    with pytest.raises(consul.ConsulException, match="No path to datacenter"):
        client(dev_agent, dc="elsewhere").kv.get("mode")


def test_kv_blocking_get_returns_after_a_concurrent_put(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    assert c.kv.put("watched", "before") is True
    index, _ = c.kv.get("watched")

    # Nothing changes: the query waits out its wait time and answers with the same index.
    started = time.monotonic()
    same_index, same = c.kv.get("watched", index=index, wait="300ms")
    assert time.monotonic() - started >= 0.29
    assert same_index == index
    assert same["Value"] == b"before"

    writer = threading.Timer(0.3, lambda: client(dev_agent).kv.put("watched", "after"))
    writer.start()
    try:
        started = time.monotonic()
        new_index, item = c.kv.get("watched", index=index, wait="10s")
        elapsed = time.monotonic() - started
    finally:
        writer.join()
    assert 0.25 <= elapsed < 5
    assert int(new_index) > int(index)
    assert item["Value"] == b"after"

    # A blocking recurse on a prefix wakes on a delete below it.
    tree_index, _ = c.kv.get("watched", recurse=True)
    deleter = threading.Timer(0.2, lambda: client(dev_agent).kv.delete("watched"))
    deleter.start()
    try:
        woke_index, tree = c.kv.get("watched", recurse=True, index=tree_index, wait="10s")
    finally:
        deleter.join()
    assert int(woke_index) > int(tree_index)
    assert tree is None


# ------------------------------------------------------------------------------------------ agent


def test_agent_self_members_and_service_with_ttl_check(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    me = c.agent.self()
    assert me["Config"]["NodeName"] == node_name(dev_agent)
    assert me["Config"]["Datacenter"] == "dc1"
    assert me["Member"]["Addr"] == dev_agent.address

    members = c.agent.members()
    assert [(m["Name"], m["Addr"], m["Status"]) for m in members] == [(node_name(dev_agent), dev_agent.address, 1)]
    assert c.agent.members(wan=True)[0]["Name"].startswith(node_name(dev_agent))

    assert c.agent.service.register("web", service_id="web1", address="10.0.0.5", port=8080, tags=["v1", "blue"],
                                    meta={"team": "core"}, check=consul.Check.ttl("30s")) is True
    services = c.agent.services()
    web = services["web1"]
    assert (web["ID"], web["Service"], web["Address"], web["Port"]) == ("web1", "web", "10.0.0.5", 8080)
    assert web["Tags"] == ["v1", "blue"]
    assert web["Meta"] == {"team": "core"}
    assert c.agent.services(filter_expr='Service == "web"').keys() == {"web1"}
    assert c.agent.service_definition("web1")["Service"] == "web"

    check = c.agent.checks()["service:web1"]
    assert (check["Status"], check["ServiceID"], check["Name"]) == ("critical", "web1", "Service 'web' check")

    for call, status in ((c.agent.check.ttl_pass, "passing"), (c.agent.check.ttl_warn, "warning"),
                         (c.agent.check.ttl_fail, "critical"), (c.agent.check.ttl_pass, "passing")):
        assert call("service:web1", f"now {status}") is True
        check = c.agent.checks()["service:web1"]
        assert (check["Status"], check["Output"]) == (status, f"now {status}")
    # Unknown check: Consul answers 404, which the library reports as False.
    assert c.agent.check.ttl_pass("service:nope") is False

    # The passing TTL check reaches the catalog through anti-entropy.
    wait_for(lambda: c.health.service("web", passing=True)[1])

    # Nested objects are passed through as given: a lower-case connect block still renders as Consul's.
    assert c.agent.service.register("native", service_id="native1", port=9000, connect={"native": True}) is True
    assert c.agent.services()["native1"]["Connect"] == {"Native": True}
    wait_for(lambda: [i["ServiceConnect"] for i in c.catalog.service("native")[1]] == [{"Native": True}])
    assert c.agent.service.deregister("native1") is True

    # The deprecated top-level ttl= argument sends a lower-case "check" object.
    assert c.agent.service.register("old", service_id="old1", ttl="10s") is True
    assert c.agent.checks()["service:old1"]["Status"] == "critical"

    assert c.agent.service.deregister("web1") is True
    assert c.agent.service.deregister("old1") is True
    assert c.agent.services().keys().isdisjoint({"web1", "old1"})
    assert c.agent.checks().keys().isdisjoint({"service:web1", "service:old1"})
    wait_for(lambda: not c.catalog.service("web")[1])


def test_agent_service_with_http_and_tcp_checks(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    http_check = consul.Check.http(f"{dev_agent.http}/v1/status/leader", "1s", timeout="2s",
                                   header={"X-Probe": ["interop"]})
    tcp_check = consul.Check.tcp(dev_agent.address, 8500, "1s", timeout="1s")
    assert c.agent.service.register("api", service_id="api1", port=8500, check=http_check,
                                    extra_checks=[tcp_check]) is True
    checks = c.agent.checks()
    assert checks["service:api1:1"]["Type"] == "http"
    assert checks["service:api1:2"]["Type"] == "tcp"

    def both_passing() -> bool:
        found = c.agent.checks()
        return all(found[f"service:api1:{n}"]["Status"] == "passing" for n in (1, 2))

    wait_for(both_passing)
    assert "HTTP GET" in c.agent.checks()["service:api1:1"]["Output"]
    assert "TCP connect" in c.agent.checks()["service:api1:2"]["Output"]

    # replace-existing-checks: re-registering with one check drops the other two.
    assert c.agent.service.register("api", service_id="api1", port=8500, check=consul.Check.ttl("30s"),
                                    replace_existing_checks=True) is True
    assert [cid for cid in c.agent.checks() if cid.startswith("service:api1")] == ["service:api1"]
    assert c.agent.service.deregister("api1") is True
    assert c.agent.checks() == {}


def test_agent_check_register_deregister_and_maintenance(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    assert c.agent.check.register("disk", check=consul.Check.ttl("30s"), check_id="disk-ttl",
                                  notes="free space") is True
    disk = c.agent.checks()["disk-ttl"]
    assert (disk["Name"], disk["Notes"], disk["Status"], disk["ServiceID"]) == ("disk", "free space", "critical", "")
    assert c.agent.check.ttl_warn("disk-ttl", "80%") is True
    assert c.agent.checks()["disk-ttl"]["Status"] == "warning"

    assert c.agent.service.register("db", service_id="db1", port=5432) is True
    assert c.agent.check.register("db alive", check=consul.Check.tcp(dev_agent.address, 8500, "1s"),
                                  check_id="db-tcp", service_id="db1") is True
    assert c.agent.checks()["db-tcp"]["ServiceID"] == "db1"
    assert c.agent.check.register("legacy", check_id="legacy-ttl", ttl="15s") is True
    assert c.agent.checks()["legacy-ttl"]["Type"] == "ttl"

    # Node maintenance (enable=True / enable=False as the library sends Python booleans).
    assert c.agent.maintenance(True, "patching") is True
    node_maint = c.agent.checks()["_node_maintenance"]
    assert (node_maint["Status"], node_maint["Notes"]) == ("critical", "patching")
    assert c.agent.maintenance(False) is True
    assert "_node_maintenance" not in c.agent.checks()
    assert c.agent.maintenance(True) is True
    assert c.agent.checks()["_node_maintenance"]["Notes"] == (
        "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.")
    assert c.agent.checks(filter_expr='Name == "Node Maintenance Mode"').keys() == {"_node_maintenance"}
    assert c.agent.maintenance(False) is True

    # Service maintenance.
    assert c.agent.service.maintenance("db1", True, "migrating") is True
    svc_maint = c.agent.checks()["_service_maintenance:db1"]
    assert (svc_maint["Name"], svc_maint["ServiceID"], svc_maint["Notes"]) == (
        "Service Maintenance Mode", "db1", "migrating")
    wait_for(lambda: any(ch["CheckID"] == "_service_maintenance:db1" for ch in c.health.checks("db")[1]))
    assert c.agent.service.maintenance("db1", False) is True
    assert "_service_maintenance:db1" not in c.agent.checks()
    # Maintenance of an unknown service: Consul answers 404, the library returns False.
    assert c.agent.service.maintenance("ghost", True) is False

    for check_id in ("disk-ttl", "db-tcp", "legacy-ttl"):
        assert c.agent.check.deregister(check_id) is True
    assert c.agent.checks() == {}
    # Unknown check: 404 "Unknown check ID …", which the library reports as False.
    assert c.agent.check.deregister("never-registered") is False
    assert c.agent.service.deregister("db1") is True


# ---------------------------------------------------------------------------------- catalog, health


def _register_redis(c: consul.Consul) -> None:
    assert c.catalog.register(
        "ext-a", "10.1.0.1",
        service={"service": "redis", "id": "redis-a", "port": 6379, "tags": ["primary", "v7"]},
        check={"name": "redis alive", "checkid": "redis-a-alive", "serviceid": "redis-a", "status": "passing"},
    ) is True
    assert c.catalog.register(
        "ext-b", "10.1.0.2",
        service={"service": "redis", "id": "redis-b", "port": 6380, "tags": ["replica", "v7"]},
        check={"name": "redis alive", "checkid": "redis-b-alive", "serviceid": "redis-b", "status": "critical",
               "output": "connection refused"},
    ) is True
    assert c.catalog.register("ext-a", "10.1.0.1", check={"name": "node ok", "checkid": "ext-a-ok",
                                                          "status": "passing"}) is True


def test_catalog_register_query_and_deregister(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    assert c.catalog.datacenters() == ["dc1"]
    _register_redis(c)

    index, nodes = c.catalog.nodes()
    assert int(index) > 0
    by_name = {n["Node"]: n for n in nodes}
    assert by_name.keys() == {node_name(dev_agent), "ext-a", "ext-b"}
    assert by_name["ext-a"]["Address"] == "10.1.0.1"
    assert by_name[node_name(dev_agent)]["Address"] == dev_agent.address
    assert [n["Node"] for n in c.catalog.nodes(filter_expr='Address == "10.1.0.2"')[1]] == ["ext-b"]

    _, services = c.catalog.services()
    assert services["consul"] == []
    assert sorted(services["redis"]) == ["primary", "replica", "v7"]

    _, instances = c.catalog.service("redis")
    assert sorted((i["Node"], i["ServiceID"], i["ServicePort"], i["Address"]) for i in instances) == [
        ("ext-a", "redis-a", 6379, "10.1.0.1"), ("ext-b", "redis-b", 6380, "10.1.0.2")]
    assert [i["ServiceID"] for i in c.catalog.service("redis", tag="replica")[1]] == ["redis-b"]
    assert c.catalog.service("redis", tag="nope")[1] == []
    assert c.catalog.service("no-such-service")[1] == []

    node_index, node = c.catalog.node("ext-a")
    assert int(node_index) > 0
    assert node["Node"]["Address"] == "10.1.0.1"
    assert node["Services"]["redis-a"]["Tags"] == ["primary", "v7"]
    assert c.catalog.node("no-such-node")[1] is None

    assert c.catalog.deregister("ext-a", check_id="ext-a-ok") is True
    assert {ch["CheckID"] for ch in c.health.node("ext-a")[1]} == {"redis-a-alive"}
    assert c.catalog.deregister("ext-a", service_id="redis-a") is True
    assert [i["ServiceID"] for i in c.catalog.service("redis")[1]] == ["redis-b"]
    assert c.catalog.deregister("ext-b") is True
    assert c.catalog.deregister("ext-a") is True
    assert c.catalog.service("redis")[1] == []
    assert {n["Node"] for n in c.catalog.nodes()[1]} == {node_name(dev_agent)}


def test_health_service_checks_node_and_state(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    _register_redis(c)

    index, entries = c.health.service("redis")
    assert int(index) > 0
    assert sorted(e["Service"]["ID"] for e in entries) == ["redis-a", "redis-b"]
    a = next(e for e in entries if e["Service"]["ID"] == "redis-a")
    assert a["Node"]["Node"] == "ext-a"
    assert {ch["CheckID"] for ch in a["Checks"]} == {"redis-a-alive", "ext-a-ok"}

    assert [e["Service"]["ID"] for e in c.health.service("redis", passing=True)[1]] == ["redis-a"]
    assert [e["Service"]["ID"] for e in c.health.service("redis", tag="replica")[1]] == ["redis-b"]
    assert [e["Service"]["ID"] for e in c.health.service("redis", tag=["v7", "primary"])[1]] == ["redis-a"]
    assert c.health.service("redis", tag="replica", passing=True)[1] == []

    _, checks = c.health.checks("redis")
    assert sorted((ch["CheckID"], ch["Status"]) for ch in checks) == [
        ("redis-a-alive", "passing"), ("redis-b-alive", "critical")]
    assert next(ch for ch in checks if ch["CheckID"] == "redis-b-alive")["Output"] == "connection refused"

    _, node_checks = c.health.node("ext-a")
    assert sorted(ch["CheckID"] for ch in node_checks) == ["ext-a-ok", "redis-a-alive"]
    own = c.health.node(node_name(dev_agent))[1]
    assert [(ch["CheckID"], ch["Status"]) for ch in own] == [("serfHealth", "passing")]

    assert [ch["CheckID"] for ch in c.health.state("critical")[1]] == ["redis-b-alive"]
    passing = {ch["CheckID"] for ch in c.health.state("passing")[1]}
    assert passing == {"serfHealth", "redis-a-alive", "ext-a-ok"}
    assert {ch["CheckID"] for ch in c.health.state("any")[1]} == passing | {"redis-b-alive"}
    assert c.health.state("warning")[1] == []
    # py-consul also allows "unknown"; Consul does not validate the state and lists nothing for it.
    unknown_index, unknown = c.health.state("unknown")
    assert (unknown, int(unknown_index) > 0) == ([], True)

    # A blocking health query wakes when the critical instance recovers.
    index, _ = c.health.service("redis", passing=True)
    fixer = threading.Timer(0.2, lambda: client(dev_agent).catalog.register(
        "ext-b", "10.1.0.2", check={"name": "redis alive", "checkid": "redis-b-alive", "serviceid": "redis-b",
                                    "status": "passing"}))
    fixer.start()
    try:
        new_index, healthy = c.health.service("redis", passing=True, index=index, wait="10s")
    finally:
        fixer.join()
    assert int(new_index) > int(index)
    assert sorted(e["Service"]["ID"] for e in healthy) == ["redis-a", "redis-b"]


# ----------------------------------------------------------------------------------------- session


def test_session_lifecycle(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    sid = c.session.create(name="worker", ttl=20, lock_delay=0)
    index, info = c.session.info(sid)
    assert int(index) > 0
    assert (info["ID"], info["Name"], info["Node"], info["Behavior"], info["TTL"], info["LockDelay"]) == (
        sid, "worker", node_name(dev_agent), "release", "20s", 0)
    assert info["NodeChecks"] == ["serfHealth"]

    other = c.session.create(behavior="delete", checks=[])
    _, listed = c.session.list()
    assert {s["ID"] for s in listed} == {sid, other}
    _, on_node = c.session.node(node_name(dev_agent))
    assert {s["ID"] for s in on_node} == {sid, other}
    assert c.session.node("no-such-node")[1] == []

    renewed = c.session.renew(sid)
    assert (renewed["ID"], renewed["TTL"]) == (sid, "20s")
    with pytest.raises(consul.NotFound):
        c.session.renew("00000000-0000-0000-0000-000000000000")

    assert c.session.destroy(other) is True
    assert c.session.info(other)[1] is None
    assert c.session.destroy(sid) is True
    assert c.session.list()[1] == []


def test_locks_with_kv_acquire_and_release(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    first = c.session.create(name="first", lock_delay=0)
    second = c.session.create(name="second", lock_delay=0)

    assert c.kv.put("service/leader", "first", acquire=first) is True
    assert c.kv.put("service/leader", "second", acquire=second) is False
    _, held = c.kv.get("service/leader")
    assert (held["Session"], held["Value"], held["LockIndex"]) == (first, b"first", 1)
    # Re-acquiring by the holder updates the value without a new lock index.
    assert c.kv.put("service/leader", "first-again", acquire=first) is True
    assert c.kv.get("service/leader")[1]["LockIndex"] == 1

    assert c.kv.put("service/leader", "x", release=second) is False
    assert c.kv.put("service/leader", "released", release=first) is True
    _, free = c.kv.get("service/leader")
    assert "Session" not in free
    assert free["Value"] == b"released"

    assert c.kv.put("service/leader", "second", acquire=second) is True
    assert c.kv.get("service/leader")[1]["LockIndex"] == 2
    # Destroying a "release" session frees its lock; a "delete" session removes its keys.
    assert c.session.destroy(second) is True
    assert "Session" not in c.kv.get("service/leader")[1]

    doomed = c.session.create(behavior="delete", lock_delay=0)
    assert c.kv.put("service/ephemeral", "here", acquire=doomed) is True
    assert c.session.destroy(doomed) is True
    assert c.kv.get("service/ephemeral")[1] is None

    with pytest.raises(consul.ConsulException, match="invalid session"):
        c.kv.put("service/leader", "z", acquire="00000000-0000-0000-0000-000000000000")
    assert c.session.destroy(first) is True


# ------------------------------------------------------------------------------------------ events


def test_event_fire_list_filters_and_blocking(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    index, events = c.event.list()
    assert (index, events) == ("1", [])

    fired = c.event.fire("deploy", "v1.2.3", node=node_name(dev_agent))
    assert fired["Name"] == "deploy"
    assert base64.b64decode(fired["Payload"]) == b"v1.2.3"
    assert (fired["NodeFilter"], fired["Version"], fired["LTime"]) == (node_name(dev_agent), 1, 0)
    empty = c.event.fire("restart")
    assert empty["Payload"] is None
    # An event for another node is not kept by this agent.
    assert c.event.fire("elsewhere", node="^another-node$")["Name"] == "elsewhere"

    index, events = c.event.list()
    assert [e["ID"] for e in events] == [fired["ID"], empty["ID"]]
    assert events[0]["Payload"] == b"v1.2.3"  # the library decodes Payload
    assert events[1]["Payload"] is None
    assert [e["LTime"] for e in events] == [1, 2]
    digits = empty["ID"].replace("-", "")
    assert int(index) == int(digits[:16], 16) ^ int(digits[16:], 16)
    _, deploys = c.event.list(name="deploy")
    assert [e["ID"] for e in deploys] == [fired["ID"]]

    # Blocking on the index: nothing happens → the wait runs out with the same index; a fire wakes it.
    started = time.monotonic()
    same_index, same = c.event.list(index=index, wait="300ms")
    assert time.monotonic() - started >= 0.29
    assert (same_index, len(same)) == (index, 2)
    firer = threading.Timer(0.3, lambda: client(dev_agent).event.fire("wake", "now"))
    firer.start()
    try:
        started = time.monotonic()
        new_index, woken = c.event.list(index=index, wait="10s")
        elapsed = time.monotonic() - started
    finally:
        firer.join()
    assert 0.25 <= elapsed < 5
    assert new_index != index
    assert [e["Name"] for e in woken] == ["deploy", "restart", "wake"]

    # Consul's errors reach the caller as the library maps them.
    with pytest.raises(consul.ConsulException, match=r"^500 Cannot provide tag filter without service filter$"):
        c.event.fire("bad", tag="v1")
    with pytest.raises(consul.ConsulException, match=r"^500 error broadcasting event: user event exceeds configured "
                                                     r"limit of 512 bytes before encoding$"):
        c.event.fire("big", "x" * 600)
    with pytest.raises(consul.ConsulException, match="No path to datacenter"):
        c.event.fire("remote", dc="dc2")
    assert len(c.event.list()[1]) == 3


# ------------------------------------------------------------------------------------- status, txn


def test_status_leader_and_peers(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    assert c.status.leader() == f"{dev_agent.address}:8300"
    assert c.status.peers() == [f"{dev_agent.address}:8300"]


def test_txn_commits_several_kv_ops_and_rolls_back_on_failure(dev_agent: AgentProcess) -> None:
    c = client(dev_agent)
    result = c.txn.put([
        {"KV": {"Verb": "set", "Key": "txn/a", "Value": b64("1")}},
        {"KV": {"Verb": "set", "Key": "txn/b", "Value": b64("2"), "Flags": 7}},
        {"KV": {"Verb": "get", "Key": "txn/a"}},
    ])
    assert result["Errors"] is None
    assert [r["KV"]["Key"] for r in result["Results"]] == ["txn/a", "txn/b", "txn/a"]
    assert result["Results"][0]["KV"]["Value"] is None
    assert base64.b64decode(result["Results"][2]["KV"]["Value"]) == b"1"
    assert c.kv.get("txn/b")[1]["Flags"] == 7
    b_index = result["Results"][1]["KV"]["ModifyIndex"]

    # One failing op rolls back the whole transaction; the client surfaces Consul's 409 as ClientError.
    with pytest.raises(ClientError) as failed:
        c.txn.put([
            {"KV": {"Verb": "set", "Key": "txn/c", "Value": b64("3")}},
            {"KV": {"Verb": "cas", "Key": "txn/b", "Value": b64("x"), "Index": b_index + 100}},
        ])
    status, _, body = str(failed.value).partition(" ")
    assert status == "409"
    assert json.loads(body) == {"Results": None, "Errors": [
        {"OpIndex": 1, "What": 'failed to set key "txn/b", index is stale'}]}
    assert c.kv.get("txn/c")[1] is None
    assert c.kv.get("txn/b")[1]["Value"] == b"2"

    # A cas with the right index and a delete-tree commit together.
    result = c.txn.put([
        {"KV": {"Verb": "cas", "Key": "txn/b", "Value": b64("3"), "Index": b_index}},
        {"KV": {"Verb": "delete-tree", "Key": "txn/a"}},
    ])
    assert result["Errors"] is None
    assert c.kv.get("txn/", keys=True)[1] == ["txn/b"]

    # An unknown verb fails in the state store like any other op: 409 with its OpIndex.
    with pytest.raises(ClientError, match=r'unknown KV verb \\"bogus\\"'):
        c.txn.put([{"KV": {"Verb": "get", "Key": "txn/b"}}, {"KV": {"Verb": "bogus", "Key": "txn/x"}}])
