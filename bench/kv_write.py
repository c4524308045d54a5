"""Benchmark: replicated KV writes on a three-server cluster, next to a three-member etcd 3.4 cluster.

Three `consulpy agent -server -bootstrap-expect 3` processes (raft_multiplier 1, their own data directories,
fsync on) and three etcd members, all on this machine's loopback. `wrk` PUTs a 256-byte value to the leader
at 64 connections (throughput and p99) and at 1 connection (sequential p50); etcd gets the same load through
its HTTP/JSON gateway (`/v3/kv/put`). Runs alternate, 3 each; figures are medians.
`python -m bench.kv_write [seconds]`. Imports: stdlib, bench.common.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import (
    ROOT,
    Figure,
    format_figure,
    median,
    missing_tools,
    poll_json,
    skip_line,
    stop_process,
    wrk_latency,
)

PREFIX = "127.0.204"
ETCD_PREFIX = "127.0.205"
HOSTS = (2, 3, 4)
VALUE = "v" * 256
SECONDS = 10.0
RUNS = 3


def start_servers(work: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    """Three servers; returns their processes and the leader's HTTP URL once one is elected."""
    procs = []
    for host in HOSTS:
        address = f"{PREFIX}.{host}"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "consulpy", "agent", "-server", "-bootstrap-expect", "3", "-bind", address,
             "-client", address, "-node", f"bench-{host}", "-data-dir", str(work / f"s{host}"),
             "-retry-join", f"{PREFIX}.{HOSTS[0]}", "-retry-interval", "1s", "-log-level", "warn", "-hcl",
             "performance { raft_multiplier = 1 }"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT))
    leader = poll_json(f"http://{PREFIX}.{HOSTS[0]}:8500/v1/status/leader", lambda leader: leader, 30)
    if leader:
        return procs, f"http://{leader.rpartition(':')[0]}:8500"
    for proc in procs:
        stop_process(proc)
    raise RuntimeError("the consulpy cluster elected no leader")


def start_etcd(work: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    members = {f"e{host}": f"{ETCD_PREFIX}.{host}" for host in HOSTS}
    cluster = ",".join(f"{name}=http://{ip}:2380" for name, ip in members.items())
    procs = []
    for name, ip in members.items():
        procs.append(subprocess.Popen(
            ["etcd", "--name", name, "--data-dir", str(work / name), "--listen-client-urls", f"http://{ip}:2379",
             "--advertise-client-urls", f"http://{ip}:2379", "--listen-peer-urls", f"http://{ip}:2380",
             "--initial-advertise-peer-urls", f"http://{ip}:2380", "--initial-cluster", cluster,
             "--initial-cluster-state", "new", "--log-level", "error", "--logger", "zap",
             "--log-outputs", str(work / f"{name}.log")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    url = f"http://{ETCD_PREFIX}.{HOSTS[0]}:2379"
    if poll_json(f"{url}/health", lambda health: health.get("health") == "true", 30):
        return procs, url
    for proc in procs:
        stop_process(proc)
    raise RuntimeError("etcd did not become healthy")


def main(seconds: float = SECONDS) -> list[Figure]:
    missing = missing_tools("wrk", "etcd")
    if missing:
        print(skip_line("kv_write", missing), flush=True)
        return []
    results: dict[str, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="kv-write-") as tmp:
        work = Path(tmp)
        ours: list[subprocess.Popen[bytes]] = []
        theirs: list[subprocess.Popen[bytes]] = []
        try:
            ours, leader = start_servers(work)
            theirs, etcd_url = start_etcd(work)
            put_script = work / "put.lua"
            put_script.write_text(f'wrk.method = "PUT"\nwrk.body = "{VALUE}"\n')
            body = json.dumps({"key": base64.b64encode(b"benchkey").decode(),
                               "value": base64.b64encode(VALUE.encode()).decode()})
            etcd_script = work / "etcd.lua"
            etcd_script.write_text(f'wrk.method = "POST"\nwrk.body = \'{body}\'\n'
                                   'wrk.headers["Content-Type"] = "application/json"\n')
            for run in range(1, RUNS + 1):
                for connections in (64, 1):
                    results.setdefault(f"consulpy-{connections}", []).append(
                        wrk_latency(f"{leader}/v1/kv/benchkey", seconds, f"run {run} consulpy c{connections}",
                                    str(put_script), connections))
                    results.setdefault(f"etcd-{connections}", []).append(
                        wrk_latency(f"{etcd_url}/v3/kv/put", seconds, f"run {run} etcd c{connections}",
                                    str(etcd_script), connections))
        finally:
            for proc in (*ours, *theirs):
                stop_process(proc)

    def pick(name: str, field: int) -> float:
        return median([r[field] for r in results[name]])

    return [
        ("KV PUT writes/s, 3 servers, wrk -c64 (peer: 3-member etcd 3.4)", pick("consulpy-64", 0), "≥ 3000",
         pick("etcd-64", 0)),
        ("KV PUT p99 ms at 64 clients, 3 servers (peer: etcd)", pick("consulpy-64", 2), "≤ 50", pick("etcd-64", 2)),
        ("KV PUT writes/s, 3 servers, 1 client (peer: etcd)", pick("consulpy-1", 0), "", pick("etcd-1", 0)),
        ("KV PUT sequential p50 ms, 3 servers (peer: etcd)", pick("consulpy-1", 1), "≤ 2", pick("etcd-1", 1)),
    ]


if __name__ == "__main__":
    for figure in main(float(sys.argv[1]) if len(sys.argv) > 1 else SECONDS):
        print(format_figure(figure))
