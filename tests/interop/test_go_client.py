"""The official Go client `github.com/hashicorp/consul/api` against a real `consulpy agent -dev` and against
a follower of a three-server cluster (the `consul` fixture of tests/interop/conftest.py).

Builds tests/interop/go (a small program printing one `OK <step>` / `FAIL <step>: <reason>` line per
step) once per session and runs it with CONSUL_HTTP_ADDR pointing at the agent and INTEROP_SERVERS saying
how many servers to expect. Skips when `go` is missing or the build cannot fetch its modules (run
`go mod download` in tests/interop/go first when the network is restricted).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.interop.conftest import Consul

GO_DIR = Path(__file__).resolve().parent / "go"
BINARY = GO_DIR / "bin" / "interop"

EXPECTED_STEPS = [
    "status-leader",
    "status-peers",
    "kv-put",
    "kv-get",
    "kv-list",
    "kv-keys",
    "kv-cas-success",
    "kv-cas-failure",
    "kv-txn",
    "kv-special-keys",
    "kv-delete-tree",
    "kv-blocking-wakeup",
    "kv-blocking-timeout",
    "watch-keyprefix",
    "agent-service-register",
    "agent-update-ttl",
    "health-service-passing",
    "health-service-tags",
    "health-service-critical",
    "catalog-services",
    "catalog-nodes",
    "catalog-service",
    "agent-self",
    "agent-service-get",
    "agent-service-hash-blocking",
    "agent-check-register",
    "agent-maintenance",
    "health-checks",
    "health-blocking-wakeup",
    "catalog-node",
    "catalog-blocking-wakeup",
    "agent-service-replace-checks",
    "catalog-register",
    "agent-service-deregister",
    "session-create",
    "session-info",
    "session-list",
    "session-destroy",
    "lock-acquire",
    "lock-contended",
    "lock-unlock",
    "lock-second-acquire",
    "semaphore",
    "lock-lost-on-session-destroy",
]

# Build failures caused by the environment (no network, proxy down, Go too old) rather than by the code.
_ENVIRONMENT_ERRORS = (
    "dial tcp",
    "no such host",
    "connection refused",
    "i/o timeout",
    "tls handshake timeout",
    "proxy.golang.org",
    "goproxy=off",
    "module lookup disabled",
    "requires go >=",
    "toolchain not available",
)


@pytest.fixture(scope="session")
def go_binary() -> Path:
    """Build the interop program once; skip (with the reason) when that is impossible here."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go interop: `go` is not installed")
    env = dict(os.environ, GOFLAGS="-mod=mod")
    try:
        result = subprocess.run([go, "build", "-o", str(BINARY), "./"], cwd=GO_DIR, env=env, capture_output=True,
                                text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("Go interop: `go build` did not finish within 300 s (module download stalled?)")
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        if any(marker in output.lower() for marker in _ENVIRONMENT_ERRORS):
            pytest.skip(f"Go interop: cannot build (modules not downloadable?): {output.splitlines()[-1]}")
        pytest.fail(f"Go interop program does not build:\n{output}")
    return BINARY


@pytest.mark.timeout(420)
def test_go_api_client(go_binary: Path, consul: Consul) -> None:
    env = dict(os.environ, CONSUL_HTTP_ADDR=f"{consul.follower.address}:8500",
               INTEROP_SERVERS=str(len(consul.servers)))
    for name in ("CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_SSL", "CONSUL_HTTP_AUTH"):
        env.pop(name, None)
    try:
        result = subprocess.run([str(go_binary)], env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"Go interop program hung; output so far:\n{exc.stdout!r}{consul.logs()}")
    lines = result.stdout.splitlines()
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}{consul.logs()}"
    results = {}
    for line in lines:
        status, _, rest = line.partition(" ")
        results[rest.split(":", 1)[0]] = line
        assert status in ("OK", "FAIL"), f"unexpected output line {line!r}\n{report}"
    failed = [results.get(step, f"MISSING {step}") for step in EXPECTED_STEPS if results.get(step) != f"OK {step}"]
    assert not failed, "\n".join(failed) + "\n" + report
    assert result.returncode == 0, report
    assert sorted(results) == sorted(EXPECTED_STEPS), report
    consul.assert_no_traceback()
