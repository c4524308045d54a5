"""Benchmark: N blocking queries on one key held by one `-dev` agent (15,000 target, 10,000 floor), one PUT.

Held from several loopback source addresses (one has only ~28K ephemeral ports) by lean asyncio protocols;
RSS growth per query comes from /proc, the wake-up is timed until every query returned the new value and
index. Fresh agent per run, 3 runs, medians. `python -m bench.blocking_hold [N [FLOOR_N]]`. Imports: stdlib,
uvloop (when installed), bench.common.
"""

from __future__ import annotations

import asyncio
import base64
import json
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from bench.common import DevAgent, Figure, cpu_seconds, format_figure, http_get, http_put, median

ADDRESS = "127.0.207.2"
HELD = 15_000
FLOOR_HELD = 10_000
RUNS = 3
KEY = "hot"
PER_SOURCE = 4_000
OPEN_BATCH = 500
PARK_TIMEOUT = 60.0
WAKE_TIMEOUT = 20.0


def raise_fd_limit(needed: int) -> int:
    """Raise RLIMIT_NOFILE to the hard limit; returns how many held connections this process can afford."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return min(needed, hard - 200)


def source_addresses(agent_address: str, count: int) -> list[str]:
    """Enough 127.A.B.x source addresses for `count` connections, PER_SOURCE each (10, 11, ... in the block)."""
    prefix = agent_address.rsplit(".", 1)[0]
    return [f"{prefix}.{10 + i}" for i in range(-(-count // PER_SOURCE))]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def wait_idle(pid: int, limit: float, quiet: float = 0.5) -> bool:
    """Wait until the process has used < 2 % CPU for `quiet` seconds: every request read and parked."""
    deadline = time.monotonic() + limit
    used = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = cpu_seconds(pid)
        if now - used < 0.02 * quiet:
            return True
        used = now
    return False


class HeldQuery(asyncio.Protocol):
    """One keep-alive connection carrying one blocking GET; remembers when and what the response was.

    The connection stays open after the response, as a real watcher's would for its next query, so
    the wake-up measured is the agent answering, not the agent also tearing down 15,000 connections.
    """

    __slots__ = ("body", "buffer", "done_at", "index", "request", "status", "transport")

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.BaseTransport | None = None
        self.buffer = bytearray()
        self.done_at = 0.0
        self.status = 0
        self.index = 0
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]  # uvloop's TCP transports are not asyncio's

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, body = bytes(self.buffer).partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.split(b"\r\n")
        fields = (line.partition(b":") for line in lines[1:])
        headers = {name.strip().lower(): value.strip() for name, _, value in fields}
        if len(body) < int(headers.get(b"content-length", b"0")):
            return
        self.done_at = time.monotonic()
        self.status = int(lines[0].split()[1])
        self.index = int(headers.get(b"x-consul-index", b"0"))
        self.body = body

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HeldQueries:
    """`count` blocking GETs on `key` past `index`, opened from `sources` in batches and held until closed."""

    def __init__(self, address: str, key: str, index: int, count: int) -> None:
        self.address = address
        request = f"GET /v1/kv/{key}?index={index}&wait=5m HTTP/1.1\r\nHost: {address}:8500\r\n\r\n".encode()
        self.queries = [HeldQuery(request) for _ in range(count)]
        self.sources = source_addresses(address, count)
        self.failed = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()

        async def connect(i: int, query: HeldQuery) -> None:
            source = self.sources[i // PER_SOURCE]
            try:
                await loop.create_connection(lambda: query, self.address, 8500, local_addr=(source, 0))
            except OSError:
                self.failed += 1

        for start in range(0, len(self.queries), OPEN_BATCH):
            batch = self.queries[start:start + OPEN_BATCH]
            await asyncio.gather(*(connect(start + i, q) for i, q in enumerate(batch)))

    def open_now(self) -> int:
        """How many are connected and still waiting for their response."""
        return sum(1 for q in self.queries if q.transport is not None and not q.done_at)

    def close(self) -> None:
        for query in self.queries:
            query.close()


async def put(address: str, key: str, value: bytes) -> int:
    """PUT over a fresh asyncio connection (a blocking client would stall the loop timing the wake-up)."""
    reader, writer = await asyncio.open_connection(address, 8500)
    writer.write(f"PUT /v1/kv/{key} HTTP/1.1\r\nHost: {address}:8500\r\nContent-Length: {len(value)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + value)
    reply = await reader.read()
    writer.close()
    return int(reply.split(b" ", 2)[1])


def key_index(agent: DevAgent, key: str) -> int:
    """The key's ModifyIndex, which is also the X-Consul-Index of a GET on it."""
    return int(json.loads(http_get(f"{agent.http}/v1/kv/{key}"))[0]["ModifyIndex"])


async def hold_and_wake(agent: DevAgent, count: int) -> dict[str, float]:
    """One run: hold `count` queries, measure RSS per query, PUT once, time the wake-up."""
    assert agent.proc is not None
    pid = agent.proc.pid
    http_put(f"{agent.http}/v1/kv/{KEY}", b"before")
    index = key_index(agent, KEY)
    await wait_idle(pid, 5.0)
    rss_before = rss_kib(pid)
    held = HeldQueries(agent.address, KEY, index, count)
    began = time.monotonic()
    await held.open()
    parked = await wait_idle(pid, PARK_TIMEOUT)
    park_seconds = time.monotonic() - began
    holding = held.open_now()
    rss_after = rss_kib(pid)
    new_value = b"after-%d" % time.monotonic_ns()
    used = cpu_seconds(pid)
    sent = time.monotonic()
    status = await put(agent.address, KEY, new_value)
    deadline = sent + WAKE_TIMEOUT
    while held.open_now() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    wake_cpu = cpu_seconds(pid) - used
    expected = base64.b64encode(new_value)
    woken = [q for q in held.queries if q.done_at and q.status == 200 and q.index > index and expected in q.body]
    delays = sorted(q.done_at - sent for q in woken)
    held.close()
    if status != 200 or not parked:
        print(f"  warning: PUT status {status}, agent idle before the PUT: {parked}", flush=True)
    result = {
        "held": float(holding),
        "kib_each": (rss_after - rss_before) / max(holding, 1),
        "woken": float(len(woken)),
        "p50": delays[len(delays) // 2] if delays else float("inf"),
        "last": delays[-1] if len(woken) == holding and delays else float("inf"),
        "park": park_seconds,
        "cpu_us_each": 1e6 * wake_cpu / max(len(woken), 1),
    }
    print(f"  {holding} held of {count} opened ({held.failed} failed to connect) in {park_seconds:.1f} s; "
          f"RSS +{(rss_after - rss_before) / 1024:.1f} MiB = {result['kib_each']:.2f} KiB each; "
          f"one PUT woke {len(woken)} with the new value, p50 {result['p50']:.3f} s, last {result['last']:.3f} s "
          f"(agent CPU {result['cpu_us_each']:.0f} µs per woken query)",
          flush=True)
    return result


def run_loop(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run `main()` on uvloop when it is installed (the agent uses it too), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def runs(count: int) -> list[dict[str, float]]:
    """RUNS fresh agents, each holding `count` queries and woken by one PUT."""
    results = []
    for _ in range(RUNS):
        agent = DevAgent(ADDRESS)
        try:
            agent.start()
            results.append(run_loop(partial(hold_and_wake, agent, count)))
        finally:
            agent.stop()
    return results


def main(count: int = HELD, floor_count: int = FLOOR_HELD) -> list[Figure]:
    """The target shape (`count` held) and the floor's (`floor_count` held, all woken within 1 s)."""
    count, floor_count = raise_fd_limit(count), raise_fd_limit(floor_count)
    target, floor = runs(count), runs(floor_count)
    return [
        (f"blocking queries on one key held at once (of {count})", median([r["held"] for r in target]),
         f"≥ {HELD}"),
        ("agent RSS per held blocking query (KiB)", median([r["kib_each"] for r in target]), "≤ 12"),
        (f"one PUT wakes {count} held queries: last one returned (s)", median([r["last"] for r in target]),
         "≤ 0.5"),
        (f"one PUT wakes {floor_count} held queries: last one returned (s), the floor",
         median([r["last"] for r in floor]), "≤ 1"),
    ]


if __name__ == "__main__":
    for figure in main(*(int(arg) for arg in sys.argv[1:3])):
        print(format_figure(figure))
