"""Joining through gossip as an agent process does it: `-retry-max` gives up and exits 1, and the serf snapshot
rejoins a restarted agent unless it had left (then only `-rejoin` brings it back).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import requests

from tests.agentproc import AgentProcess, wait_until

LEFT, ALIVE = 3, 1


def test_retry_max_gives_up_and_exits_1(loopback: str, tmp_path: Path) -> None:
    agent = AgentProcess(f"{loopback}.2", ("-data-dir", str(tmp_path / "c"), "-retry-join", f"{loopback}.9",
                                            "-retry-max", "2", "-retry-interval", "200ms"))
    try:
        agent.launch()
        assert agent.proc is not None
        assert agent.proc.wait(30) == 1
        log = agent.log()
        assert log.count("Join cluster failed, will retry: cluster=LAN") == 1
        assert "Retry join failed: error=agent: max join retry exhausted, exiting" in log
        assert f"Failed to join {loopback}.9:8301" in log
        assert "Traceback" not in log
    finally:
        agent.cleanup()


def status_on(server: AgentProcess, name: str) -> int:
    members = requests.get(f"{server.http}/v1/agent/members", timeout=2).json()
    return next((m["Status"] for m in members if m["Name"] == name), 0)


def test_snapshot_rejoins_after_a_crash_but_not_after_a_leave_unless_rejoin(
        start_agent: Callable[..., AgentProcess], loopback: str, tmp_path: Path) -> None:
    server = start_agent(host=2, args=("-server", "-bootstrap-expect", "1", "-data-dir", str(tmp_path / "s")))
    client_dir = str(tmp_path / "c")
    client = start_agent(host=3, args=("-data-dir", client_dir, "-retry-join", server.address))
    name = client.node_name
    wait_until(lambda: status_on(server, name) == ALIVE, 10)

    # A crash keeps the snapshot's members: restarted without any join, the client is back by itself.
    snapshot = Path(client_dir, "serf", "local.snapshot")
    wait_until(lambda: snapshot.exists() and f"alive: {server.node_name} " in snapshot.read_text(), 5)
    client.kill()
    restarted = start_agent(host=3, args=("-data-dir", client_dir))
    wait_until(lambda: status_on(server, name) == ALIVE and "serf: EventMemberJoin" in restarted.log(), 15)

    # After a graceful leave the snapshot says so: -rejoin still rejoins the members it lists...
    def leave(agent: AgentProcess) -> None:
        assert requests.put(f"{agent.http}/v1/agent/leave", timeout=10).status_code == 200
        assert agent.proc is not None and agent.proc.wait(20) == 0
        wait_until(lambda: status_on(server, name) == LEFT, 10)

    leave(restarted)
    rejoined = start_agent(host=3, args=("-data-dir", client_dir, "-rejoin"))
    assert "Ignoring previous leave in snapshot" in rejoined.log()
    wait_until(lambda: status_on(server, name) == ALIVE, 15)

    # ...and without it a restart after a leave stays out of the cluster.
    wait_until(lambda: f"alive: {server.node_name} " in snapshot.read_text(), 5)
    leave(rejoined)
    after_leave = AgentProcess(f"{loopback}.3", ("-data-dir", client_dir))
    try:
        after_leave.launch()
        wait_until(lambda: "Consul agent running!" in after_leave.log(), 10)
        assert "Ignoring previous members after a leave" in after_leave.log()
        members = requests.get(f"{after_leave.http}/v1/agent/members", timeout=2).json()
        assert [m["Name"] for m in members] == [name]
        assert status_on(server, name) == LEFT
    finally:
        after_leave.cleanup()


def test_a_client_joins_a_dev_agent(start_agent: Callable[..., AgentProcess], tmp_path: Path) -> None:
    dev = start_agent(host=2)
    client = start_agent(host=3, args=("-data-dir", str(tmp_path / "c"), "-retry-join", dev.address))
    nodes = {dev.node_name, client.node_name}
    wait_until(lambda: {n["Node"] for n in requests.get(f"{client.http}/v1/catalog/nodes", timeout=2).json()}
               == nodes, 10)
    checks = requests.get(f"{dev.http}/v1/health/node/{client.node_name}", timeout=2).json()
    assert [(c["CheckID"], c["Status"]) for c in checks] == [("serfHealth", "passing")]
    service = {"Name": "api", "Port": 9000}
    assert requests.put(f"{client.http}/v1/agent/service/register", json=service, timeout=10).status_code == 200
    wait_until(lambda: [s["Node"] for s in requests.get(f"{dev.http}/v1/catalog/service/api", timeout=2).json()]
               == [client.node_name], 10)
    # Reads that need the servers' state go to them: a snapshot saved through the client is the dev agent's.
    saved = requests.get(f"{client.http}/v1/snapshot", timeout=10)
    assert saved.status_code == 200 and saved.headers["Content-Type"] == "application/x-gzip"
    assert saved.headers["X-Consul-Knownleader"] == "true"
    later = requests.get(f"{dev.http}/v1/snapshot", timeout=10)
    assert 1 < int(saved.headers["X-Consul-Index"]) <= int(later.headers["X-Consul-Index"])
