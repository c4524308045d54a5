"""Raft membership follows gossip: a server that leaves gracefully (a follower, then the leader, which hands
leadership over first) is taken out of the Raft configuration and the catalog, and the rest keep serving
writes. Imports: stdlib, requests, tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from tests.agentproc import ROOT, wait_until
from tests.clusterproc import ServerSet

LEFT = 3


def leave(cluster: ServerSet, host: int) -> None:
    out = subprocess.run([sys.executable, "-m", "consulpy", "leave", f"-http-addr={cluster.address(host)}:8500"],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 0 and "Graceful leave complete" in out.stdout, out.stdout + out.stderr
    process = cluster.servers[host].proc
    assert process is not None and process.wait(20) == 0


def voters(cluster: ServerSet, host: int) -> set[str]:
    try:
        config = cluster.get(host, "/v1/operator/raft/configuration").json()
    except (requests.RequestException, ValueError):
        return set()
    return {server["Address"].rpartition(":")[0] for server in config["Servers"] if server["Voter"]}


def member_status(cluster: ServerSet, host: int, name: str) -> int:
    members = cluster.get(host, "/v1/agent/members").json()
    return next((m["Status"] for m in members if m["Name"] == name), 0)


def test_servers_that_leave_are_removed_from_raft_and_the_catalog(loopback: str, tmp_path: Path) -> None:
    cluster = ServerSet(loopback, tmp_path, expect=3)
    try:
        hosts = [2, 3, 4, 5]
        cluster.launch_all(hosts[:3])
        leader = cluster.agreed_leader(hosts[:3])
        # A fourth server joins through gossip and becomes a voter; then one follower and the leader leave.
        cluster.launch(5)
        everyone = {cluster.address(h) for h in hosts}
        wait_until(lambda: voters(cluster, leader) == everyone, 30)

        follower = next(h for h in hosts if h != leader)
        leave(cluster, follower)
        remaining = [h for h in hosts if h != follower]
        wait_until(lambda: voters(cluster, leader) == {cluster.address(h) for h in remaining}, 15)
        name = cluster.servers[follower].node_name
        assert all(member_status(cluster, h, name) == LEFT for h in remaining)
        wait_until(lambda: name not in [n["Node"] for n in cluster.get(leader, "/v1/catalog/nodes").json()], 15)

        leave(cluster, leader)
        survivors = [h for h in remaining if h != leader]
        new_leader = cluster.agreed_leader(survivors)
        wait_until(lambda: voters(cluster, new_leader) == {cluster.address(h) for h in survivors}, 15)
        response = requests.put(f"{cluster.servers[survivors[0]].http}/v1/kv/after-leaves", data=b"ok", timeout=15)
        assert response.status_code == 200 and response.json() is True
    finally:
        cluster.cleanup()
