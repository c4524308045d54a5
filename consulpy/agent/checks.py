"""Check runners: TTL timers and interval checks (HTTP, TCP, UDP, script) as asyncio tasks on the agent's loop.

Each runner reports `(check_id, status, output)` through a notify callback; interval checks go through a
StatusHandler that applies success_before_passing / failures_before_warning / failures_before_critical.
Output texts follow Consul's runners (agent/checks/check.go). Imports: stdlib, aiohttp, consulpy.agent.definitions,
consulpy.duration, consulpy.state.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import ssl
from collections.abc import Callable
from typing import Protocol

import aiohttp
from multidict import CIMultiDict

from consulpy.agent.definitions import CheckType, RegistrationError
from consulpy.duration import SECOND, format_duration
from consulpy.state import CRITICAL, PASSING, WARNING

log = logging.getLogger("consulpy.agent")

Notify = Callable[[str, str, str], None]

MIN_INTERVAL = SECOND
DEFAULT_TIMEOUT = 10 * SECOND
SCRIPT_TIMEOUT = 30 * SECOND
USER_AGENT = "Consul Health Check"
MAX_REDIRECTS = 10

_UNSUPPORTED = ("grpc", "docker", "h2ping", "os_service", "alias")


class Runner(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class StatusHandler:
    """Only report a status once enough consecutive results agree (Consul's checks.StatusHandler)."""

    def __init__(self, check_id: str, notify: Notify, success_before_passing: int, failures_before_warning: int,
                 failures_before_critical: int) -> None:
        self.check_id = check_id
        self.notify = notify
        self.success_before_passing = success_before_passing
        self.failures_before_warning = failures_before_warning or failures_before_critical
        self.failures_before_critical = failures_before_critical
        # Start at the thresholds so that the very first result is reported.
        self.successes = success_before_passing
        self.failures = failures_before_critical

    def update(self, status: str, output: str) -> None:
        if status in (PASSING, WARNING):
            self.successes += 1
            self.failures = 0
            if self.successes >= self.success_before_passing:
                self.notify(self.check_id, status, output)
            else:
                log.warning("Check passed but has not reached success threshold: check=%s status=%s "
                            "success_count=%d success_threshold=%d", self.check_id, status, self.successes,
                            self.success_before_passing)
            return
        self.failures += 1
        self.successes = 0
        if self.failures >= self.failures_before_critical:
            log.warning("Check is now critical: check=%s", self.check_id)
            self.notify(self.check_id, status, output)
        elif self.failures >= self.failures_before_warning:
            log.warning("Check is now warning: check=%s", self.check_id)
            self.notify(self.check_id, WARNING, output)
        else:
            log.warning("Check failed but has not reached warning/failure threshold: check=%s status=%s "
                        "failure_count=%d warning_threshold=%d failure_threshold=%d", self.check_id, status,
                        self.failures, self.failures_before_warning, self.failures_before_critical)


class TTLCheck:
    """Critical unless someone reports a status at least once per TTL."""

    def __init__(self, check_id: str, ttl_ns: int, notify: Notify, output_max_size: int) -> None:
        self.check_id = check_id
        self.ttl = ttl_ns / SECOND
        self.notify = notify
        self.output_max_size = output_max_size
        self.last_output = ""
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self.stop()
        self._timer = asyncio.get_running_loop().call_later(self.ttl, self._expire)

    def _expire(self) -> None:
        self._timer = None
        log.warning("Check missed TTL, is now critical: check=%s", self.check_id)
        output = "TTL expired"
        if self.last_output:
            output = f"TTL expired (last output before timeout follows): {self.last_output}"
        self.notify(self.check_id, CRITICAL, output)

    def set_status(self, status: str, output: str) -> str:
        """Report a status and restart the TTL; returns the output as stored (possibly truncated)."""
        total = len(output)
        if total > self.output_max_size:
            output = f"{output[:self.output_max_size]} ... (captured {self.output_max_size} of {total} bytes)"
        log.debug("Check status updated: check=%s status=%s", self.check_id, status)
        self.notify(self.check_id, status, output)
        self.last_output = output
        self._arm()
        return output


class IntervalCheck(abc.ABC):
    """Runs `check()` every interval after a random initial stagger, until stopped."""

    def __init__(self, check_id: str, ct: CheckType, handler: StatusHandler) -> None:
        self.check_id = check_id
        self.ct = ct
        self.handler = handler
        self.interval = max(ct.interval, MIN_INTERVAL) / SECOND
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def stopped(self) -> None:
        """Wait until a stopped runner has finished its last step and released its sockets."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            await asyncio.sleep(random.random() * self.interval)
            while True:
                try:
                    await self.check()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("Check failed to run: check=%s error=%s", self.check_id, exc)
                    self.handler.update(CRITICAL, str(exc) or type(exc).__name__)
                await asyncio.sleep(self.interval)
        finally:
            await self.close()

    @abc.abstractmethod
    async def check(self) -> None:
        """Probe once and report the result to the status handler."""

    async def close(self) -> None:
        return None


def _tail(buf: bytearray, chunk: bytes, limit: int) -> None:
    """Append to a buffer that keeps only the last `limit` bytes (Consul's circular output buffer)."""
    buf += chunk
    if len(buf) > limit:
        del buf[:len(buf) - limit]


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address}: missing port in address")
    return host.strip("[]"), int(port)


def _dial_error(network: str, address: str, host: str, exc: BaseException) -> str:
    """A connection failure worded like Go's net.OpError."""
    if isinstance(exc, socket.gaierror):
        return f"dial {network}: lookup {host}: no such host"
    if isinstance(exc, TimeoutError):
        return f"dial {network} {address}: i/o timeout"
    if isinstance(exc, OSError) and exc.errno:
        # asyncio words refusals as "Connect call failed (...)"; Go prints the errno's text.
        return f"dial {network} {address}: connect: {os.strerror(exc.errno).lower()}"
    return f"dial {network} {address}: {exc}"


def _tls_context(skip_verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class HTTPCheck(IntervalCheck):
    """2xx passing, 429 warning, anything else (or no answer) critical."""

    def __init__(self, check_id: str, ct: CheckType, handler: StatusHandler, output_max_size: int) -> None:
        super().__init__(check_id, ct, handler)
        self.output_max_size = output_max_size
        self.method = ct.method or "GET"
        self.timeout = (ct.timeout or DEFAULT_TIMEOUT) / SECOND
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        for key, values in self.ct.header.items():
            for value in values:
                headers.add(key, value)
        headers.setdefault("User-Agent", USER_AGENT)
        headers.setdefault("Accept", "text/plain, text/*, */*")
        return headers

    def _url_error(self, reason: str) -> str:
        op = self.method[:1].upper() + self.method[1:].lower()
        return f'{op} "{self.ct.http}": {reason}'

    async def check(self) -> None:
        if self._session is None:
            # Consul disables keep-alives for checks so that a dead keep-alive never fails a check.
            connector = aiohttp.TCPConnector(force_close=True, ssl=_tls_context(self.ct.tls_skip_verify))
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        url = self.ct.http
        try:
            async with self._session.request(
                self.method, url, headers=self._headers(), data=self.ct.body.encode() or None,
                allow_redirects=not self.ct.disable_redirects, max_redirects=MAX_REDIRECTS,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                server_hostname=self.ct.tls_server_name or None,
            ) as resp:
                body = bytearray()
                async for chunk in resp.content.iter_chunked(8192):
                    _tail(body, chunk, self.output_max_size)
                status_line = f"{resp.status} {resp.reason or ''}".rstrip()
                code = resp.status
        except aiohttp.TooManyRedirects:
            self.handler.update(CRITICAL, self._url_error(f"stopped after {MAX_REDIRECTS} redirects"))
            return
        except aiohttp.ClientConnectorError as exc:
            address = f"{exc.host}:{exc.port}"
            self.handler.update(CRITICAL, self._url_error(_dial_error("tcp", address, exc.host, exc.os_error)))
            return
        except TimeoutError:
            self.handler.update(CRITICAL, self._url_error(
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"))
            return
        except (aiohttp.InvalidURL, ValueError) as exc:
            self.handler.update(CRITICAL, f'parse "{url}": {exc}')
            return
        except aiohttp.ClientError as exc:
            self.handler.update(CRITICAL, self._url_error(str(exc) or type(exc).__name__))
            return
        output = body.decode("utf-8", errors="replace")
        result = f"HTTP {self.method} {url}: {status_line} Output: {output}"
        if 200 <= code <= 299:
            self.handler.update(PASSING, result)
        elif code == 429:
            self.handler.update(WARNING, result)
        else:
            self.handler.update(CRITICAL, result)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class TCPCheck(IntervalCheck):
    """Passing when a TCP (or TLS) connection opens within the timeout."""

    async def check(self) -> None:
        address = self.ct.tcp
        try:
            host, port = _split_host_port(address)
        except ValueError as exc:
            self.handler.update(CRITICAL, f"dial tcp: {exc}")
            return
        timeout = (self.ct.timeout or DEFAULT_TIMEOUT) / SECOND
        tls = _tls_context(self.ct.tls_skip_verify) if self.ct.tcp_use_tls else None
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=tls, server_hostname=(self.ct.tls_server_name or host)
                                        if tls else None), timeout)
        except (OSError, TimeoutError) as exc:
            log.warning("%s connect %s: failed: check=%s error=%s", "TCP+TLS" if tls else "TCP", address,
                        self.check_id, exc)
            self.handler.update(CRITICAL, _dial_error("tcp", address, host, exc))
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.handler.update(PASSING, f"{'TCP+TLS' if tls else 'TCP'} connect {address}: Success")


class UDPCheck(IntervalCheck):
    """Sends an empty datagram; passing unless the port answers with an error (ICMP unreachable)."""

    async def check(self) -> None:
        address = self.ct.udp
        try:
            host, port = _split_host_port(address)
        except ValueError as exc:
            self.handler.update(CRITICAL, f"dial udp: {exc}")
            return
        timeout = (self.ct.timeout or DEFAULT_TIMEOUT) / SECOND
        loop = asyncio.get_running_loop()
        try:
            family, _, _, _, target = (await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM))[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            self.handler.update(CRITICAL, _dial_error("udp", address, host, exc))
            return
        with sock:
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, target)
                sock.send(b"")
                await asyncio.wait_for(loop.sock_recv(sock, 1), timeout)
            except TimeoutError:
                pass
            except OSError as exc:
                reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                self.handler.update(CRITICAL, f"read udp {address}: read: {reason}")
                return
        self.handler.update(PASSING, f"UDP connect {address}: Success")


class ScriptCheck(IntervalCheck):
    """Runs the check's arguments: exit 0 passing, 1 warning, anything else critical; killed on timeout."""

    def __init__(self, check_id: str, ct: CheckType, handler: StatusHandler, output_max_size: int) -> None:
        super().__init__(check_id, ct, handler)
        self.output_max_size = output_max_size
        self.timeout_ns = ct.timeout or SCRIPT_TIMEOUT

    def _output(self, buf: bytearray, total: int) -> str:
        text = buf.decode("utf-8", errors="replace")
        if total > len(buf):
            text = f"Captured {self.output_max_size} of {total} bytes\n...\n{text}"
        return text

    async def check(self) -> None:
        args = self.ct.script_args
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            reason = (f'exec: "{args[0]}": executable file not found in $PATH' if isinstance(exc, FileNotFoundError)
                      and "/" not in args[0] else f"fork/exec {args[0]}: {(exc.strerror or str(exc)).lower()}")
            log.error("Check failed to invoke: check=%s error=%s", self.check_id, reason)
            self.handler.notify(self.check_id, CRITICAL, reason)
            return
        buf = bytearray()
        total = 0

        async def collect() -> None:
            nonlocal total
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(8192):
                total += len(chunk)
                _tail(buf, chunk, self.output_max_size)
            await proc.wait()

        try:
            await asyncio.wait_for(collect(), self.timeout_ns / SECOND)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            limit = format_duration(self.timeout_ns)
            log.warning("Timed out running check: check=%s timeout=%s", self.check_id, limit)
            message = f"Timed out ({limit}) running check"
            output = self._output(buf, total)
            self.handler.notify(self.check_id, CRITICAL, f"{message}\n\n{output}" if output else message)
            return
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        output = self._output(buf, total)
        code = proc.returncode
        self.handler.update(PASSING if code == 0 else WARNING if code == 1 else CRITICAL, output)


class CheckRunners:
    """The running checks of one agent, keyed by check ID."""

    def __init__(self) -> None:
        self._runners: dict[str, Runner] = {}

    @staticmethod
    def unsupported(ct: CheckType) -> str | None:
        """Why consulpy cannot run this kind of check, or None."""
        kind = ct.type_name()
        if kind in _UNSUPPORTED:
            return f"Check type is not valid: consulpy does not run {kind} checks"
        return None

    def start(self, check_id: str, ct: CheckType, notify: Notify, output_max_size: int) -> None:
        """(Re)start the runner for a check; a check without a runnable type gets none."""
        self.stop(check_id)
        reason = self.unsupported(ct)
        if reason:
            raise RegistrationError(500, reason)
        if ct.output_max_size > 0:
            output_max_size = min(output_max_size, ct.output_max_size)
        handler = StatusHandler(check_id, notify, ct.success_before_passing, ct.failures_before_warning,
                                ct.failures_before_critical)
        kind = ct.type_name()
        if kind in ("http", "tcp", "udp", "script") and ct.interval < MIN_INTERVAL:
            log.warning("check has interval below minimum: check=%s minimum_interval=%s", check_id,
                        format_duration(MIN_INTERVAL))
        runner: Runner
        if kind == "ttl":
            runner = TTLCheck(check_id, ct.ttl, notify, output_max_size)
        elif kind == "http":
            runner = HTTPCheck(check_id, ct, handler, output_max_size)
        elif kind == "tcp":
            runner = TCPCheck(check_id, ct, handler)
        elif kind == "udp":
            runner = UDPCheck(check_id, ct, handler)
        elif kind == "script":
            runner = ScriptCheck(check_id, ct, handler, output_max_size)
        else:
            return
        runner.start()
        self._runners[check_id] = runner

    def stop(self, check_id: str) -> None:
        runner = self._runners.pop(check_id, None)
        if runner is not None:
            runner.stop()

    async def shutdown(self) -> None:
        """Stop every runner and wait for the interval checks to wind down."""
        runners = list(self._runners.values())
        self._runners.clear()
        for runner in runners:
            runner.stop()
        for runner in runners:
            if isinstance(runner, IntervalCheck):
                await runner.stopped()

    def ttl(self, check_id: str) -> TTLCheck | None:
        runner = self._runners.get(check_id)
        return runner if isinstance(runner, TTLCheck) else None

    def count(self, kind: type) -> int:
        return sum(1 for r in self._runners.values() if isinstance(r, kind))
