"""Three real server processes forming one Raft cluster on loopback: election through -bootstrap-expect,
writes through any server, kill -9 of the leader, restart from the data dir, and a fourth server brought up
to date by snapshot. Imports: stdlib, requests, tests.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from tests.agentproc import ROOT, wait_until
from tests.clusterproc import ServerSet

WRITES = 1000


def list_peers(cluster: ServerSet, host: int) -> list[list[str]]:
    out = subprocess.run([sys.executable, "-m", "consulpy", "operator", "raft", "list-peers",
                          f"-http-addr=http://{cluster.address(host)}:8500"],
                         capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return [line.split() for line in out.stdout.splitlines()]


def kv_rows(cluster: ServerSet, host: int, **params: Any) -> tuple[int, list[tuple[str, str, int, int]]]:
    response = cluster.get(host, "/v1/kv/load/", recurse="", **params)
    assert response.status_code == 200, response.text
    rows = [(e["Key"], e["Value"], e["CreateIndex"], e["ModifyIndex"]) for e in response.json()]
    return int(response.headers["X-Consul-Index"]), rows


def caught_up(cluster: ServerSet, host: int, reference: list[tuple[str, str, int, int]]) -> bool:
    try:
        return kv_rows(cluster, host, stale="")[1] == reference
    except (requests.RequestException, AssertionError, ValueError):
        return False


def write_all(cluster: ServerSet, hosts: list[int]) -> None:
    sessions = {host: requests.Session() for host in hosts}

    def put(i: int) -> None:
        host = hosts[i % len(hosts)]
        url = f"{cluster.servers[host].http}/v1/kv/load/{i:04d}"
        response = sessions[host].put(url, data=f"value-{i}", timeout=30)
        assert response.status_code == 200 and response.json() is True, response.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(WRITES)))


def test_three_servers_keep_every_write_through_leader_kill_restart_and_snapshot_catch_up(
        loopback: str, tmp_path: Path) -> None:
    cluster = ServerSet(loopback, tmp_path, extra_hcl="raft_snapshot_threshold = 256")
    try:
        cluster.launch_all([2, 3, 4])
        leader = cluster.agreed_leader([2, 3, 4])
        rows = wait_until(lambda: (r := list_peers(cluster, 3)) and len(r) == 4 and r, 15)
        assert rows[0][:6] == ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
        states = sorted(row[3] for row in rows[1:])
        assert states == ["follower", "follower", "leader"]
        assert all(row[4] == "true" for row in rows[1:])

        write_all(cluster, [2, 3, 4])
        _, before = kv_rows(cluster, leader, consistent="")
        assert len(before) == WRITES

        cluster.servers[leader].kill()
        killed_at = time.monotonic()
        survivors = [h for h in (2, 3, 4) if h != leader]
        new_leader = cluster.agreed_leader(survivors, timeout=10)
        failover = time.monotonic() - killed_at
        assert failover < 3.0, f"new leader after {failover:.2f}s"

        _, after = kv_rows(cluster, new_leader, consistent="")
        assert after == before
        for host in survivors:
            wait_until(lambda h=host: caught_up(cluster, h, before), 10)

        cluster.launch(leader, join=new_leader)
        wait_until(lambda: caught_up(cluster, leader, before), 20)

        cluster.launch(5, join=new_leader)
        wait_until(lambda: caught_up(cluster, 5, before), 30)
        assert "installed snapshot from the leader" in cluster.servers[5].log()
        rows = wait_until(lambda: (r := list_peers(cluster, new_leader)) and len(r) == 5
                          and all(row[4] == "true" for row in r[1:]) and r, 20)
        assert sorted(row[2] for row in rows[1:]) == sorted(f"{cluster.address(h)}:8300" for h in (2, 3, 4, 5))

        follower = next(h for h in (2, 3, 4, 5) if h != new_leader)
        saved = cluster.get(follower, "/v1/snapshot")
        assert saved.status_code == 200, saved.text
        assert requests.put(f"{cluster.servers[follower].http}/v1/kv/load/extra", data="x", timeout=30).json()
        restored = requests.put(f"{cluster.servers[follower].http}/v1/snapshot", data=saved.content, timeout=60)
        assert restored.status_code == 200, restored.text
        for host in (2, 3, 4, 5):
            wait_until(lambda h=host: cluster.get(h, "/v1/kv/load/extra", stale="").status_code == 404, 10)
            wait_until(lambda h=host: [row[:2] for row in kv_rows(cluster, h, stale="")[1]]
                       == [row[:2] for row in before], 10)
        for agent in cluster.servers.values():
            assert "Traceback" not in agent.log()
    finally:
        cluster.cleanup()


def test_failover_at_the_default_raft_multiplier_is_within_ten_seconds(loopback: str, tmp_path: Path) -> None:
    cluster = ServerSet(loopback, tmp_path, raft_multiplier=5)
    hosts = [2, 3, 4]
    try:
        cluster.launch_all(hosts)
        leader = cluster.agreed_leader(hosts, timeout=40)
        response = requests.put(f"{cluster.servers[leader].http}/v1/kv/before-kill", data="x", timeout=30)
        assert response.json() is True
        cluster.servers[leader].kill()
        killed_at = time.monotonic()
        survivors = [h for h in hosts if h != leader]
        new_leader = cluster.agreed_leader(survivors, timeout=20)
        failover = time.monotonic() - killed_at
        assert failover < 10.0, f"new leader after {failover:.2f}s"
        value = cluster.get(new_leader, "/v1/kv/before-kill", raw="", consistent="")
        assert value.status_code == 200 and value.text == "x"
    finally:
        cluster.cleanup()
