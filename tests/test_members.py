"""Gossip membership through real agents: /v1/agent/members, join and force-leave over HTTP and as the `members`,
`join`, `force-leave` and `leave` commands, on a dev agent and on a server joined by a client agent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.agentproc import AgentProcess, wait_until
from tests.test_cli import MEMBERS_HEADER, consul, failed, ok

VERSIONS = {"ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2, "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4}
ENTERPRISE_ONLY = 'Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature'


def get(agent: AgentProcess, path: str, **params: str) -> requests.Response:
    return requests.get(f"{agent.http}{path}", params=params, timeout=10)


def put(agent: AgentProcess, path: str, **params: str) -> requests.Response:
    return requests.put(f"{agent.http}{path}", params=params, timeout=10)


def members(agent: AgentProcess, **params: str) -> dict[str, dict[str, Any]]:
    return {m["Name"]: m for m in get(agent, "/v1/agent/members", **params).json()}


def statuses(agent: AgentProcess) -> dict[str, int]:
    return {name: m["Status"] for name, m in members(agent).items()}


def table(text: str) -> list[list[str]]:
    return [line.split() for line in text.rstrip("\n").split("\n")]


def test_dev_agent_lists_itself(dev_agent: AgentProcess) -> None:
    a, node = dev_agent, dev_agent.node_name
    me = get(a, "/v1/agent/members").json()
    assert len(me) == 1
    assert {k: me[0][k] for k in ("Name", "Addr", "Port", "Status")} == {"Name": node, "Addr": a.address,
                                                                           "Port": 8301, "Status": 1}
    assert {k: me[0][k] for k in VERSIONS} == VERSIONS
    tags = me[0]["Tags"]
    assert list(tags) == sorted(tags)
    assert {k: tags[k] for k in ("role", "dc", "segment", "vsn", "port", "wan_join_port")} == {
        "role": "consul", "dc": "dc1", "segment": "", "vsn": "2", "port": "8300", "wan_join_port": "8302"}
    assert tags["build"].startswith("1.20.1:")
    assert get(a, "/v1/agent/self").json()["Member"] == me[0]
    assert get(a, "/v1/agent/members", segment="_all").json() == me

    wan = get(a, "/v1/agent/members", wan="1").json()
    assert [(m["Name"], m["Addr"], m["Port"], m["Status"]) for m in wan] == [(f"{node}.dc1", a.address, 8302, 1)]
    assert get(a, "/v1/agent/members", filter="Status == 1").json() == me
    assert get(a, "/v1/agent/members", filter='Tags.role == "node"').json() == []
    for params, status, text in (
            ({"segment": "blue"}, 500, "Network segments are not supported in this version of Consul"),
            ({"wan": "1", "segment": "blue"}, 400, "Cannot provide a segment with wan=true"),
            ({"partition": "p1"}, 400, ENTERPRISE_ONLY),
            ({"filter": "Status =="}, 500, "Failed to create boolean expression evaluator: ")):
        reply = get(a, "/v1/agent/members", **params)
        assert (reply.status_code, reply.text[:len(text)]) == (status, text), params

    rows = table(ok("members", agent=a))
    assert rows == [MEMBERS_HEADER, [node, f"{a.address}:8301", "alive", "server", "1.20.1", "2", "dc1", "default",
                                     "<all>"]]
    rows = table(ok("members", "-wan", agent=a))
    assert rows[1] == [f"{node}.dc1", f"{a.address}:8302", "alive", "server", "1.20.1", "2", "dc1", "default",
                       "<all>"]


def test_join_and_force_leave_errors_on_a_dev_agent(dev_agent: AgentProcess, loopback: str) -> None:
    a = dev_agent
    nobody = f"{loopback}.9"
    address = f"{nobody}:8301"
    refused = f"1 error occurred:\n\t* Failed to join {address}: dial tcp {address}: connect: connection refused"
    reply = put(a, f"/v1/agent/join/{nobody}")
    assert (reply.status_code, reply.text.strip()) == (500, refused)
    assert failed("join", nobody, agent=a) == (
        f"Error joining address '{nobody}': Unexpected response code: 500 ({refused})\nFailed to join any nodes.\n")
    assert put(a, f"/v1/agent/join/{nobody}", partition="p1").text == ENTERPRISE_ONLY

    reply = put(a, "/v1/agent/force-leave/ghost")
    assert (reply.status_code, reply.text) == (500, "agent: No node found with name 'ghost'")
    assert failed("force-leave", "-prune", "ghost", agent=a) == (
        "Error force leaving: Unexpected response code: 500 (agent: No node found with name 'ghost')\n")
    assert failed("force-leave", "-partition=p1", "ghost", agent=a) == (
        f"Error force leaving: Unexpected response code: 400 ({ENTERPRISE_ONLY})\n")
    assert put(a, "/v1/agent/join/x", wan="1").status_code == 500
    assert "Traceback" not in a.log()
    assert statuses(a) == {a.node_name: 1}


def test_usage_errors_need_no_agent() -> None:
    stderr = failed("join")
    assert stderr.startswith("At least one address to join must be specified.\n\nUsage: consul join [options] "
                             "address ...\n")
    assert "\n  -wan\n" in stderr
    for args in (("force-leave",), ("force-leave", "a", "b")):
        stderr = failed(*args)
        assert stderr.startswith("A single node name must be specified to force leave.\n\nUsage: consul force-leave "
                                 "[options] name\n"), args
        assert "\n  -prune\n" in stderr and "\n  -partition=<string>\n" in stderr
    assert failed("force-leave", "-bogus", "x").startswith("flag provided but not defined: -bogus\nUsage:\n")
    listing = consul().stderr
    assert "\n    force-leave    " in listing and "\n    join           " in listing


@pytest.fixture
def client_agent(loopback: str, tmp_path: Path) -> Iterator[Callable[[], AgentProcess]]:
    """A client agent (no -server) on .3, which has no leader until it joins, so it is ready once HTTP answers."""
    agents: list[AgentProcess] = []

    def start() -> AgentProcess:
        agent = AgentProcess(f"{loopback}.3", ("-data-dir", str(tmp_path / "client")))
        agents.append(agent)
        agent.launch()

        def answers() -> bool:
            assert agent.proc is not None and agent.proc.poll() is None, agent.log()
            try:
                return get(agent, "/v1/agent/self").status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, timeout=10)
        return agent

    yield start
    for agent in agents:
        agent.cleanup()


def test_client_joins_a_server_and_leaves(start_agent: Callable[..., AgentProcess],
                                          client_agent: Callable[[], AgentProcess], tmp_path: Path) -> None:
    server = start_agent(host=2, args=("-server", "-bootstrap-expect", "1", "-data-dir", str(tmp_path / "server")))
    client = client_agent()
    s_name, c_name = server.node_name, client.node_name
    assert statuses(client) == {c_name: 1}
    assert ok("join", server.address, agent=client) == "Successfully joined cluster by contacting 1 nodes.\n"

    both = {s_name: 1, c_name: 1}
    wait_until(lambda: statuses(server) == both and statuses(client) == both, timeout=10)
    assert members(server)[c_name]["Tags"]["role"] == "node"
    assert members(client)[s_name]["Tags"]["role"] == "consul"
    assert get(client, "/v1/agent/self").json()["Stats"]["consul"]["known_servers"] == "1"
    assert get(server, "/v1/agent/self").json()["Stats"]["serf_lan"]["members"] == "2"
    expected = [MEMBERS_HEADER,
                [s_name, f"{server.address}:8301", "alive", "server", "1.20.1", "2", "dc1", "default", "<all>"],
                [c_name, f"{client.address}:8301", "alive", "client", "1.20.1", "2", "dc1", "default", "<default>"]]
    assert table(ok("members", agent=server)) == expected
    text = ok("members", agent=client)
    assert table(text) == expected
    assert text.split("\n")[1].index(f"{server.address}:8301") == text.split("\n")[0].index("Address")

    assert [m["Name"] for m in get(server, "/v1/agent/members", wan="1").json()] == [f"{s_name}.dc1"]
    for reply, text in (
            (get(client, "/v1/agent/members", wan="1"), "null"),
            (get(client, "/v1/agent/members", segment="blue"), 'segment "blue" not found'),
            (put(client, f"/v1/agent/join/{server.address}", wan="1"), "Must be a server to join WAN cluster"),
            (put(client, f"/v1/agent/force-leave/{s_name}", wan="1"),
             "Must be a server to force-leave a node from the WAN cluster")):
        assert (reply.status_code, reply.text) == (200 if text == "null" else 500, text), reply.url
    assert failed("force-leave", "ghost", agent=client) == (
        "Error force leaving: Unexpected response code: 500 (agent: No node found with name 'ghost')\n")

    assert ok("leave", agent=client) == "Graceful leave complete\n"
    wait_until(lambda: statuses(server) == {s_name: 1, c_name: 3}, timeout=8)
    assert get(server, "/v1/agent/self").json()["Stats"]["serf_lan"]["left"] == "1"
    assert client.proc is not None and client.proc.wait(10) == 0
    assert table(ok("members", "-status=left", agent=server))[1][:3] == [c_name, f"{client.address}:8301", "left"]
    assert ok("force-leave", "-prune", c_name, agent=server) == ""
    wait_until(lambda: statuses(server) == {s_name: 1}, timeout=5)
    for agent in (server, client):
        assert "Traceback" not in agent.log()
