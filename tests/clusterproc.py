"""Real multi-server clusters for tests: `consulpy agent -server -bootstrap-expect N` processes, one per
loopback address of the test's block (.2, .3, …) with Consul's default ports and their own data directories.

Imports: stdlib, requests, tests.agentproc.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from tests.agentproc import AgentProcess, wait_until


class ServerSet:
    """Servers of one test; all are killed by PID and their logs removed at `cleanup()`."""

    def __init__(self, prefix: str, data_root: Path, expect: int = 3, raft_multiplier: int = 1,
                 extra_hcl: str = "") -> None:
        self.prefix = prefix
        self.data_root = data_root
        self.expect = expect
        self.hcl = f"performance {{ raft_multiplier = {raft_multiplier} }}\n{extra_hcl}"
        self.servers: dict[int, AgentProcess] = {}

    def address(self, host: int) -> str:
        return f"{self.prefix}.{host}"

    def args(self, host: int, join: int) -> tuple[str, ...]:
        return ("-server", "-bootstrap-expect", str(self.expect), "-data-dir", str(self.data_root / f"s{host}"),
                "-join", self.address(join), "-retry-interval", "1s", "-hcl", self.hcl)

    def launch(self, host: int, join: int = 2) -> AgentProcess:
        agent = self.servers.get(host)
        if agent is None:
            agent = self.servers[host] = AgentProcess(self.address(host), self.args(host, join))
        return agent.launch()

    def launch_all(self, hosts: Sequence[int]) -> None:
        for host in hosts:
            self.launch(host)

    def leader_of(self, host: int) -> str:
        try:
            value: str = requests.get(f"{self.servers[host].http}/v1/status/leader", timeout=1).json()
            return value
        except (requests.RequestException, ValueError):
            return ""

    def agreed_leader(self, hosts: Sequence[int], timeout: float = 20.0) -> int:
        """Wait until every host in `hosts` names the same leader among them; returns its host number."""
        def agreed() -> int:
            seen = {self.leader_of(host) for host in hosts}
            if len(seen) != 1:
                return 0
            (leader,) = seen
            for host in hosts:
                if leader == f"{self.address(host)}:8300":
                    return host
            return 0

        host: int = wait_until(agreed, timeout)
        return host

    def get(self, host: int, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.servers[host].http}{path}", params=params, timeout=10)

    def cleanup(self) -> None:
        """Kill every server; their log tails go to stdout, which pytest shows when the test failed."""
        for host, agent in self.servers.items():
            agent.kill()
            print(f"---- server .{host} log (tail) ----")
            print("\n".join(agent.log().splitlines()[-40:]))
            agent.cleanup()
