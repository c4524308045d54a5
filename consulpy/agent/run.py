"""`consulpy agent`: load the configuration, print the banner, run the agent until a signal says stop.

SIGINT/SIGTERM leave gracefully (a second one exits at once); SIGHUP reloads the configuration.
Imports: stdlib, uvloop (when available), consulpy.agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from consulpy import CONSUL_VERSION, __version__
from consulpy.agent.agent import Agent
from consulpy.agent.config import AGENT_FLAGS, ConfigError, load_config
from consulpy.agent.definitions import RegistrationError
from consulpy.agent.logs import setup_logging
from consulpy.agent.netaddr import AddressDetectionError
from consulpy.gossip.keyring import KeyringError

log = logging.getLogger("consulpy.agent")


def banner(agent: Agent) -> str:
    config = agent.config
    ports = config.ports
    rows = [
        ("Version", f"'{CONSUL_VERSION}' (consulpy {__version__})"),
        ("Node ID", f"'{agent.node_id}'"),
        ("Node name", f"'{agent.node_name}'"),
        ("Datacenter", f"'{agent.datacenter}' (Segment: '{'<all>' if config.server else ''}')"),
        ("Server", f"{str(config.server).lower()} (Bootstrap: {str(config.bootstrap).lower()})"),
        ("Client Addr", f"[{' '.join(agent.client_hosts())}] (HTTP: {ports.http}, HTTPS: {ports.https}, "
                        f"gRPC: {ports.grpc}, gRPC-TLS: {ports.grpc_tls}, DNS: {ports.dns})"),
        ("Cluster Addr", f"{agent.address} (LAN: {ports.serf_lan}, WAN: {ports.serf_wan})"),
        ("Gossip Encryption", str(bool(config.encrypt)).lower()),
        ("Auto-Encrypt-TLS", "false"),
        ("ACLs Enabled", "false"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["==> Starting Consul agent..."]
    lines += [f"{label.rjust(width + 4)}: {value}" for label, value in rows]
    lines += ["", "==> Log data will now stream in as it occurs:", ""]
    return "\n".join(lines)


def raise_fd_limit() -> None:
    """Lift the open-files soft limit to the hard limit, once at start: every held blocking query and every
    watcher's keep-alive connection is a socket, and a 1024 soft limit would refuse clients long before
    memory or CPU run out (Go programs, Consul included, do the same at start since Go 1.19)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(agent: Agent) -> int:
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    signals_seen = 0
    graceful = True

    def on_stop(signum: int) -> None:
        nonlocal signals_seen, graceful
        signals_seen += 1
        if signals_seen > 1:
            log.warning("second signal received, exiting immediately")
            os._exit(1)
        log.info("caught signal: signal=%s", signal.Signals(signum).name.lower())
        config = agent.config
        graceful = config.leave_on_terminate if signum == signal.SIGTERM else not config.skip_leave_on_interrupt
        stop_requested.set()

    async def reload() -> None:
        with contextlib.suppress(ConfigError, RegistrationError):
            await agent.reload_from_argv()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_stop, signum)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload()))
    await agent.start()
    log.info("Consul agent running!")
    print("==> Consul agent running!", flush=True)
    stop_wait = asyncio.ensure_future(stop_requested.wait())
    agent_done = asyncio.ensure_future(agent.stopped.wait())
    await asyncio.wait([stop_wait, agent_done], return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    agent_done.cancel()
    if not graceful:
        # Consul's servers keep their membership on SIGTERM and SIGINT (leave_on_terminate is off and
        # skip_leave_on_interrupt on by default) and exit 1 without leaving.
        log.info("Graceful shutdown disabled. Exiting")
        agent.exit_code = 1
    elif agent.exit_code == 0:
        log.info("gracefully shutting down agent")
        await agent.leave()
    await agent.stop()
    log.info("agent shutdown complete")
    return agent.exit_code


AGENT_USAGE = """Usage: consul agent [options]

  Starts the Consul agent and runs until an interrupt is received. The
  agent represents a single node in a cluster.

"""


def _loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """uvloop's `run` when uvloop is installed (it is a dependency), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def run_agent(argv: list[str]) -> int:
    if any(arg in ("-h", "-help", "--help") for arg in argv):
        from consulpy.cli.base import flag_block  # only for help: the agent itself never loads the CLI

        print((AGENT_USAGE + flag_block("Command Options", AGENT_FLAGS.flags)).rstrip("\n"))
        return 0
    try:
        loaded = load_config(argv)
    except ConfigError as exc:
        print(f"==> {exc}", file=sys.stderr)
        return 1
    config = loaded.config
    setup_logging(config.log_level)
    raise_fd_limit()
    try:
        agent = Agent(config, argv)
    except OSError as exc:
        print(f"==> Error starting agent: {exc}", file=sys.stderr)
        return 1
    except KeyringError as exc:
        print(f"==> Error starting agent: Failed to configure keyring: {exc}", file=sys.stderr)
        return 1
    except AddressDetectionError as exc:
        print(f"==> {exc}", file=sys.stderr)
        return 1
    print(banner(agent), flush=True)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    pid_file = config.pid_file
    if pid_file:
        with open(pid_file, "w", encoding="utf-8") as f:
            f.write(str(os.getpid()))
    runner = _loop_runner()
    try:
        return runner(serve(agent))
    except OSError as exc:
        log.error("error starting agent: %s", exc)
        return 1
    finally:
        if pid_file:
            with contextlib.suppress(OSError):
                os.unlink(pid_file)
