"""Benchmark: DNS A lookups over UDP when every answer is rebuilt (no answer-cache hits).

The agent holds 12,000 services (`web0` … `web11999`, one instance each); dnsperf cycles through all 12,000
names, more than the answer cache keeps (it is emptied when full), so no query finds its answer cached and
each one is parsed, resolved from the store and rendered. Same dnsperf shape as `dns_perf` (one client, one
thread, 100 in flight); 3 runs, median. `python -m bench.dns_rebuild [seconds]`.
Imports: stdlib, bench.common, bench.dns_perf, consulpy.dns.server (the cache bound).
"""

from __future__ import annotations

import http.client
import json
import sys
import tempfile
from pathlib import Path

from bench.common import DevAgent, Figure, format_figure, median, missing_tools, skip_line
from bench.dns_perf import PORT, run_dnsperf
from consulpy.dns.server import MAX_CACHE_ENTRIES

ADDRESS = "127.0.207.2"
SERVICES = 12_000
SECONDS = 10.0
RUNS = 3


def register_services(address: str, count: int) -> None:
    """Register `count` single-instance services over one keep-alive connection."""
    connection = http.client.HTTPConnection(address, 8500, timeout=10)
    try:
        for i in range(count):
            body = json.dumps({"Node": f"node-{i % 50}", "Address": f"10.1.{i % 50}.1",
                               "Service": {"ID": f"web{i}", "Service": f"web{i}", "Port": 80}})
            connection.request("PUT", "/v1/catalog/register", body)
            response = connection.getresponse()
            if json.loads(response.read()) is not True:
                raise RuntimeError(f"registering web{i} failed: HTTP {response.status}")
    finally:
        connection.close()


def main(seconds: float = SECONDS) -> list[Figure]:
    missing = missing_tools("dnsperf")
    if missing:
        print(skip_line("dns_rebuild", missing), flush=True)
        return []
    assert SERVICES > MAX_CACHE_ENTRIES, "the name set must not fit the answer cache"
    agent = DevAgent(ADDRESS)
    rates = []
    with tempfile.TemporaryDirectory(prefix="dns-rebuild-") as work:
        try:
            agent.start()
            register_services(ADDRESS, SERVICES)
            queries = Path(work) / "queries.txt"
            queries.write_text("".join(f"web{i}.service.consul A\n" for i in range(SERVICES)))
            for run in range(1, RUNS + 1):
                rates.append(run_dnsperf(ADDRESS, queries, seconds, f"run {run} consulpy, every answer rebuilt"))
        finally:
            agent.stop()
    return [(f"DNS A qps with every answer rebuilt ({SERVICES} names cycled, port {PORT})", median(rates),
             "≥ 20000")]


if __name__ == "__main__":
    for figure in main(float(sys.argv[1]) if len(sys.argv) > 1 else SECONDS):
        print(format_figure(figure))
