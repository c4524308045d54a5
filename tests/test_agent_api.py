"""/v1/agent/* against real dev agents: registration as Spring and py-consul send it, TTL heartbeats, local health,
maintenance, hash-blocking, reload, anti-entropy, leave, and bad input that must change nothing."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.agentproc import AgentProcess, wait_until


def put(agent: AgentProcess, path: str, body: Any = None, **params: str) -> requests.Response:
    data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    return requests.put(f"{agent.http}{path}", data=data, params=params, timeout=10)


def get(agent: AgentProcess, path: str, **kw: Any) -> requests.Response:
    return requests.get(f"{agent.http}{path}", timeout=10, **kw)


def passing(agent: AgentProcess, service: str) -> list[str]:
    return sorted(e["Service"]["ID"] for e in get(agent, f"/v1/health/service/{service}?passing").json())


SPRING_BODY = {
    "ID": "web-8080", "Name": "web", "Tags": [], "Address": None, "Meta": {"secure": "false"}, "Port": 8080,
    "EnableTagOverride": None, "Checks": None,
    "Check": {"Interval": None, "Timeout": None, "HTTP": None, "Header": {}, "TLSSkipVerify": None, "TTL": "1s",
              "DeregisterCriticalServiceAfter": None, "Args": None, "DockerContainerID": None, "Shell": None,
              "Method": None, "TCP": None, "Status": None, "GRPC": None, "GRPCUseTLS": None},
}


def test_spring_registration_and_ttl_heartbeat(dev_agent: AgentProcess) -> None:
    reply = put(dev_agent, "/v1/agent/service/register", SPRING_BODY)
    assert (reply.status_code, reply.text) == (200, "")
    assert passing(dev_agent, "web") == []
    assert [e["Service"]["ID"] for e in get(dev_agent, "/v1/health/service/web?passing=false").json()] == ["web-8080"]
    checks = get(dev_agent, "/v1/agent/checks").json()
    assert list(checks) == ["service:web-8080"]
    assert checks["service:web-8080"]["Name"] == "Service 'web' check"
    assert checks["service:web-8080"]["Status"] == "critical" and checks["service:web-8080"]["Type"] == "ttl"

    reply = put(dev_agent, "/v1/agent/check/pass/service:web-8080", note="alive")
    assert (reply.status_code, reply.text) == (200, "")
    assert passing(dev_agent, "web") == ["web-8080"]
    catalog_check = get(dev_agent, "/v1/health/checks/web").json()[0]
    assert (catalog_check["Status"], catalog_check["Output"]) == ("passing", "alive")

    wait_until(lambda: passing(dev_agent, "web") == [], timeout=4)
    expired = get(dev_agent, "/v1/health/checks/web").json()[0]
    assert expired["Output"] == "TTL expired (last output before timeout follows): alive"

    assert put(dev_agent, "/v1/agent/service/deregister/web-8080").status_code == 200
    assert get(dev_agent, "/v1/agent/services").json() == {}
    assert "web" not in get(dev_agent, "/v1/catalog/services").json()
    assert get(dev_agent, "/v1/health/checks/web").json() == []


def test_py_consul_lower_case_body_and_check_numbering(dev_agent: AgentProcess) -> None:
    body = {"name": "api", "id": "api-1", "address": "10.0.0.7", "port": 9000, "tags": ["v1"],
            "meta": {"team": "a"}, "enabletagoverride": False, "weights": {"passing": 5, "warning": 2},
            "tagged_addresses": None, "connect": None,
            "checks": [{"ttl": "30s"}, {"tcp": "10.0.0.7:9000", "interval": "10s", "timeout": "1s",
                                        "DeregisterCriticalServiceAfter": "90m"}]}
    assert put(dev_agent, "/v1/agent/service/register", body).status_code == 200
    services = get(dev_agent, "/v1/agent/services").json()
    assert services == {"api-1": {
        "ID": "api-1", "Service": "api", "Tags": ["v1"], "Meta": {"team": "a"}, "Port": 9000, "Address": "10.0.0.7",
        "TaggedAddresses": {"lan_ipv4": {"Address": "10.0.0.7", "Port": 9000},
                            "wan_ipv4": {"Address": "10.0.0.7", "Port": 9000}},
        "Weights": {"Passing": 5, "Warning": 2}, "EnableTagOverride": False, "Datacenter": "dc1"}}
    checks = get(dev_agent, "/v1/agent/checks").json()
    assert sorted(checks) == ["service:api-1:1", "service:api-1:2"]
    tcp = checks["service:api-1:2"]
    assert (tcp["Type"], tcp["Interval"], tcp["Timeout"], tcp["ServiceTags"]) == ("tcp", "10s", "1s", ["v1"])
    assert put(dev_agent, "/v1/agent/service/register", {"name": "other", "port": 1}).status_code == 200
    assert list(get(dev_agent, '/v1/agent/services?filter=Service == "api"').json()) == ["api-1"]
    assert list(get(dev_agent, '/v1/agent/services?filter="v1" in Tags').json()) == ["api-1"]
    assert list(get(dev_agent, '/v1/agent/checks?filter=Type == "tcp"').json()) == ["service:api-1:2"]

    # Re-registering keeps the status of a check that still exists; without the flag old checks stay.
    assert put(dev_agent, "/v1/agent/check/pass/service:api-1:1").status_code == 200
    assert put(dev_agent, "/v1/agent/service/register", body).status_code == 200
    assert get(dev_agent, "/v1/agent/checks").json()["service:api-1:1"]["Status"] == "passing"
    single = {**body, "checks": [{"ttl": "30s"}]}
    assert put(dev_agent, "/v1/agent/service/register", single).status_code == 200
    assert sorted(get(dev_agent, "/v1/agent/checks").json()) == ["service:api-1", "service:api-1:1",
                                                                 "service:api-1:2"]
    reply = requests.put(f"{dev_agent.http}/v1/agent/service/register?replace-existing-checks", json=single,
                         timeout=5)
    assert reply.status_code == 200
    assert sorted(get(dev_agent, "/v1/agent/checks").json()) == ["service:api-1"]
    catalog = get(dev_agent, f"/v1/health/node/{dev_agent.node_name}").json()
    assert sorted(c["CheckID"] for c in catalog) == ["serfHealth", "service:api-1"]


def test_check_register_and_deregister(dev_agent: AgentProcess) -> None:
    assert put(dev_agent, "/v1/agent/service/register", {"Name": "db", "Tags": ["primary"]}).status_code == 200
    assert put(dev_agent, "/v1/agent/check/register",
               {"name": "disk", "ttl": "1h", "serviceid": "db", "notes": "n", "status": "warning"}).status_code == 200
    assert put(dev_agent, "/v1/agent/check/register", {"Name": "mem", "ID": "mem-1", "TTL": "1h"}).status_code == 200
    checks = get(dev_agent, "/v1/agent/checks").json()
    disk = checks["disk"]
    assert (disk["ServiceID"], disk["ServiceName"], disk["ServiceTags"], disk["Status"]) == (
        "db", "db", ["primary"], "warning")
    assert (disk["Interval"], disk["Timeout"], disk["Type"], disk["Notes"]) == ("0s", "0s", "ttl", "n")
    assert checks["mem-1"]["ServiceID"] == "" and checks["mem-1"]["Status"] == "critical"
    reply = requests.put(f"{dev_agent.http}/v1/agent/check/update/disk",
                         json={"Status": "passing", "Output": "x" * 5000}, timeout=5)
    assert reply.status_code == 200
    output = get(dev_agent, "/v1/agent/checks").json()["disk"]["Output"]
    # Truncated by the endpoint, then again by the TTL check (both at 4096), as in Consul.
    assert output == "x" * 4096 + " ... (captured 4096 of 4130 bytes)"
    catalog = {c["CheckID"]: c for c in get(dev_agent, f"/v1/health/node/{dev_agent.node_name}").json()}
    assert catalog["disk"]["Status"] == "passing" and catalog["mem-1"]["Status"] == "critical"
    assert put(dev_agent, "/v1/agent/check/deregister/mem-1").status_code == 200
    catalog = {c["CheckID"] for c in get(dev_agent, f"/v1/health/node/{dev_agent.node_name}").json()}
    assert catalog == {"serfHealth", "disk"}


def test_service_content_hash_and_hash_blocking(dev_agent: AgentProcess) -> None:
    assert put(dev_agent, "/v1/agent/service/register", {"Name": "web", "Port": 80}).status_code == 200
    first = get(dev_agent, "/v1/agent/service/web")
    body = first.json()
    assert body["ID"] == "web" and body["ContentHash"] == first.headers["X-Consul-Contenthash"]
    assert "X-Consul-Index" not in first.headers
    started = time.monotonic()
    same = get(dev_agent, f"/v1/agent/service/web?hash={body['ContentHash']}&wait=400ms")
    assert 0.35 < time.monotonic() - started < 3
    assert same.json()["ContentHash"] == body["ContentHash"]

    def change() -> None:
        time.sleep(0.3)
        put(dev_agent, "/v1/agent/service/register", {"Name": "web", "Port": 81})

    changer = threading.Thread(target=change)
    changer.start()
    started = time.monotonic()
    changed = get(dev_agent, f"/v1/agent/service/web?hash={body['ContentHash']}&wait=10s")
    changer.join()
    assert time.monotonic() - started < 5
    assert changed.json()["Port"] == 81 and changed.json()["ContentHash"] != body["ContentHash"]


def test_service_and_node_maintenance(dev_agent: AgentProcess) -> None:
    ok = {"Name": "web", "Check": {"TTL": "1h", "Status": "passing"}}
    assert put(dev_agent, "/v1/agent/service/register", ok).status_code == 200
    assert passing(dev_agent, "web") == ["web"]
    reply = put(dev_agent, "/v1/agent/service/maintenance/web", enable="true", reason="deploying")
    assert (reply.status_code, reply.text) == (200, "")
    maint = [c for c in get(dev_agent, "/v1/health/checks/web").json() if c["Name"] == "Service Maintenance Mode"]
    assert [(c["CheckID"], c["Status"], c["Notes"], c["ServiceID"]) for c in maint] == [
        ("_service_maintenance:web", "critical", "deploying", "web")]
    assert passing(dev_agent, "web") == []
    assert put(dev_agent, "/v1/agent/service/maintenance/web", enable="false").status_code == 200
    assert passing(dev_agent, "web") == ["web"]
    assert put(dev_agent, "/v1/agent/service/maintenance/web", enable="True").status_code == 200
    notes = get(dev_agent, "/v1/agent/checks").json()["_service_maintenance:web"]["Notes"]
    assert notes == ("Maintenance mode is enabled for this service, but no reason was provided. This is a default "
                     "message.")
    assert put(dev_agent, "/v1/agent/service/maintenance/web", enable="0").status_code == 200

    assert put(dev_agent, "/v1/agent/maintenance", enable="1").status_code == 200
    node_checks = {c["CheckID"]: c for c in get(dev_agent, f"/v1/health/node/{dev_agent.node_name}").json()}
    node_maint = node_checks["_node_maintenance"]
    assert (node_maint["Name"], node_maint["Status"]) == ("Node Maintenance Mode", "critical")
    assert node_maint["Notes"] == ("Maintenance mode is enabled for this node, but no reason was provided. This is "
                                   "a default message.")
    assert passing(dev_agent, "web") == []
    health = get(dev_agent, "/v1/agent/health/service/name/web")
    assert (health.status_code, health.headers["X-Consul-Reason"]) == (503, "maintenance")
    assert put(dev_agent, "/v1/agent/maintenance", enable="false").status_code == 200
    assert "_node_maintenance" not in get(dev_agent, "/v1/agent/checks").json()
    assert passing(dev_agent, "web") == ["web"]


def test_local_health_status_codes(dev_agent: AgentProcess) -> None:
    for sid, name, status in (("a1", "web", "passing"), ("b1", "web", "warning"), ("c1", "db", "critical"),
                              ("d1", "cache", "passing")):
        body = {"ID": sid, "Name": name, "Check": {"TTL": "1h", "Status": status}}
        assert put(dev_agent, "/v1/agent/service/register", body).status_code == 200

    a1 = get(dev_agent, "/v1/agent/health/service/id/a1")
    assert (a1.status_code, a1.headers["X-Consul-Reason"]) == (200, "passing")
    info = a1.json()
    assert info["AggregatedStatus"] == "passing" and info["Service"]["ID"] == "a1"
    assert [c["CheckID"] for c in info["Checks"]] == ["service:a1"]
    b1 = get(dev_agent, "/v1/agent/health/service/id/b1?format=text")
    assert (b1.status_code, b1.text) == (429, "warning")
    c1 = get(dev_agent, "/v1/agent/health/service/id/c1", headers={"Accept": "text/plain"})
    assert (c1.status_code, c1.text) == (503, "critical")

    web = get(dev_agent, "/v1/agent/health/service/name/web")
    assert (web.status_code, web.headers["X-Consul-Reason"]) == (429, "warning")
    assert sorted(item["Service"]["ID"] for item in web.json()) == ["a1", "b1"]
    assert get(dev_agent, "/v1/agent/health/service/name/cache?format=text").text == "passing"

    missing = get(dev_agent, "/v1/agent/health/service/name/nope")
    assert (missing.status_code, missing.json(), missing.headers["X-Consul-Reason"]) == (
        404, [], "ServiceName nope Not Found")
    assert get(dev_agent, "/v1/agent/health/service/name/nope?format=text").text == "ServiceName nope Not Found"
    missing = get(dev_agent, "/v1/agent/health/service/id/nope")
    assert (missing.status_code, missing.json()) == (404, {"AggregatedStatus": "critical", "Service": None,
                                                           "Checks": None})
    assert get(dev_agent, "/v1/agent/health/service/id/nope?format=text").text == "ServiceId nope not found"


def test_self_and_members(dev_agent: AgentProcess) -> None:
    me = get(dev_agent, "/v1/agent/self").json()
    node = dev_agent.node_name
    assert me["Config"]["NodeName"] == node and me["Config"]["Datacenter"] == "dc1"
    assert me["Config"]["Server"] is True and me["Config"]["Version"]
    assert me["Member"]["Name"] == node and me["Member"]["Addr"] == dev_agent.address
    assert me["Member"]["Tags"]["role"] == "consul" and me["Member"]["Tags"]["id"] == me["Config"]["NodeID"]
    assert me["Meta"]["consul-network-segment"] == ""
    assert all(isinstance(v, str) for section in me["Stats"].values() for v in section.values())
    assert me["Stats"]["consul"]["leader"] == "true" and me["Stats"]["agent"]["services"] == "0"

    members = get(dev_agent, "/v1/agent/members").json()
    assert [(m["Name"], m["Status"], m["Port"]) for m in members] == [(node, 1, 8301)]
    tags = members[0]["Tags"]
    assert {k: tags[k] for k in ("dc", "vsn", "vsn_min", "vsn_max", "port", "raft_vsn")} == {
        "dc": "dc1", "vsn": "2", "vsn_min": "2", "vsn_max": "3", "port": "8300", "raft_vsn": "3"}
    assert get(dev_agent, "/v1/agent/members?segment=_all").json() == members
    assert [m["Name"] for m in get(dev_agent, "/v1/agent/members?wan=1").json()] == [f"{node}.dc1"]
    reply = get(dev_agent, "/v1/agent/members?segment=blue")
    assert (reply.status_code, reply.text) == (500, "Network segments are not supported in this version of Consul")


def write_json(path: Path, body: dict[str, Any]) -> None:
    path.write_text(json.dumps(body))


def test_reload_by_signal_and_endpoint(start_agent: Callable[..., AgentProcess], tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    write_json(conf / "a.json", {"service": {"name": "one", "port": 1, "check": {"ttl": "1h", "status": "passing"}}})
    agent = start_agent(args=("-dev", "-config-dir", str(conf)))
    assert list(get(agent, "/v1/agent/services").json()) == ["one"]
    wait_until(lambda: passing(agent, "one") == ["one"])
    assert put(agent, "/v1/agent/service/register", {"Name": "api"}).status_code == 200

    (conf / "b.hcl").write_text('service {\n  name = "two"\n  port = 2\n}\n')
    agent.signal(signal.SIGHUP)
    wait_until(lambda: "two" in get(agent, "/v1/agent/services").json())
    wait_until(lambda: "two" in get(agent, "/v1/catalog/services").json())
    assert sorted(get(agent, "/v1/agent/services").json()) == ["api", "one", "two"]

    assert "added service: service=api" in agent.log()
    (conf / "a.json").unlink()
    write_json(conf / "c.json", {"services": [{"name": "three", "check": {"ttl": "1h"}}], "log_level": "warn"})
    reply = put(agent, "/v1/agent/reload")
    assert (reply.status_code, reply.text) == (200, "")
    assert sorted(get(agent, "/v1/agent/services").json()) == ["api", "three", "two"]
    assert sorted(get(agent, "/v1/catalog/services").json()) == ["api", "consul", "three", "two"]
    assert put(agent, "/v1/agent/service/register", {"Name": "quiet"}).status_code == 200
    assert "added service: service=quiet" not in agent.log()

    before = get(agent, "/v1/agent/services").json()
    write_json(conf / "d.json", {"service": {"name": "bad", "check": {"ttl": "1s", "interval": "1s"}}})
    reply = put(agent, "/v1/agent/reload")
    assert (reply.status_code, reply.text) == (
        500, 'Failed to register service "bad": Invalid check: Interval and TTL cannot both be specified')
    (conf / "d.json").write_text("{not json")
    reply = put(agent, "/v1/agent/reload")
    assert reply.status_code == 500 and reply.text.startswith("failed to parse ")
    assert get(agent, "/v1/agent/services").json() == before
    assert "Traceback" not in agent.log()


def test_anti_entropy_repairs_the_catalog(start_agent: Callable[..., AgentProcess]) -> None:
    agent = start_agent(args=("-dev", "-hcl", 'ae_interval = "1s"'))
    node = agent.node_name
    assert put(agent, "/v1/agent/service/register", {"Name": "web", "Check": {"TTL": "1h"}}).status_code == 200
    reply = requests.put(f"{agent.http}/v1/catalog/deregister", json={"Node": node, "ServiceID": "web"}, timeout=5)
    assert reply.json() is True
    assert "web" not in get(agent, "/v1/catalog/services").json()
    ghost = {"Node": node, "Address": agent.address, "Service": {"Service": "ghost", "Port": 1},
             "Check": {"CheckID": "ghost-check", "Name": "ghost", "Status": "passing"}}
    assert requests.put(f"{agent.http}/v1/catalog/register", json=ghost, timeout=5).json() is True
    assert "ghost" in get(agent, "/v1/catalog/services").json()

    wait_until(lambda: set(get(agent, "/v1/catalog/services").json()) == {"consul", "web"}, timeout=6)
    checks = {c["CheckID"]: c["Status"] for c in get(agent, f"/v1/health/node/{node}").json()}
    assert checks == {"serfHealth": "passing", "service:web": "critical"}
    assert "Traceback" not in agent.log()


def test_leave_shuts_the_agent_down(dev_agent: AgentProcess) -> None:
    reply = put(dev_agent, "/v1/agent/leave")
    assert (reply.status_code, reply.text) == (200, "")
    assert dev_agent.proc is not None
    assert dev_agent.proc.wait(timeout=10) == 0
    assert "agent shutdown complete" in dev_agent.log()


# --------------------------------------------------------------------------- bad input

SERVICE = "/v1/agent/service/register"
CHECK = "/v1/agent/check/register"
TTL_FIELDS = "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
BAD_INPUT: list[tuple[str, str, Any, int, str]] = [
    ("PUT", SERVICE, "", 400, "Request decode failed: EOF"),
    ("PUT", SERVICE, {"Name": "x", "Foo": 1}, 400, 'Request decode failed: json: unknown field "Foo"'),
    ("PUT", SERVICE, "{nope", 400, "Request decode failed: "),
    ("PUT", SERVICE, {"Port": 80, "Address": "0.0.0.0"}, 400, "Missing service name"),
    ("PUT", SERVICE, {"Name": "x", "Address": "0.0.0.0"}, 400, "Invalid service address"),
    ("PUT", SERVICE, {"Name": "x", "Weights": {"Passing": 0, "Warning": 1}}, 400,
     "Invalid Weights: Passing must be greater than 0"),
    ("PUT", SERVICE, {"Name": "x", "Meta": {"consul-x": "y"}}, 400,
     "Invalid Service Meta: Couldn't load metadata pair ('consul-x', 'y'): Key prefix 'consul-' is reserved for "
     "internal use"),
    ("PUT", SERVICE, {"Name": "x", "Check": {"TTL": "10s", "Interval": "10s"}}, 400,
     "Invalid check: Interval and TTL cannot both be specified"),
    ("PUT", SERVICE, {"Name": "x", "Check": {"HTTP": "http://a"}}, 400, f"Invalid check: {TTL_FIELDS}"),
    ("PUT", SERVICE, {"Name": "x", "Check": {"TTL": "10s", "Status": "bogus"}}, 400,
     "Status for checks must 'passing', 'warning', 'critical'"),
    ("PUT", SERVICE, {"Name": "x", "Check": {"TTL": "ten"}}, 400,
     'Request decode failed: time: invalid duration "ten"'),
    ("PUT", SERVICE, {"Name": "x", "Port": "80"}, 400, "Request decode failed: json: cannot unmarshal string into Go "),
    ("PUT", SERVICE, {"Name": "x", "Check": {"Args": ["/bin/true"], "Interval": "1s"}}, 500,
     "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true"),
    ("PUT", SERVICE, {"Name": "x", "Check": {"GRPC": "h:1", "Interval": "1s"}}, 500,
     "Check type is not valid: consulpy does not run grpc checks"),
    ("PUT", CHECK, {}, 400, "Missing check name"),
    ("PUT", CHECK, {"Name": "c", "TTL": "5s", "Status": "nope"}, 400, "Bad check status"),
    ("PUT", CHECK, {"Name": "c"}, 400, "Invalid check: TTL must be > 0 for TTL checks"),
    ("PUT", CHECK, {"Name": "c", "TTL": "5s", "ServiceID": "nope"}, 404, 'ServiceID "nope" does not exist'),
    ("PUT", "/v1/agent/check/pass/nope", None, 404,
     'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.'),
    ("PUT", "/v1/agent/check/fail/Service 'web' check", None, 404,
     "Unknown check ID \"Service 'web' check\". Ensure that the check ID is passed, not the check name."),
    ("PUT", "/v1/agent/check/pass/_service_maintenance:web", None, 500,
     'CheckID "_service_maintenance:web" does not have associated TTL'),
    ("PUT", "/v1/agent/check/update/service:web", {"Status": "bad"}, 400, "Invalid check status: 'bad'"),
    ("PUT", "/v1/agent/check/update/service:web", {"Status": "passing", "Note": "x"}, 400,
     'Request decode failed: json: unknown field "Note"'),
    ("PUT", "/v1/agent/check/deregister/nope", None, 404,
     'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.'),
    ("PUT", "/v1/agent/service/deregister/web-name", None, 404,
     'Unknown service ID "web-name". Ensure that the service ID is passed, not the service name.'),
    ("PUT", "/v1/agent/service/maintenance/web", None, 400, "Missing value for enable"),
    ("PUT", "/v1/agent/service/maintenance/web?enable=maybe", None, 400, 'Invalid value for enable: "maybe"'),
    ("PUT", "/v1/agent/service/maintenance/?enable=true", None, 400, "Missing service ID"),
    ("PUT", "/v1/agent/service/maintenance/nope?enable=true", None, 404,
     'Unknown service ID "nope". Ensure that the service ID is passed, not the service name.'),
    ("PUT", "/v1/agent/maintenance?enable=yes", None, 400, 'Invalid value for enable: "yes"'),
    ("GET", "/v1/agent/service/nope", None, 404, "unknown service ID: nope"),
    ("GET", "/v1/agent/service/web?hash=abc&wait=10", None, 400, "Invalid wait time"),
    ("GET", "/v1/agent/members?wan=1&segment=blue", None, 400, "Cannot provide a segment with wan=true"),
    ("GET", "/v1/agent/services?filter=Service%20%3D%3D", None, 500, "Failed to create boolean expression evaluator: "),
    ("GET", "/v1/agent/health/service/name/", None, 400, "Missing service Name"),
    ("GET", "/v1/agent/health/service/id/", None, 400, "Missing serviceID"),
    ("PUT", "/v1/agent/token/default", {"Token": "t"}, 401, "ACL support disabled"),
    ("GET", SERVICE, None, 405, "method GET not allowed"),
    ("POST", "/v1/agent/check/pass/service:web", None, 405, "method POST not allowed"),
]


def test_bad_input_is_refused_and_changes_nothing(dev_agent: AgentProcess) -> None:
    base = {"Name": "web", "Check": {"TTL": "1h"}}
    assert put(dev_agent, SERVICE, base).status_code == 200
    assert put(dev_agent, "/v1/agent/service/maintenance/web", enable="true").status_code == 200

    def snapshot() -> tuple[Any, Any, Any]:
        return (get(dev_agent, "/v1/agent/services").json(), get(dev_agent, "/v1/agent/checks").json(),
                get(dev_agent, "/v1/catalog/services").json())

    before = snapshot()
    assert len(BAD_INPUT) >= 15
    for method, path, body, status, text in BAD_INPUT:
        data = body if isinstance(body, str) or body is None else json.dumps(body)
        reply = requests.request(method, f"{dev_agent.http}{path}", data=data, timeout=10)
        where = f"{method} {path} {body!r}"
        assert reply.status_code == status, f"{where}: {reply.status_code} {reply.text}"
        assert reply.text.startswith(text) if text.endswith(" ") else reply.text == text, f"{where}: {reply.text}"
        assert reply.headers["Content-Type"].startswith("text/plain"), where
        assert snapshot() == before, where
    assert "Traceback" not in dev_agent.log()


@pytest.mark.parametrize("enabled", [False, True])
def test_script_check_from_config_file_needs_local_scripts(start_agent: Callable[..., AgentProcess],
                                                          tmp_path: Path, enabled: bool) -> None:
    marker = tmp_path / "ran"
    conf = tmp_path / "conf.json"
    write_json(conf, {"service": {"name": "job", "check": {"args": ["touch", str(marker)], "interval": "1s"}},
                      "check": {"name": "solo", "ttl": "1h", "status": "passing"}})
    flags = ("-enable-local-script-checks",) if enabled else ()
    agent = start_agent(args=("-dev", "-config-file", str(conf), *flags))
    refusal = ("Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or "
               "'enable_local_script_checks' to true")
    if enabled:
        assert sorted(get(agent, "/v1/agent/checks").json()) == ["service:job", "solo"]
        wait_until(marker.exists, timeout=4)
        assert wait_until(lambda: passing(agent, "job")) == ["job"]
        assert refusal not in agent.log()
    else:
        assert list(get(agent, "/v1/agent/checks").json()) == ["solo"]
        assert get(agent, "/v1/agent/services").json() == {}
        assert refusal in agent.log()
        time.sleep(1.2)
        assert not marker.exists()
