"""Check runners (TTL, HTTP, TCP, UDP, script) against real sockets and processes, and checks inside a real agent."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from consulpy.agent.checks import CheckRunners, HTTPCheck, ScriptCheck, StatusHandler, TCPCheck, TTLCheck, UDPCheck
from consulpy.agent.definitions import CheckType, service_registration
from consulpy.agent.local import SOURCE_API, LocalOptions, LocalState
from consulpy.duration import MILLISECOND, SECOND
from consulpy.state import CRITICAL, PASSING, WARNING
from tests.agentproc import AgentProcess, wait_until


class Recorder:
    """A notify callback that keeps what it was told."""

    def __init__(self) -> None:
        self.results: list[tuple[str, str]] = []

    def __call__(self, check_id: str, status: str, output: str) -> None:
        self.results.append((status, output))

    @property
    def last(self) -> tuple[str, str]:
        return self.results[-1]


def handler(recorder: Recorder) -> StatusHandler:
    return StatusHandler("c1", recorder, 0, 0, 0)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def test_status_handler_thresholds() -> None:
    seen = Recorder()
    h = StatusHandler("c1", seen, 2, 2, 3)
    h.update(PASSING, "first")                  # the first result is always reported
    for _ in range(3):
        h.update(CRITICAL, "down")
    h.update(PASSING, "up 1")
    h.update(WARNING, "up 2")
    assert seen.results == [(PASSING, "first"), (WARNING, "down"), (CRITICAL, "down"), (WARNING, "up 2")]


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_ttl_expiry_and_truncation() -> None:
    # Timed against the loop's clock rather than fixed sleeps, so a slow machine cannot reorder the events.
    async def scenario() -> tuple[Recorder, float]:
        seen = Recorder()
        loop = asyncio.get_running_loop()
        ttl = TTLCheck("c1", 1 * SECOND, seen, 5)
        ttl.start()
        await until(lambda: len(seen.results) == 1)
        assert ttl.set_status(PASSING, "abcdefgh") == "abcde ... (captured 5 of 8 bytes)"
        await asyncio.sleep(0.6)
        ttl.set_status(WARNING, "ok")           # restarts the TTL
        warned_at = loop.time()
        await until(lambda: len(seen.results) == 4)
        expired_after = loop.time() - warned_at
        ttl.stop()
        return seen, expired_after

    seen, expired_after = run(scenario())
    assert seen.results == [(CRITICAL, "TTL expired"), (PASSING, "abcde ... (captured 5 of 8 bytes)"),
                            (WARNING, "ok"), (CRITICAL, "TTL expired (last output before timeout follows): ok")]
    assert expired_after >= 0.99                # counted from the last report, not the one before it


async def http_server(host: str) -> tuple[web.AppRunner, str]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"method": request.method, "ua": request.headers.get("User-Agent"),
                                  "x": request.headers.getall("X-Test", []), "body": await request.text(),
                                  "accept": request.headers.get("Accept")})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text="late")

    def fixed(status: int, text: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(request: web.Request) -> web.Response:
            return web.Response(status=status, text=text, headers={"Location": "/ok"} if status == 302 else None)

        return answer

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/busy", fixed(429, "slow down"))
    app.router.add_get("/fail", fixed(500, "boom"))
    app.router.add_get("/redirect", fixed(302, "moved"))
    app.router.add_get("/big", fixed(200, "x" * 9999 + "y"))
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{host}:{port}"


async def probe(make: Callable[[StatusHandler], Any]) -> tuple[str, str]:
    seen = Recorder()
    check = make(handler(seen))
    try:
        await check.check()
    finally:
        await check.close()
    return seen.last


def test_http_check_statuses_and_output(loopback: str) -> None:
    host = f"{loopback}.5"

    async def scenario() -> None:
        runner, base = await http_server(host)

        def http(path: str, limit: int = 4096, **kw: Any) -> Callable[[StatusHandler], HTTPCheck]:
            return lambda h: HTTPCheck("c1", CheckType(http=base + path, interval=SECOND, **kw), h, limit)

        try:
            assert await probe(http("/ok")) == (PASSING, f"HTTP GET {base}/ok: 200 OK Output: hello")
            assert await probe(http("/busy")) == (WARNING, f"HTTP GET {base}/busy: 429 Too Many Requests Output: "
                                                           "slow down")
            assert await probe(http("/fail")) == (CRITICAL, f"HTTP GET {base}/fail: 500 Internal Server Error "
                                                            "Output: boom")
            assert await probe(http("/redirect")) == (PASSING, f"HTTP GET {base}/redirect: 200 OK Output: hello")
            status, output = await probe(http("/redirect", disable_redirects=True))
            assert status == CRITICAL and output.startswith(f"HTTP GET {base}/redirect: 302 Found Output: ")
            status, output = await probe(http("/big", limit=100))
            assert status == PASSING and output == f"HTTP GET {base}/big: 200 OK Output: " + "x" * 99 + "y"
            status, output = await probe(http("/echo", method="POST", body="payload",
                                              header={"X-Test": ["a", "b"]}))
            prefix = f"HTTP POST {base}/echo: 200 OK Output: "
            assert status == PASSING and output.startswith(prefix)
            assert json.loads(output[len(prefix):]) == {"method": "POST", "ua": "Consul Health Check",
                                                        "x": ["a", "b"], "body": "payload",
                                                        "accept": "text/plain, text/*, */*"}
            status, output = await probe(http("/slow", timeout=200 * MILLISECOND))
            assert (status, output) == (CRITICAL, f'Get "{base}/slow": context deadline exceeded '
                                                  "(Client.Timeout exceeded while awaiting headers)")
        finally:
            await runner.cleanup()
        closed = f"{host}:{free_port(host)}"
        assert await probe(lambda h: HTTPCheck("c1", CheckType(http=f"http://{closed}/", interval=SECOND), h,
                                               4096)) == (
            CRITICAL, f'Get "http://{closed}/": dial tcp {closed}: connect: connection refused')

    run(scenario())


def test_tcp_and_udp_checks(loopback: str) -> None:
    host = f"{loopback}.5"

    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), host, 0)
        address = f"{host}:{server.sockets[0].getsockname()[1]}"
        try:
            assert await probe(lambda h: TCPCheck("c1", CheckType(tcp=address, interval=SECOND), h)) == (
                PASSING, f"TCP connect {address}: Success")
        finally:
            server.close()
            await server.wait_closed()
        closed = f"{host}:{free_port(host)}"
        assert await probe(lambda h: TCPCheck("c1", CheckType(tcp=closed, interval=SECOND), h)) == (
            CRITICAL, f"dial tcp {closed}: connect: connection refused")
        assert await probe(lambda h: TCPCheck("c1", CheckType(tcp="no-port", interval=SECOND), h)) == (
            CRITICAL, "dial tcp: address no-port: missing port in address")

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
            quiet.bind((host, 0))
            listening = f"{host}:{quiet.getsockname()[1]}"
            assert await probe(lambda h: UDPCheck("c1", CheckType(udp=listening, interval=SECOND,
                                                                  timeout=200 * MILLISECOND), h)) == (
                PASSING, f"UDP connect {listening}: Success")
        refused = f"{host}:{free_port(host)}"
        assert await probe(lambda h: UDPCheck("c1", CheckType(udp=refused, interval=SECOND, timeout=SECOND), h)) == (
            CRITICAL, f"read udp {refused}: read: connection refused")

    run(scenario())


def script(code: str, timeout: int = 0, limit: int = 4096) -> Callable[[StatusHandler], ScriptCheck]:
    ct = CheckType(script_args=(sys.executable, "-c", code), interval=SECOND, timeout=timeout)
    return lambda h: ScriptCheck("c1", ct, h, limit)


def test_script_check_exit_codes_output_and_timeout() -> None:
    async def scenario() -> None:
        assert await probe(script("print('fine')")) == (PASSING, "fine\n")
        assert await probe(script("import sys; print('meh'); sys.exit(1)")) == (WARNING, "meh\n")
        assert await probe(script("import sys; sys.stderr.write('bad'); sys.exit(3)")) == (CRITICAL, "bad")
        status, output = await probe(script("print('z' * 10000)", limit=100))
        assert status == PASSING and output == "Captured 100 of 10001 bytes\n...\n" + "z" * 99 + "\n"
        started = time.monotonic()
        status, output = await probe(script("import time; print('started', flush=True); time.sleep(30)",
                                            timeout=300 * MILLISECOND))
        assert time.monotonic() - started < 5
        assert (status, output) == (CRITICAL, "Timed out (300ms) running check\n\nstarted\n")
        ct = CheckType(script_args=("definitely-not-a-command-xyz",), interval=SECOND)
        assert await probe(lambda h: ScriptCheck("c1", ct, h, 4096)) == (
            CRITICAL, 'exec: "definitely-not-a-command-xyz": executable file not found in $PATH')

    run(scenario())


def test_local_state_defers_output_only_changes_and_reaps() -> None:
    async def scenario() -> None:
        triggers: list[int] = []
        local = LocalState("n1", CheckRunners(), LocalOptions(check_update_interval=100 * MILLISECOND,
                                                              check_deregister_interval_min=0))
        local.on_change = lambda: triggers.append(1)
        reg = service_registration({"Name": "web", "Check": {"TTL": "1h", "DeregisterCriticalServiceAfter": "1s"}})
        local.add_service(reg, SOURCE_API)
        state = local.check_states()["service:web"]
        state.in_sync = True
        before = len(triggers)
        local.update_check("service:web", CRITICAL, "new output")       # same status: written back later
        assert len(triggers) == before and state.in_sync
        assert local.check("service:web").output == "new output"
        await asyncio.sleep(0.2)
        assert len(triggers) == before + 1 and not state.in_sync
        assert local.reap() == []
        reaped: list[str] = []
        while not reaped:
            await asyncio.sleep(0.05)
            reaped = local.reap()
        assert reaped == ["web"]
        assert local.services() == {} and local.checks() == {}
        assert local.check_states()["service:web"].deleted      # a tombstone until anti-entropy removes it
        await local.stop()

    run(scenario())


# --------------------------------------------------------------------------- inside a real agent


def passing_nodes(agent: AgentProcess, service: str) -> list[str]:
    reply = requests.get(f"{agent.http}/v1/health/service/{service}?passing", timeout=5)
    assert reply.status_code == 200
    return [entry["Service"]["ID"] for entry in reply.json()]


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"all good")

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_http_check_in_agent_passes_then_fails_when_server_stops(dev_agent: AgentProcess, loopback: str) -> None:
    server = http.server.ThreadingHTTPServer((f"{loopback}.5", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://{loopback}.5:{server.server_address[1]}/health"
    body = {"Name": "web", "ID": "web1", "Port": 80, "Check": {"HTTP": url, "Interval": "1s", "Timeout": "500ms"}}
    try:
        reply = requests.put(f"{dev_agent.http}/v1/agent/service/register", json=body, timeout=5)
        assert reply.status_code == 200, reply.text
        assert wait_until(lambda: passing_nodes(dev_agent, "web")) == ["web1"]
        check = requests.get(f"{dev_agent.http}/v1/agent/checks", timeout=5).json()["service:web1"]
        assert check["Output"] == f"HTTP GET {url}: 200 OK Output: all good"
        assert (check["Type"], check["Interval"], check["Timeout"]) == ("http", "1s", "500ms")
    finally:
        server.shutdown()
        server.server_close()
    assert wait_until(lambda: not passing_nodes(dev_agent, "web"), timeout=6)
    catalog = requests.get(f"{dev_agent.http}/v1/health/checks/web", timeout=5).json()
    assert catalog[0]["Status"] == CRITICAL and "connection refused" in catalog[0]["Output"]
    assert "Traceback" not in dev_agent.log()


def test_script_checks_need_enable_script_checks(start_agent: Callable[..., AgentProcess], tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x'); print('script ok')"
    body = {"Name": "job", "Check": {"Args": [sys.executable, "-c", code], "Interval": "1s"}}
    plain = start_agent()
    reply = requests.put(f"{plain.http}/v1/agent/service/register", json=body, timeout=5)
    assert (reply.status_code, reply.text) == (500, "Scripts are disabled on this agent from remote calls; to "
                                                    "enable, configure 'enable_script_checks' to true")
    assert requests.get(f"{plain.http}/v1/agent/services", timeout=5).json() == {}
    assert requests.get(f"{plain.http}/v1/agent/checks", timeout=5).json() == {}
    time.sleep(1.2)
    assert not marker.exists()

    enabled = start_agent(host=3, args=("-dev", "-enable-script-checks"))
    reply = requests.put(f"{enabled.http}/v1/agent/service/register", json=body, timeout=5)
    assert reply.status_code == 200, reply.text
    assert wait_until(lambda: passing_nodes(enabled, "job")) == ["job"]
    assert marker.exists()
    assert requests.get(f"{enabled.http}/v1/agent/checks", timeout=5).json()["service:job"]["Output"] == "script ok\n"


def test_deregister_critical_service_after_reaps_the_service(dev_agent: AgentProcess) -> None:
    body = {"Name": "flaky", "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "1s"}}
    keep = {"Name": "steady", "Check": {"TTL": "30s", "Status": "passing", "DeregisterCriticalServiceAfter": "1s"}}
    for service in (body, keep):
        assert requests.put(f"{dev_agent.http}/v1/agent/service/register", json=service, timeout=5).status_code == 200
    started = time.monotonic()
    wait_until(lambda: "flaky" not in requests.get(f"{dev_agent.http}/v1/agent/services", timeout=5).json(), 6)
    assert time.monotonic() - started >= 0.9
    services = requests.get(f"{dev_agent.http}/v1/catalog/services", timeout=5).json()
    assert "flaky" not in services and "steady" in services
    assert "service:flaky" not in requests.get(f"{dev_agent.http}/v1/agent/checks", timeout=5).json()
    assert "deregistered service with critical health" in dev_agent.log()
