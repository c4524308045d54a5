"""Benchmark: `GET /v1/kv/<key>` at default consistency with `wrk -t2 -c64`, next to etcd 3.4 in the same run.

The peer is a single etcd member on loopback, read with a serializable range (a local read, like Consul's
default consistency on a single server) through etcd's HTTP/JSON gateway, as in the anchor measurements
(performance.md §2.2). Both hold one 8-byte key with a 256-byte value. Runs alternate between the two
servers, 3 each; the figures are medians. `python -m bench.kv_wrk [seconds]`.
Imports: stdlib, bench.common.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import (
    DevAgent,
    Figure,
    format_figure,
    http_put,
    median,
    missing_tools,
    poll_json,
    run_wrk,
    skip_line,
    stop_process,
)

ADDRESS = "127.0.202.2"
ETCD_ADDRESS = "127.0.202.3"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
KEY = "benchkey"
VALUE = b"v" * 256
SECONDS = 10.0
RUNS = 3


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def start_etcd(data_dir: str, limit: float = 20.0) -> subprocess.Popen[bytes]:
    """A single-member etcd on ETCD_ADDRESS, started and waited for until /health says so."""
    client = f"http://{ETCD_ADDRESS}:{ETCD_CLIENT_PORT}"
    peer = f"http://{ETCD_ADDRESS}:{ETCD_PEER_PORT}"
    proc = subprocess.Popen(
        ["etcd", "--name", "bench", "--data-dir", data_dir, "--listen-client-urls", client,
         "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"bench={peer}", "--initial-cluster-state", "new", "--logger", "zap",
         "--log-level", "error", "--log-outputs", str(Path(data_dir).parent / "etcd.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if poll_json(f"{client}/health", lambda health: health.get("health") == "true", limit):
        return proc
    stop_process(proc)
    raise RuntimeError("etcd did not become healthy")


def main(seconds: float = SECONDS) -> list[Figure]:
    missing = missing_tools("wrk", "etcd")
    if missing:
        print(skip_line("kv_wrk", missing), flush=True)
        return []
    agent = DevAgent(ADDRESS)
    etcd: subprocess.Popen[bytes] | None = None
    ours, theirs = [], []
    with tempfile.TemporaryDirectory(prefix="kv-wrk-") as work:
        try:
            agent.start()
            http_put(f"{agent.http}/v1/kv/{KEY}", VALUE)
            etcd = start_etcd(str(Path(work) / "etcd"))
            etcd_url = f"http://{ETCD_ADDRESS}:{ETCD_CLIENT_PORT}"
            http_put(f"{etcd_url}/v3/kv/put", json.dumps({"key": _b64(KEY.encode()), "value": _b64(VALUE)}).encode(),
                     method="POST")
            body = json.dumps({"key": _b64(KEY.encode()), "serializable": True})
            if _b64(VALUE) not in http_put(f"{etcd_url}/v3/kv/range", body.encode(), method="POST").decode():
                raise RuntimeError("etcd range did not return the value")
            script = Path(work) / "range.lua"
            script.write_text(f'wrk.method = "POST"\nwrk.body = \'{body}\'\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            for run in range(1, RUNS + 1):
                ours.append(run_wrk(f"{agent.http}/v1/kv/{KEY}", seconds, f"run {run} consulpy"))
                theirs.append(run_wrk(f"{etcd_url}/v3/kv/range", seconds, f"run {run} etcd", str(script)))
        finally:
            stop_process(etcd)
            agent.stop()
    return [("GET /v1/kv/<key> req/s, wrk -c64 (peer: etcd 3.4 serializable range)", median(ours), "≥ 14000",
             median(theirs))]


if __name__ == "__main__":
    for figure in main(float(sys.argv[1]) if len(sys.argv) > 1 else SECONDS):
        print(format_figure(figure))
