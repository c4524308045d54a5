"""Benchmark: `GET /v1/kv/<key>` req/s (wrk -t2 -c64) on one agent while 10,000 blocking queries are held on
another key (bench.blocking_hold), next to the same agent with none held (the peer column); 3 alternating
runs, medians. Also prints the agent's CPU µs per request, steadier than req/s on a shared machine.
`python -m bench.read_under_hold [seconds]`. Imports: stdlib, bench.common, bench.blocking_hold.
"""

from __future__ import annotations

import asyncio
import sys

from bench.blocking_hold import HeldQueries, key_index, raise_fd_limit, run_loop, wait_idle
from bench.common import (
    DevAgent,
    Figure,
    cpu_seconds,
    format_figure,
    http_put,
    median,
    missing_tools,
    run_wrk,
    skip_line,
)

ADDRESS = "127.0.208.2"
HELD = 10_000
SECONDS = 10.0
RUNS = 3
READ_KEY = "benchkey"
HELD_KEY = "watched"


async def measured_wrk(pid: int, url: str, seconds: float, label: str) -> float:
    """A wrk run; also prints the agent's CPU time per request, which a busy machine disturbs less."""
    used = cpu_seconds(pid)
    rate = await asyncio.to_thread(run_wrk, url, seconds, label)
    print(f"    agent CPU {1e6 * (cpu_seconds(pid) - used) / (rate * seconds):.1f} µs per request", flush=True)
    return rate


async def read_with_and_without(agent: DevAgent, count: int, seconds: float, run: int) -> tuple[float, float]:
    """(req/s with none held, req/s with `count` held) for one run."""
    assert agent.proc is not None
    pid = agent.proc.pid
    url = f"{agent.http}/v1/kv/{READ_KEY}"
    plain = await measured_wrk(pid, url, seconds, f"run {run} none held")
    held = HeldQueries(agent.address, HELD_KEY, key_index(agent, HELD_KEY), count)
    try:
        await held.open()
        await wait_idle(pid, 60.0)
        holding = held.open_now()
        loaded = await measured_wrk(pid, url, seconds, f"run {run} {holding} held")
        if held.open_now() != holding:
            print(f"  warning: {holding - held.open_now()} held queries returned during the run", flush=True)
    finally:
        held.close()
    await wait_idle(pid, 30.0)
    return plain, loaded


def main(seconds: float = SECONDS, count: int = HELD) -> list[Figure]:
    missing = missing_tools("wrk")
    if missing:
        print(skip_line("read_under_hold", missing), flush=True)
        return []
    count = raise_fd_limit(count)
    agent = DevAgent(ADDRESS)
    plain, loaded = [], []
    try:
        agent.start()
        http_put(f"{agent.http}/v1/kv/{READ_KEY}", b"v" * 256)
        http_put(f"{agent.http}/v1/kv/{HELD_KEY}", b"unchanged")
        for run in range(1, RUNS + 1):
            without, with_held = run_loop(lambda run=run: read_with_and_without(agent, count, seconds, run))
            plain.append(without)
            loaded.append(with_held)
    finally:
        agent.stop()
    return [(f"GET /v1/kv/<key> req/s with {count} blocking queries held (peer: same agent, none held)",
             median(loaded), "ratio ≥ 0.80", median(plain))]


if __name__ == "__main__":
    for figure in main(float(sys.argv[1]) if len(sys.argv) > 1 else SECONDS):
        print(format_figure(figure))
