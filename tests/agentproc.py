"""Real agent processes for tests: each on its own loopback address with Consul's default ports.

`LoopbackBlocks` hands every test its own 127.A.B.0/24 block (A from the pytest process id, so parallel
runs do not collide); `AgentProcess` starts `python -m consulpy agent …`, waits until it leads, and
kills it by PID. Imports: stdlib, requests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], Any], timeout: float = 8.0) -> Any:
    """Poll `predicate` until it returns something truthy (returned), failing the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def port_free(host: str, port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        finally:
            sock.close()
    return True


class LoopbackBlocks:
    """Allocates 127.A.B.x blocks whose default ports are free."""

    def __init__(self) -> None:
        self._a = 10 + os.getpid() % 200
        self._b = 0

    def next_block(self) -> str:
        while True:
            self._b += 1
            if self._b > 254:
                self._b = 1
                self._a = 10 + (self._a - 9) % 200
            prefix = f"127.{self._a}.{self._b}"
            if all(port_free(f"{prefix}.{host}", p) for host in (2, 3, 4) for p in (8500, 8600)):
                return prefix


class AgentProcess:
    """One `consulpy agent` process bound to `address`, logging to a file the test can read."""

    def __init__(self, address: str, args: Sequence[str] = ("-dev",), env: dict[str, str] | None = None) -> None:
        self.address = address
        self.args = list(args)
        self.log_path = Path(tempfile.mkstemp(prefix="consulpy-agent-", suffix=".log")[1])
        self.env = dict(os.environ, **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://{self.address}:8500"

    @property
    def node_name(self) -> str:
        return f"node-{self.address.replace('.', '-')}"

    def start(self, wait: float = 10.0) -> AgentProcess:
        self.launch()
        self.wait_ready(wait)
        return self

    def command(self) -> list[str]:
        """The `consulpy` arguments this agent runs with."""
        return ["agent", "-bind", self.address, "-client", self.address, "-node", self.node_name, *self.args]

    def launch(self) -> AgentProcess:
        """Start the process without waiting (servers of a new cluster have no leader until all are up)."""
        cmd = [sys.executable, "-m", "consulpy", *self.command()]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=self.env)
        return self

    def kill(self) -> None:
        """kill -9 by PID, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def wait_ready(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.http}/v1/status/leader", timeout=1).json():
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"agent not ready within {wait}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)
