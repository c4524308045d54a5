"""Shared benchmark plumbing: start a dev agent on a loopback address, time things, clean up by PID.

Imports: stdlib only (benchmarks must not depend on the test extras).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def http_get(url: str, timeout: float = 1.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read()


def http_put(url: str, data: bytes, timeout: float = 5.0) -> bytes:
    request = urllib.request.Request(url, data=data, method="PUT")
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return reply.read()


class DevAgent:
    """A `consulpy agent -dev` on `address`, started and stopped by PID."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://{self.address}:8500"

    def start(self, limit: float = 10.0) -> float:
        """Start the agent; returns seconds from exec until /v1/status/leader names a leader."""
        began = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consulpy", "agent", "-dev", "-bind", self.address, "-client", self.address,
             "-log-level", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        while time.monotonic() - began < limit:
            try:
                if json.loads(http_get(f"{self.http}/v1/status/leader", 0.5)):
                    return time.monotonic() - began
            except (OSError, ValueError):
                time.sleep(0.005)
        self.stop()
        raise RuntimeError("agent did not become leader")

    def rss_mib(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
