"""Shared benchmark plumbing: start a dev agent on a loopback address, time things, clean up by PID.

Imports: stdlib only (benchmarks must not depend on the test extras).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# (name, value, target) or (name, value, target, peer value); the peer is named in `name`.
Figure = tuple[str, float, str] | tuple[str, float, str, float]


def http_get(url: str, timeout: float = 1.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read()


def http_put(url: str, data: bytes, timeout: float = 5.0, method: str = "PUT") -> bytes:
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return reply.read()


def poll_json(url: str, accept: Callable[[Any], Any], limit: float) -> Any:
    """Poll `url` until `accept` of its JSON body is truthy and return that; None once `limit` seconds pass."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        try:
            found = accept(json.loads(http_get(url, 0.5)))
            if found:
                return found
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


def missing_tools(*tools: str) -> list[str]:
    """The executables among `tools` that are not on PATH."""
    return [tool for tool in tools if shutil.which(tool) is None]


def skip_line(bench: str, missing: list[str]) -> str:
    return f"SKIP {bench}: missing {', '.join(missing)} (run `bash bench/setup.sh` as root)"


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process by PID, SIGKILL it if it is still there after 10 s."""
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def tool_field(pattern: str, out: str) -> str:
    match = re.search(pattern, out, re.M)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in tool output:\n{out}")
    return match.group(1)


def _ms(text: str) -> float:
    for suffix, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def wrk_latency(url: str, seconds: float, label: str, script: str | None = None,
                connections: int = 64) -> tuple[float, float, float]:
    """One `wrk -c<connections> -d<seconds>s --latency` run; prints a line for it, returns (req/s, p50 ms, p99 ms)."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    command += (["-s", script] if script else []) + [url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rate = float(tool_field(r"^Requests/sec:\s+([\d.]+)", out))
    p50, p99 = _ms(tool_field(r"^\s+50%\s+(\S+)", out)), _ms(tool_field(r"^\s+99%\s+(\S+)", out))
    errors = " ".join(line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line)
    print(f"  {label}: {rate:.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms {errors}".rstrip(), flush=True)
    return rate, p50, p99


def run_wrk(url: str, seconds: float, label: str, script: str | None = None) -> float:
    """One `wrk -t2 -c64` run; returns requests/s."""
    return wrk_latency(url, seconds, label, script)[0]


def format_figure(figure: Figure) -> str:
    """`name: value (target t)`, with the peer's value and our/peer ratio when the figure has a peer."""
    name, value, target = figure[0], figure[1], figure[2]
    if len(figure) == 4:
        peer = figure[3]
        return f"{name}: {value:.3f} vs peer {peer:.3f}, ratio {value / peer:.2f} (target {target})"
    return f"{name}: {value:.3f} (target {target})"


# Where agents started by the benchmarks keep their compiled bytecode (bench/results is gitignored).
BYTECODE_CACHE = ROOT / "bench" / "results" / "pycache"


def agent_env(bytecode_cache: bool = True) -> dict[str, str]:
    """The environment for an agent process. With `bytecode_cache`, compiled modules are kept and reused, as
    an installed agent has them (pip and the Docker image compile every module at install time); without it,
    the project's own modules are compiled from source at every start, as in this shared dev tree, whose
    environment sets PYTHONDONTWRITEBYTECODE.
    """
    env = dict(os.environ)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(BYTECODE_CACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class DevAgent:
    """A `consulpy agent -dev` on `address`, started and stopped by PID."""

    def __init__(self, address: str, bytecode_cache: bool = True) -> None:
        self.address = address
        self.bytecode_cache = bytecode_cache
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://{self.address}:8500"

    def start(self, limit: float = 10.0) -> float:
        """Start the agent; returns seconds from exec until /v1/status/leader names a leader."""
        last_error: Exception | None = None
        with tempfile.TemporaryFile() as log:
            began = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consulpy", "agent", "-dev", "-bind", self.address, "-client", self.address,
                 "-log-level", "warn"], stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT,
                env=agent_env(self.bytecode_cache))
            while time.monotonic() - began < limit:
                try:
                    if json.loads(http_get(f"{self.http}/v1/status/leader", 0.5)):
                        return time.monotonic() - began
                except (OSError, ValueError) as exc:
                    last_error = exc
                    time.sleep(0.005)
            self.stop()
            log.seek(0)
            raise RuntimeError(f"agent did not become leader (last poll: {last_error!r}); its stderr:\n"
                               f"{log.read()[-2000:].decode(errors='replace')}")

    def rss_mib(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        stop_process(self.proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
