"""Gossip under real packet loss: five agents (three servers, two clients), each in a network namespace of
its own joined by veth pairs to a bridge in a hub namespace, with nftables in every agent's namespace
dropping 10 % of the UDP datagrams that arrive for the serf port. For two minutes no agent may show any
member failed, leaving or left, and no serfHealth check may go critical; all five are alive at the end.

The 10.231.0.0/24 addresses exist only inside the test's namespaces; the test reaches the agents' HTTP from
a thread moved into the hub namespace. Needs root, `ip` and `nft` (skips otherwise).
Imports: stdlib, pytest, requests, tests.agentproc, tests.seed.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.agentproc import ROOT
from tests.seed import CLIENT, SERVER, seed_args

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and nftables need root"),
    pytest.mark.skipif(shutil.which("ip") is None or shutil.which("nft") is None,
                       reason="needs `ip` (iproute2) and `nft` (nftables); .ci/run installs both"),
]

SUBNET = "10.231.0"
HUB_ADDRESS = f"{SUBNET}.1"
SERF_LAN_PORT = 8301
LOSS_PERCENT = 10
WINDOW_SECONDS = 120.0
POLL_INTERVAL = 1.0
CLONE_NEWNET = 0x40000000
# (role, host in SUBNET, node name); the first server starts first and the others join it.
TOPOLOGY = (
    (SERVER, 2, "server1"), (SERVER, 3, "server2"), (SERVER, 4, "server3"),
    (CLIENT, 5, "client1"), (CLIENT, 6, "client2"),
)
NAMES = {name for _, _, name in TOPOLOGY}
ALIVE, FAILED_STATES = 1, {2: "leaving", 3: "left", 4: "failed"}
_SUSPECT = re.compile(r"Suspect \S+ has failed")
_REFUTE = re.compile(r"Refuting a suspect message")
_TCP_RESCUE = re.compile(r"Was able to connect to \S+ over TCP but UDP probes failed")


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=10)


class LossyNetwork:
    """The hub namespace with its bridge and one namespace per agent, each dropping LOSS_PERCENT of the
    serf datagrams it receives (in the input hook: a drop on output would fail the sender's sendto)."""

    def __init__(self) -> None:
        self.prefix = f"cpy{os.getpid()}"
        self.hub = f"{self.prefix}-hub"
        self.created: list[str] = []

    def node_ns(self, host: int) -> str:
        return f"{self.prefix}-n{host}"

    def _add_ns(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self.created.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def build(self, hosts: list[int]) -> None:
        self._add_ns(self.hub)
        run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
        run("ip", "-n", self.hub, "link", "set", "br0", "up")
        for host in hosts:
            ns, port = self.node_ns(host), f"vn{host}"
            self._add_ns(ns)
            # Both ends are created inside test namespaces, so no interface ever appears in the host's.
            run("ip", "-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "-n", self.hub, "link", "set", port, "master", "br0", "up")
            run("ip", "-n", ns, "addr", "add", f"{SUBNET}.{host}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "chaos")
            run("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "chaos", "input",
                "{ type filter hook input priority 0; policy accept; }")
            # The first counter sees every serf datagram, the second the ones dropped.
            run("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "chaos", "input", "udp", "dport",
                str(SERF_LAN_PORT), "counter", "numgen", "random", "mod", "100", "<", str(LOSS_PERCENT),
                "counter", "drop")

    def counters(self, host: int) -> tuple[int, int]:
        """(serf datagrams that arrived, of which dropped) in one agent's namespace."""
        listing = subprocess.run(["ip", "netns", "exec", self.node_ns(host), "nft", "-j", "list", "table", "inet",
                                  "chaos"], check=True, capture_output=True, text=True, timeout=10).stdout
        (rule,) = [item["rule"] for item in json.loads(listing)["nftables"] if "rule" in item]
        seen, dropped = (expr["counter"]["packets"] for expr in rule["expr"] if "counter" in expr)
        return seen, dropped

    def destroy(self) -> None:
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


class NamespacedAgent:
    """`consulpy agent` started inside a namespace (ip netns exec execs it, so the PID is the agent's)."""

    def __init__(self, ns: str, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "consulpy", *argv],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def enter_netns(name: str) -> None:
    """Move the calling thread into the named network namespace (setns acts per thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    finally:
        os.close(fd)


def get_json(path: str, host: int) -> Any:
    try:
        return requests.get(f"http://{SUBNET}.{host}:8500{path}", timeout=2).json()
    except (requests.RequestException, ValueError):
        return None


def poll(hosts: list[int]) -> dict[int, dict[str, int] | None]:
    """Each agent's view of the LAN pool (None when it did not answer)."""
    views: dict[int, dict[str, int] | None] = {}
    for host in hosts:
        found = get_json("/v1/agent/members", host)
        views[host] = None if found is None else {member["Name"]: member["Status"] for member in found}
    return views


def serf_health(host: int, state: str) -> set[str]:
    """Nodes whose serfHealth check is in `state`, as the catalog on `host` has them."""
    checks = get_json(f"/v1/health/state/{state}?stale", host) or []
    return {check["Node"] for check in checks if check.get("CheckID") == "serfHealth"}


@pytest.fixture
def network() -> Iterator[LossyNetwork]:
    net = LossyNetwork()
    try:
        try:
            net.build([host for _, host, _ in TOPOLOGY])
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot build the test's namespaces: {' '.join(exc.cmd)}: {exc.stderr.strip()}")
        yield net
    finally:
        net.destroy()


@pytest.mark.timeout(240)
def test_no_member_fails_under_ten_percent_udp_loss(network: LossyNetwork) -> None:
    hosts = [host for _, host, _ in TOPOLOGY]
    first = f"{SUBNET}.{TOPOLOGY[0][1]}"
    agents: dict[int, NamespacedAgent] = {}
    with tempfile.TemporaryDirectory(prefix="consulpy-loss-") as root, \
            ThreadPoolExecutor(max_workers=1, initializer=enter_netns, initargs=(network.hub,)) as hub:
        try:
            for role, host, name in TOPOLOGY:
                argv = seed_args(role, f"{SUBNET}.{host}", first, f"{root}/{name}", name)
                agents[host] = NamespacedAgent(network.node_ns(host), argv, Path(root) / f"{name}.log")
                if host == TOPOLOGY[0][1]:
                    # The others -join it, which fails unless it already listens.
                    deadline = time.monotonic() + 20
                    while hub.submit(poll, [host]).result()[host] is None:
                        assert time.monotonic() < deadline, agents[host].log()
                        time.sleep(0.1)

            bad: list[str] = []
            converged_at: float | None = None
            started = time.monotonic()
            views: dict[int, dict[str, int] | None] = {}
            while converged_at is None or time.monotonic() - converged_at < WINDOW_SECONDS:
                views = hub.submit(poll, hosts).result()
                now = time.monotonic()
                for host, view in views.items():
                    for name, status in (view or {}).items():
                        if status in FAILED_STATES:
                            bad.append(f"{now - started:.1f}s: {SUBNET}.{host} shows {name} {FAILED_STATES[status]}")
                bad += [f"{now - started:.1f}s: serfHealth critical on {node}"
                        for node in hub.submit(serf_health, hosts[0], "critical").result()]
                if converged_at is None:
                    if all(view == dict.fromkeys(NAMES, ALIVE) for view in views.values()):
                        converged_at = now
                        print(f"all five agents see five alive members after {now - started:.1f}s")
                    assert now - started < 30, f"no convergence within 30s: {views}"
                time.sleep(POLL_INTERVAL)

            arrived = dropped = 0
            for host in hosts:
                seen, lost = network.counters(host)
                arrived, dropped = arrived + seen, dropped + lost
            logs = {host: agent.log() for host, agent in agents.items()}
            suspicions = sum(len(_SUSPECT.findall(text)) for text in logs.values())
            refutations = sum(len(_REFUTE.findall(text)) for text in logs.values())
            rescues = sum(len(_TCP_RESCUE.findall(text)) for text in logs.values())
            print(f"serf datagrams arrived {arrived}, dropped {dropped} ({100 * dropped / max(arrived, 1):.1f} %); "
                  f"probes answered only over TCP {rescues}, suspicions {suspicions}, refutations {refutations}")
            assert bad == []
            assert all(view == dict.fromkeys(NAMES, ALIVE) for view in views.values()), views
            assert hub.submit(serf_health, hosts[0], "passing").result() == NAMES
            # The fault took hold: the gossip crossed the rules (five agents probing once a second is ten
            # datagrams a second with the acks), and about a tenth of it was dropped.
            assert arrived > 8 * WINDOW_SECONDS
            assert 0.07 < dropped / arrived < 0.13
        finally:
            for host, agent in agents.items():
                agent.kill()
                print(f"---- {SUBNET}.{host} log (tail) ----")
                print("\n".join(agent.log().splitlines()[-20:]))
