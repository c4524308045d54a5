"""Benchmark: `web.service.consul A` over UDP with dnsperf, the agent's DNS next to unbound in the same run.

Same dnsperf parameters as the anchor (performance.md §2.4): one client, one thread, 100 queries in
flight. The agent serves one `web` instance registered through the catalog; the peer is unbound with one
thread and a `local-data` record, so both answer with a single A record. Runs alternate between the two
servers, 3 each; the figures are medians. `python -m bench.dns_perf [seconds]`.
Imports: stdlib, bench.common.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    DevAgent,
    Figure,
    format_figure,
    http_put,
    median,
    missing_tools,
    skip_line,
    stop_process,
    tool_field,
)

ADDRESS = "127.0.204.2"
PEER_ADDRESS = "127.0.204.3"
PORT = 8600
NAME = "web.service.consul"
SECONDS = 10.0
RUNS = 3

UNBOUND_CONF = """server:
  interface: {address}
  port: {port}
  num-threads: 1
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{work}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  local-zone: "service.consul." static
  local-data: "{name}. 0 IN A 10.0.0.1"
remote-control:
  control-enable: no
"""


def answers(address: str, port: int = PORT, timeout: float = 0.5) -> int:
    """Number of answer records for `NAME A` from the server, or -1 if it does not reply NOERROR."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in NAME.split(".")) + b"\0"
    query = struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!2H", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query, (address, port))
            reply = sock.recv(4096)
        except OSError:
            return -1
    ident, flags, _, count = struct.unpack("!4H", reply[:8])
    return count if ident == 0x1234 and flags & 0xF == 0 else -1


def wait_answering(address: str, limit: float = 10.0) -> None:
    began = time.monotonic()
    while time.monotonic() - began < limit:
        if answers(address) > 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"no DNS answer for {NAME} from {address}:{PORT}")


def run_dnsperf(address: str, queries: Path, seconds: float, label: str) -> float:
    """One dnsperf run (`-c 1 -T 1 -q 100 -l <seconds>`); prints a line for it and returns queries/s."""
    command = ["dnsperf", "-s", address, "-p", str(PORT), "-d", str(queries), "-l", f"{seconds:g}",
               "-c", "1", "-T", "1", "-q", "100"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    qps = float(tool_field(r"Queries per second:\s+([\d.]+)", out))
    lost = tool_field(r"Queries lost:\s+(\d+)", out)
    latency = float(tool_field(r"Average Latency \(s\):\s+([\d.]+)", out)) * 1e3
    codes = tool_field(r"Response codes:\s+(.*)$", out)
    print(f"  {label}: {qps:.0f} qps, avg {latency:.2f} ms, lost {lost}, {codes}", flush=True)
    return qps


def main(seconds: float = SECONDS) -> list[Figure]:
    missing = missing_tools("dnsperf", "unbound")
    if missing:
        print(skip_line("dns_perf", missing), flush=True)
        return []
    agent = DevAgent(ADDRESS)
    unbound: subprocess.Popen[bytes] | None = None
    ours, theirs = [], []
    with tempfile.TemporaryDirectory(prefix="dns-perf-") as work:
        try:
            agent.start()
            http_put(f"{agent.http}/v1/catalog/register", json.dumps({
                "Node": "web-node-1", "Address": "10.0.0.1", "Service": {"ID": "web", "Service": "web", "Port": 80},
                "Checks": [{"CheckID": "service:web", "Name": "web alive", "Status": "passing", "ServiceID": "web"}],
            }).encode())
            wait_answering(ADDRESS)
            conf = Path(work) / "unbound.conf"
            conf.write_text(UNBOUND_CONF.format(address=PEER_ADDRESS, port=PORT, work=work, name=NAME))
            unbound = subprocess.Popen(["unbound", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            wait_answering(PEER_ADDRESS)
            queries = Path(work) / "queries.txt"
            queries.write_text(f"{NAME} A\n" * 1000)
            for run in range(1, RUNS + 1):
                ours.append(run_dnsperf(ADDRESS, queries, seconds, f"run {run} consulpy"))
                theirs.append(run_dnsperf(PEER_ADDRESS, queries, seconds, f"run {run} unbound"))
        finally:
            stop_process(unbound)
            agent.stop()
    return [(f"DNS {NAME} A qps, dnsperf -c1 -T1 -q100 (peer: unbound 1 thread)", median(ours), "≥ 60000",
             median(theirs))]


if __name__ == "__main__":
    for figure in main(float(sys.argv[1]) if len(sys.argv) > 1 else SECONDS):
        print(format_figure(figure))
