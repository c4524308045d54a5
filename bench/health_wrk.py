"""Benchmark: `GET /v1/health/service/web?passing` with 5 instances, `wrk -t2 -c64`, median of 3 runs.

The instances are registered on five nodes through `/v1/catalog/register`, each with a passing service
check; the benchmark checks that all five come back before it loads the agent. There is no peer.
`python -m bench.health_wrk [seconds]`.
Imports: stdlib, bench.common.
"""

from __future__ import annotations

import json
import sys

from bench.common import DevAgent, Figure, format_figure, http_get, http_put, median, missing_tools, run_wrk, skip_line

ADDRESS = "127.0.203.2"
INSTANCES = 5
SECONDS = 10.0
RUNS = 3


def register_web(agent: DevAgent, instances: int) -> None:
    """Register `instances` instances of service `web`, one per node, each with a passing check."""
    for i in range(1, instances + 1):
        node = f"web-node-{i}"
        http_put(f"{agent.http}/v1/catalog/register", json.dumps({
            "Node": node, "Address": f"10.0.0.{i}", "NodeMeta": {"rack": f"r{i}"},
            "Service": {"ID": "web", "Service": "web", "Port": 8080, "Tags": ["v1", "primary"],
                        "Meta": {"version": "1.0"}},
            "Checks": [{"Node": node, "CheckID": "service:web", "Name": "web alive", "Status": "passing",
                        "ServiceID": "web", "Output": "HTTP GET http://localhost:8080/health: 200 OK"}],
        }).encode())


def main(seconds: float = SECONDS) -> list[Figure]:
    missing = missing_tools("wrk")
    if missing:
        print(skip_line("health_wrk", missing), flush=True)
        return []
    agent = DevAgent(ADDRESS)
    try:
        agent.start()
        register_web(agent, INSTANCES)
        url = f"{agent.http}/v1/health/service/web?passing"
        body = http_get(url)
        found = len(json.loads(body))
        if found != INSTANCES:
            raise RuntimeError(f"expected {INSTANCES} passing instances, got {found}")
        print(f"  response body: {len(body)} bytes", flush=True)
        rates = [run_wrk(url, seconds, f"run {run} consulpy") for run in range(1, RUNS + 1)]
    finally:
        agent.stop()
    return [(f"GET /v1/health/service/web?passing ({INSTANCES} instances) req/s, wrk -c64", median(rates), "≥ 10000")]


if __name__ == "__main__":
    for figure in main(float(sys.argv[1]) if len(sys.argv) > 1 else SECONDS):
        print(format_figure(figure))
