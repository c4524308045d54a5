"""Catalog, health and status over HTTP against a real dev agent."""

from __future__ import annotations

import threading
import time

import requests

from tests.agentproc import AgentProcess


def register(agent: AgentProcess, body: dict) -> requests.Response:
    return requests.put(f"{agent.http}/v1/catalog/register", json=body, timeout=5)


def web_node(node: str, address: str, status: str = "passing", port: int = 80, tags: list[str] | None = None
             ) -> dict:
    return {
        "Node": node, "Address": address,
        "Service": {"ID": f"web-{node}", "Service": "web", "Port": port, "Tags": tags or []},
        "Check": {"CheckID": f"web-check-{node}", "Name": "web check", "Status": status,
                  "ServiceID": f"web-{node}"},
    }


def test_dev_agent_leads_and_lists_consul(start_agent) -> None:
    started = time.monotonic()
    agent = start_agent()
    assert time.monotonic() - started < 5
    leader = requests.get(f"{agent.http}/v1/status/leader", timeout=5)
    assert leader.status_code == 200
    assert leader.json() == f"{agent.address}:8300"
    assert requests.get(f"{agent.http}/v1/status/peers", timeout=5).json() == [f"{agent.address}:8300"]
    services = requests.get(f"{agent.http}/v1/catalog/services", timeout=5)
    assert services.json()["consul"] == []
    assert int(services.headers["X-Consul-Index"]) >= 1
    assert services.headers["X-Consul-Knownleader"] == "true"
    assert services.headers["X-Consul-Effective-Consistency"] == "leader"
    nodes = requests.get(f"{agent.http}/v1/catalog/nodes", timeout=5).json()
    assert [n["Node"] for n in nodes] == [agent.node_name]
    assert nodes[0]["TaggedAddresses"]["lan"] == agent.address


def test_register_and_health_filters(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    assert register(dev_agent, web_node("n1", "10.0.0.1", "passing", tags=["v1", "blue"])).json() is True
    assert register(dev_agent, web_node("n2", "10.0.0.2", "warning", tags=["v2"])).json() is True
    assert register(dev_agent, web_node("n3", "10.0.0.3", "critical", tags=["v1"])).json() is True

    def names(params: str) -> list[str]:
        reply = requests.get(f"{base}/v1/health/service/web?{params}", timeout=5)
        assert reply.status_code == 200, reply.text
        return sorted(entry["Node"]["Node"] for entry in reply.json())

    assert names("") == ["n1", "n2", "n3"]
    assert names("passing") == ["n1"]
    assert names("passing=true") == ["n1"]
    assert names("passing=1") == ["n1"]
    assert names("passing=false") == ["n1", "n2", "n3"]
    assert names("tag=v1") == ["n1", "n3"]
    assert names("tag=v1&tag=blue") == ["n1"]
    assert names("filter=Service.Port%20%3D%3D%2080") == ["n1", "n2", "n3"]
    bad = requests.get(f"{base}/v1/health/service/web?passing=maybe", timeout=5)
    assert (bad.status_code, bad.text) == (400, "Invalid value for ?passing")

    catalog = requests.get(f"{base}/v1/catalog/service/web?tag=v2", timeout=5).json()
    assert [(c["Node"], c["ServiceID"], c["ServicePort"], c["ServiceTags"]) for c in catalog] == [
        ("n2", "web-n2", 80, ["v2"])]
    services = requests.get(f"{base}/v1/catalog/services", timeout=5).json()
    assert sorted(services["web"]) == ["blue", "v1", "v2"]
    state = requests.get(f"{base}/v1/health/state/critical", timeout=5).json()
    assert [c["CheckID"] for c in state] == ["web-check-n3"]
    node = requests.get(f"{base}/v1/catalog/node/n1", timeout=5).json()
    assert node["Node"]["Address"] == "10.0.0.1" and list(node["Services"]) == ["web-n1"]
    missing = requests.get(f"{base}/v1/catalog/node/nope", timeout=5)
    assert (missing.status_code, missing.text.strip()) == (200, "null")
    listing = requests.get(f"{base}/v1/catalog/node-services/n1", timeout=5).json()
    assert [s["ID"] for s in listing["Services"]] == ["web-n1"]
    unknown = requests.get(f"{base}/v1/catalog/node-services/nope", timeout=5)
    assert (unknown.status_code, unknown.json()) == (200, {"Node": None, "Services": None})

    assert requests.put(f"{base}/v1/catalog/deregister", json={"Node": "n3"}, timeout=5).json() is True
    assert names("") == ["n1", "n2"]


def test_blocking_health_query_wakes_on_change(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    register(dev_agent, web_node("n1", "10.0.0.1", "critical"))
    first = requests.get(f"{base}/v1/health/service/web?passing", timeout=5)
    index = int(first.headers["X-Consul-Index"])
    assert first.json() == []
    result: dict[str, object] = {}

    def block() -> None:
        began = time.monotonic()
        reply = requests.get(f"{base}/v1/health/service/web?passing&index={index}&wait=20s", timeout=30)
        result["elapsed"] = time.monotonic() - began
        result["reply"] = reply

    waiter = threading.Thread(target=block)
    waiter.start()
    time.sleep(0.5)
    register(dev_agent, {"Node": "other", "Address": "10.0.0.9"})
    time.sleep(0.5)
    assert waiter.is_alive(), "a change to another node must not end the wait"
    register(dev_agent, web_node("n1", "10.0.0.1", "passing"))
    waiter.join(10)
    reply = result["reply"]
    assert isinstance(reply, requests.Response)
    assert int(reply.headers["X-Consul-Index"]) > index
    assert [e["Node"]["Node"] for e in reply.json()] == ["n1"]


def test_wait_times_out_with_same_index(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    first = requests.get(f"{base}/v1/catalog/nodes", timeout=5)
    index = first.headers["X-Consul-Index"]
    began = time.monotonic()
    reply = requests.get(f"{base}/v1/catalog/nodes?index={index}&wait=300ms", timeout=5)
    elapsed = time.monotonic() - began
    assert 0.3 <= elapsed < 2
    assert reply.headers["X-Consul-Index"] == index


def test_routing_errors(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    wrong = requests.post(f"{base}/v1/catalog/nodes", timeout=5)
    assert (wrong.status_code, wrong.text) == (405, "method POST not allowed")
    assert wrong.headers["Allow"] == "OPTIONS,GET"
    unknown = requests.get(f"{base}/v1/nope", timeout=5)
    assert (unknown.status_code, unknown.text) == (404, "Invalid URL path: not a recognized HTTP API endpoint")
    stale = requests.get(f"{base}/v1/catalog/nodes?stale&consistent", timeout=5)
    assert (stale.status_code, stale.text) == (400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
    dc = requests.get(f"{base}/v1/catalog/nodes?dc=mars", timeout=5)
    assert (dc.status_code, dc.text) == (500, "No path to datacenter")
    for bad in ("-1", "abc", "18446744073709551616"):
        reply = requests.get(f"{base}/v1/catalog/nodes?index={bad}", timeout=5)
        assert (reply.status_code, reply.text) == (400, "Invalid index")
    reply = requests.get(f"{base}/v1/catalog/nodes?wait=10", timeout=5)
    assert (reply.status_code, reply.text) == (400, "Invalid wait time")
    decode = requests.put(f"{base}/v1/catalog/register", data=b'{"Node":"x","Bogus":1}', timeout=5)
    assert (decode.status_code, decode.text) == (400, 'Request decode failed: json: unknown field "Bogus"')
    stale_ok = requests.get(f"{base}/v1/catalog/nodes?stale", timeout=5)
    assert stale_ok.headers["X-Consul-Effective-Consistency"] == "stale"
    assert "Traceback" not in dev_agent.log()
