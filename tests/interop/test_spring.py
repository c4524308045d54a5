"""A Spring Cloud Consul application (tests/interop/spring) against a real `consulpy agent -dev` and against a
three-server cluster (the `consul` fixture of tests/interop/conftest.py), one instance on a follower and one
on the leader.

Builds the app once per session and flavour (`boot3`: Spring Boot 3.5 with Spring Cloud Consul 4.3 over the
Ecwid consul-api client; `boot4`: Spring Boot 4.0 with Spring Cloud Consul 5.0 and its own client; `boot27`:
Spring Boot 2.7 with Spring Cloud Consul 3.1, Ecwid again), starts two instances on their own loopback
addresses, and checks registration with TTL and HTTP checks, KV config and its watch, discovery with a
load-balanced call, and what SIGKILL and SIGTERM do to the registrations. Skips when `mvn`/`java` are missing
or Maven cannot fetch the dependencies; everything after a successful build fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.agentproc import AgentProcess, wait_until
from tests.interop.conftest import Consul

SPRING_DIR = Path(__file__).resolve().parent / "spring"
SERVICE = "interop-app"
APP_PORT = 8080
JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m", "-Xss512k")

# Maven output that means the machine cannot get the dependencies (no network, no mirror), not broken code.
_ENVIRONMENT_ERRORS = (
    "could not resolve dependencies",
    "could not transfer artifact",
    "could not find artifact",
    "non-resolvable import pom",
    "plugin could not be resolved",
    "failed to read artifact descriptor",
    "unknown host",
    "connection refused",
    "connect timed out",
    "network is unreachable",
)

# Log records the run may show without meaning consulpy misbehaved, each with why.
TOLERATED_LOG_RECORDS = (
    # Spring Cloud LoadBalancer says so because the app turns its instance cache off on purpose (the default
    # 35 s cache would hide the second instance from the first calls).
    re.compile(r"WARN .* LoadBalancerCacheManager not available, returning delegate without caching\.$"),
)
# Spring Cloud Consul 5 stops its catalog and config watches by interrupting the blocking read in flight
# (Future.cancel(true)), which it logs as `ERROR … Error watching Consul CatalogServices` with the trace of
# `ResourceAccessException: I/O error on GET request for "…/v1/catalog/services": Request was interrupted:
# null` and `WARN … ConfigWatch : Error querying consul Key/Values for context '…'. Message: I/O error on GET
# request for "…/v1/kv/…": Request was interrupted: null`. Tolerated only after the SIGTERM.
SHUTDOWN_INTERRUPT = re.compile(r'I/O error on GET request for "http://[\d.:]+/v1/(catalog/services|kv/[^"]*)": '
                                r"Request was interrupted: null")
_PROBLEM = re.compile(r"\b(ERROR|WARN)\b|Exception\b|^\s+at [\w.$]+\(|^Caused by:", re.MULTILINE)
_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:", re.MULTILINE)


def _build_failure(output: str) -> str:
    """The most telling line of Maven's output: the first naming an environment problem, else the first error."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]") and line != "[ERROR]"]
    telling = [line for line in errors if any(marker in line.lower() for marker in _ENVIRONMENT_ERRORS)]
    return (telling or errors or lines or ["no output"])[0][:400]


def _build(flavour: str) -> Path:
    """`mvn package` for one flavour, offline first (warm ~/.m2), then online; the jar or a skip/fail."""
    mvn, java = shutil.which("mvn"), shutil.which("java")
    if mvn is None or java is None:
        pytest.skip(f"Spring interop: {'mvn' if mvn is None else 'java'} is not installed")
    command = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(SPRING_DIR / "pom.xml"), "package", "-DskipTests"]
    if flavour != "boot3":
        command.insert(-2, f"-P{flavour}")
    output = ""
    for mode in (["-o"], []):
        try:
            result = subprocess.run([*command[:1], *mode, *command[1:]], capture_output=True, text=True,
                                    timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip(f"Spring interop ({flavour}): Maven did not finish within 600 s (downloads stalled?)")
        if result.returncode == 0:
            return SPRING_DIR / "target" / flavour / f"{SERVICE}.jar"
        output = result.stdout + result.stderr
    if any(marker in output.lower() for marker in _ENVIRONMENT_ERRORS):
        pytest.skip(f"Spring interop ({flavour}): cannot fetch Maven dependencies: {_build_failure(output)}")
    pytest.fail(f"Spring interop app ({flavour}) does not build:\n{output}")


_jars: dict[str, Path] = {}


@pytest.fixture(scope="session")
def spring_jar() -> Callable[[str], Path]:
    """Builds each flavour at most once per session."""

    def jar(flavour: str) -> Path:
        if flavour not in _jars:
            _jars[flavour] = _build(flavour)
        return _jars[flavour]

    return jar


class SpringApp:
    """One instance of the app on `address`:8080, its output in a file, stopped by PID."""

    def __init__(self, jar: Path, address: str, agent: AgentProcess, *extra: str) -> None:
        self.address = address
        self.url = f"http://{address}:{APP_PORT}"
        self.log_path = Path(tempfile.mkstemp(prefix="spring-interop-", suffix=".log")[1])
        command = ["java", *JVM_FLAGS, "-jar", str(jar), f"--spring.cloud.consul.host={agent.address}",
                   "--spring.cloud.consul.port=8500", f"--server.address={address}", f"--server.port={APP_PORT}",
                   *extra]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=SPRING_DIR)
        self.instance_id = f"{SERVICE}-{address.replace('.', '-')}-{APP_PORT}"
        self.stop_offset: int | None = None  # where the log stood when a signal was sent

    def get(self, path: str) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.instance_id} exited with {self.proc.returncode}:\n{self.log()}")
        try:
            response = requests.get(f"{self.url}{path}", timeout=10)
        except requests.RequestException:
            return None
        return response.text if response.status_code == 200 else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, signum: int, timeout: float = 20.0) -> int:
        self.stop_offset = len(self.log())
        os.kill(self.proc.pid, signum)
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def start_app(loopback: str) -> Iterator[Callable[..., SpringApp]]:
    apps: list[SpringApp] = []

    def start(jar: Path, host: int, agent: AgentProcess, *extra: str) -> SpringApp:
        app = SpringApp(jar, f"{loopback}.{host}", agent, *extra)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.cleanup()


def _health(agent: AgentProcess, passing: bool) -> dict[str, dict[str, Any]]:
    url = f"{agent.http}/v1/health/service/{SERVICE}" + ("?passing" if passing else "")
    return {entry["Service"]["ID"]: entry for entry in requests.get(url, timeout=5).json()}


def _service_check(entry: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in entry["Checks"] if c["CheckID"] == f"service:{entry['Service']['ID']}")


def _log_records(text: str) -> list[str]:
    """The log split into records: a timestamped line with the trace lines that follow it."""
    starts = [m.start() for m in _RECORD_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return [text[a:b].rstrip("\n") for a, b in zip(starts, [*starts[1:], len(text)], strict=True) if text[a:b].strip()]


def _unexpected_log_records(app: SpringApp) -> list[str]:
    text = app.log()
    cut = len(text) if app.stop_offset is None else app.stop_offset
    running, stopping = text[:cut], text[cut:]
    return [record for part, allowed in ((running, ()), (stopping, (SHUTDOWN_INTERRUPT,)))
            for record in _log_records(part)
            if _PROBLEM.search(record)
            and not any(p.search(record.splitlines()[0]) for p in TOLERATED_LOG_RECORDS)
            and not any(p.search(record) for p in allowed)]


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("flavour", "consul"), [(flavour, kind) for kind in ("dev", "cluster")
                                                 for flavour in ("boot3", "boot4", "boot27")], indirect=["consul"])
def test_spring_cloud_consul_app(flavour: str, spring_jar: Callable[[str], Path], consul: Consul,
                                 start_app: Callable[..., SpringApp]) -> None:
    jar = spring_jar(flavour)
    agent = consul.follower  # where the test reads and writes; on a cluster, forwarded to the leader
    kv = f"{agent.http}/v1/kv/config/{SERVICE}/greeting"
    assert requests.put(kv, data="hello from consulpy", timeout=5).json() is True

    # .3 sends a TTL heartbeat (carrying its actuator health) to a follower; .4, registered with the leader,
    # has that agent poll its /actuator/health (on a dev agent both talk to the same one).
    ttl_app = start_app(jar, 3, consul.follower)
    http_app = start_app(jar, 4, consul.leader, "--spring.cloud.consul.discovery.heartbeat.enabled=false")
    apps = (ttl_app, http_app)

    def report() -> str:
        return "".join(f"\n--- {a.instance_id} log:\n{a.log()}" for a in apps) + consul.logs()

    try:
        wait_until(lambda: all(a.get("/id") for a in apps), timeout=120)
        wait_until(lambda: set(_health(agent, passing=True)) == {a.instance_id for a in apps}, timeout=15)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_health(agent, passing=False)}{report()}") from None
    entries = _health(agent, passing=True)
    for app, kind in ((ttl_app, "ttl"), (http_app, "http")):
        entry = entries[app.instance_id]
        assert app.get("/id") == app.instance_id
        assert (entry["Service"]["Service"], entry["Service"]["Address"], entry["Service"]["Port"]) == (
            SERVICE, app.address, APP_PORT)
        check = _service_check(entry)
        assert (check["Type"], check["Status"]) == (kind, "passing"), check
    assert f"http://{http_app.address}:{APP_PORT}/actuator/health" in _service_check(entries[http_app.instance_id])[
        "Output"]

    # KV config read at start, then a change seen through the config watch (delay 300 ms, default 55 s wait).
    assert [a.get("/greeting") for a in apps] == ["hello from consulpy"] * 2
    assert requests.put(kv, data="changed in KV", timeout=5).json() is True
    changed = time.monotonic()
    try:
        wait_until(lambda: all(a.get("/greeting") == "changed in KV" for a in apps), timeout=6)
    except AssertionError:
        raise AssertionError(f"config change not seen: {[a.get('/greeting') for a in apps]}{report()}") from None
    assert time.monotonic() - changed < 6

    # DiscoveryClient sees both; load-balanced calls by service name reach the other instance.
    for app, other in ((ttl_app, http_app), (http_app, ttl_app)):
        peers = app.get("/peers") or ""
        assert [line.split()[0] for line in peers.splitlines()] == sorted(a.instance_id for a in apps), peers
        answers = (app.get("/call?times=4") or "").splitlines()
        assert other.instance_id in answers and set(answers) <= {a.instance_id for a in apps}, answers

    # SIGKILL: no deregistration, so the TTL check goes critical (TTL 3 s) and the instance leaves ?passing.
    ttl_app.send(signal.SIGKILL)
    try:
        wait_until(lambda: set(_health(agent, passing=True)) == {http_app.instance_id}, timeout=10)
    except AssertionError:
        raise AssertionError(f"killed instance still passing: {_health(agent, passing=False)}") from None
    killed = _service_check(_health(agent, passing=False)[ttl_app.instance_id])
    assert (killed["Status"], killed["Output"]) == ("critical", "TTL expired")

    # SIGTERM: the app deregisters itself on shutdown.
    assert http_app.send(signal.SIGTERM) in (0, 143)
    catalog = f"{agent.http}/v1/catalog/service/{SERVICE}"
    wait_until(lambda: [s["ServiceID"] for s in requests.get(catalog, timeout=5).json()] == [ttl_app.instance_id],
               timeout=5)
    assert http_app.instance_id not in requests.get(f"{consul.leader.http}/v1/agent/services", timeout=5).json()

    problems = _unexpected_log_records(ttl_app) + _unexpected_log_records(http_app)
    assert not problems, "\n".join(problems) + report()
    consul.assert_no_traceback()
