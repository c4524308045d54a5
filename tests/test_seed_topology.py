"""The seed topology on loopback, started with the same command lines as docker/compose.yaml (tests/seed.py):
three servers and a client that find each other only through gossip, failure detection of the client,
its restart and graceful leave, a service registered on the client seen through every server, and the
client's HTTP API riding out the loss of the server it was using.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dnslib
import pytest
import requests

from tests.agentproc import ROOT, AgentProcess, wait_until
from tests.seed import CLIENT, SEED_MEMBERS, SeedMember, member_args

SERVERS = [m for m in SEED_MEMBERS if m.role != CLIENT]
CLIENT_MEMBER = next(m for m in SEED_MEMBERS if m.role == CLIENT)
FAILED, LEFT = 4, 3


class SeedAgent(AgentProcess):
    """An agent started with exactly the seed command line of its compose service."""

    def __init__(self, member: SeedMember, block: str, data_root: Path) -> None:
        super().__init__(f"{block}.{member.host}", ())
        self.member = member
        self.block = block
        self.data_dir = str(data_root / member.service)

    @property
    def node_name(self) -> str:
        return self.member.service

    def command(self) -> list[str]:
        return member_args(self.member, self.block, self.data_dir)


@pytest.fixture
def seed(loopback: str, tmp_path: Path) -> Iterator[dict[str, SeedAgent]]:
    agents = {m.service: SeedAgent(m, loopback, tmp_path) for m in SEED_MEMBERS}
    try:
        yield agents
    finally:
        for name, agent in agents.items():
            agent.kill()
            print(f"---- {name} log (tail) ----")
            print("\n".join(agent.log().splitlines()[-30:]))
            agent.cleanup()


def cli_members(agent: AgentProcess) -> dict[str, tuple[str, str]]:
    """`consulpy members` on `agent`: node → (status, type)."""
    out = subprocess.run([sys.executable, "-m", "consulpy", "members", f"-http-addr={agent.address}:8500"],
                         capture_output=True, text=True, timeout=20, cwd=ROOT)
    if out.returncode != 0:
        return {}
    rows = [line.split() for line in out.stdout.splitlines()[1:] if line.strip()]
    return {row[0]: (row[2], row[3]) for row in rows}


def member_status(agent: AgentProcess, name: str) -> int:
    try:
        members = requests.get(f"{agent.http}/v1/agent/members", timeout=2).json()
    except (requests.RequestException, ValueError):
        return 0
    return next((m["Status"] for m in members if m["Name"] == name), 0)


def serf_health(agent: AgentProcess, node: str) -> str:
    try:
        checks = requests.get(f"{agent.http}/v1/health/node/{node}", timeout=2).json()
    except (requests.RequestException, ValueError):
        return ""
    return next((c["Status"] for c in checks if c["CheckID"] == "serfHealth"), "")


def dns_addresses(agent: AgentProcess, name: str) -> list[str]:
    query = dnslib.DNSRecord.question(name, "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query.pack(), (agent.address, 8600))
        reply = dnslib.DNSRecord.parse(sock.recv(4096))
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == dnslib.QTYPE.A)


def rpc_server_of(client: AgentProcess, servers: list[SeedAgent]) -> SeedAgent | None:
    """The server the client's RPCs go to: the one it holds an established connection to on port 8300."""
    peers = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if state != "01" or int(remote.split(":")[1], 16) != 8300:
            continue
        if _ip(local) == client.address:
            peers.add(_ip(remote))
    found = [s for s in servers if s.address in peers]
    return found[0] if len(found) == 1 else None


def _ip(field: str) -> str:
    raw = bytes.fromhex(field.split(":")[0])
    return socket.inet_ntoa(raw[::-1])


class Prober(threading.Thread):
    """Reads through the client's HTTP API every 50 ms; records the longest stretch without a good answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.done = threading.Event()
        self.longest_gap = 0.0
        self.answers = 0

    def run(self) -> None:
        last_ok = time.monotonic()
        while not self.done.is_set():
            try:
                ok = requests.get(self.url, timeout=15).status_code == 200
            except requests.RequestException:
                ok = False
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - last_ok)
            if ok:
                last_ok = now
                self.answers += 1
            time.sleep(0.05)


def test_seed_topology_forms_detects_failure_and_serves_the_client(seed: dict[str, SeedAgent]) -> None:
    servers = [seed[m.service] for m in SERVERS]
    client = seed[CLIENT_MEMBER.service]
    servers[0].launch()
    time.sleep(0.5)
    for agent in (*servers[1:], client):
        agent.launch()
    everyone = [*servers, client]
    expected = {m.service: ("alive", "client" if m.role == CLIENT else "server") for m in SEED_MEMBERS}
    for agent in everyone:
        wait_until(lambda a=agent: cli_members(a) == expected, 30)

    # One leader, elected with no -join between servers other than through gossip.
    leaders = wait_until(lambda: (lambda seen: seen if len(seen) == 1 and "" not in seen else None)(
        {requests.get(f"{a.http}/v1/status/leader", timeout=2).json() for a in servers}), 30)
    assert leaders.pop().rpartition(":")[0] in {s.address for s in servers}

    # A service registered on the client is seen through every server's catalog, health and DNS.
    service = {"Name": "web", "Port": 8080, "Check": {"TTL": "30s", "Status": "passing"}}
    assert requests.put(f"{client.http}/v1/agent/service/register", json=service, timeout=10).status_code == 200
    for agent in everyone:
        wait_until(lambda a=agent: [n["Node"] for n in requests.get(
            f"{a.http}/v1/catalog/service/web", timeout=2).json()] == [client.node_name], 20)
        healthy = requests.get(f"{agent.http}/v1/health/service/web?passing", timeout=5).json()
        assert [entry["Node"]["Node"] for entry in healthy] == [client.node_name]
        assert wait_until(lambda a=agent: dns_addresses(a, "web.service.consul"), 10) == [client.address]

    # A session on the client's node (tied to its serfHealth by default) holds a lock until the client dies.
    session = requests.put(f"{client.http}/v1/session/create", json={"Name": "seed"}, timeout=10).json()["ID"]
    locked = requests.put(f"{client.http}/v1/kv/seed-lock?acquire={session}", data=b"x", timeout=10).json()
    assert locked is True

    # kill -9 of the client: failed on every server within 10 s, its serfHealth critical.
    client.kill()
    killed = time.monotonic()
    for server in servers:
        wait_until(lambda s=server: member_status(s, client.node_name) == FAILED, 10 - (time.monotonic() - killed))
    assert time.monotonic() - killed < 10
    for server in servers:
        wait_until(lambda s=server: serf_health(s, client.node_name) == "critical", 10)
    # ...which invalidated the session and released its lock.
    assert requests.get(f"{servers[0].http}/v1/session/info/{session}", timeout=5).json() == []
    assert "Session" not in requests.get(f"{servers[0].http}/v1/kv/seed-lock", timeout=5).json()[0]

    # Restarted with the same data dir (no join needed: the serf snapshot rejoins): alive again everywhere.
    client.launch()
    for server in servers:
        wait_until(lambda s=server: member_status(s, client.node_name) == 1, 20)
        wait_until(lambda s=server: serf_health(s, client.node_name) == "passing", 20)

    # The client's HTTP API rides out the loss of the server it was using.
    wait_until(lambda: rpc_server_of(client, servers), 20)
    used = rpc_server_of(client, servers)
    assert used is not None
    was_leader = requests.get(f"{used.http}/v1/status/leader", timeout=2).json() == f"{used.address}:8300"
    stale_reads = Prober(f"{client.http}/v1/catalog/service/web?stale")
    default_reads = Prober(f"{client.http}/v1/catalog/service/web")
    for prober in (stale_reads, default_reads):
        prober.start()
    time.sleep(1)
    used.kill()
    time.sleep(12)
    for prober in (stale_reads, default_reads):
        prober.done.set()
        prober.join(20)
    assert stale_reads.answers > 20 and default_reads.answers > 20
    assert stale_reads.longest_gap < 3.0, stale_reads.longest_gap
    # A default read needs a leader: losing a follower costs only the switch, losing the leader an election.
    assert default_reads.longest_gap < (10.0 if was_leader else 3.0), (was_leader, default_reads.longest_gap)
    survivors = [s for s in servers if s is not used]

    # `consulpy leave` on the client: left everywhere, and out of the catalog.
    out = subprocess.run([sys.executable, "-m", "consulpy", "leave", f"-http-addr={client.address}:8500"],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "Graceful leave complete" in out.stdout
    for server in survivors:
        wait_until(lambda s=server: member_status(s, client.node_name) == LEFT, 10)
        wait_until(lambda s=server: client.node_name not in [n["Node"] for n in requests.get(
            f"{s.http}/v1/catalog/nodes", timeout=2).json()], 15)
