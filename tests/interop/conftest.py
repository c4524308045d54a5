"""Where the interop clients point: one `consulpy agent -dev`, or a three-server Raft cluster (servers on .2,
.3 and .4 of the test's block, raft_multiplier = 1) whose client-facing agent is a follower, so every write
and default read a client sends is forwarded to the leader.

Imports: stdlib, pytest, requests, tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.agentproc import AgentProcess, wait_until
from tests.clusterproc import ServerSet

CLUSTER_HOSTS = (2, 3, 4)


@dataclass(slots=True, frozen=True)
class Consul:
    """The agents one client test talks to: `follower` is where clients point by default; on a dev agent
    `follower` and `leader` are the same process."""

    kind: str
    follower: AgentProcess
    leader: AgentProcess
    servers: tuple[AgentProcess, ...]

    def logs(self) -> str:
        return "".join(f"\n--- agent {agent.address} log:\n{agent.log()}" for agent in self.servers)

    def assert_no_traceback(self) -> None:
        broken = [agent.address for agent in self.servers if "Traceback" in agent.log()]
        assert not broken, f"Traceback in the log of {broken}{self.logs()}"


def _catalog_has_every_server(cluster: ServerSet, host: int) -> bool:
    """The leader registers each server in the catalog once it joined; clients count them."""
    try:
        nodes = cluster.get(host, "/v1/catalog/nodes").json()
    except (requests.RequestException, ValueError):
        return False
    return sorted(node["Address"] for node in nodes) == sorted(cluster.address(h) for h in CLUSTER_HOSTS)


@pytest.fixture(params=["dev", "cluster"])
def consul(request: pytest.FixtureRequest, loopback: str, tmp_path: Path,
           start_agent: Callable[..., AgentProcess]) -> Iterator[Consul]:
    """A dev agent on .2, or a three-server cluster on .2/.3/.4 with an agreed leader and a full catalog."""
    if request.param == "dev":
        agent = start_agent()
        yield Consul("dev", agent, agent, (agent,))
        return
    cluster = ServerSet(loopback, tmp_path)
    try:
        cluster.launch_all(CLUSTER_HOSTS)
        leader = cluster.agreed_leader(CLUSTER_HOSTS)
        follower = next(host for host in CLUSTER_HOSTS if host != leader)
        wait_until(lambda: _catalog_has_every_server(cluster, follower), timeout=15)
        servers = tuple(cluster.servers[host] for host in CLUSTER_HOSTS)
        yield Consul("cluster", cluster.servers[follower], cluster.servers[leader], servers)
    finally:
        cluster.cleanup()
