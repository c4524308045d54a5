"""`consulpy agent` as a process: banner, pid file, graceful exit on signals, refusing bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agentproc import ROOT, AgentProcess


def run_agent_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "consulpy", "agent", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_banner_and_pid_file(start_agent, tmp_path: Path) -> None:
    pid_file = tmp_path / "agent.pid"
    agent = start_agent(args=("-dev", "-datacenter", "east", "-pid-file", str(pid_file)))
    assert agent.proc is not None
    assert pid_file.read_text() == str(agent.proc.pid)
    log = agent.log()
    for field in ("==> Starting Consul agent...", "Version: '", "Node name: 'node-", "Datacenter: 'east'",
                  "Server: true", f"Client Addr: [{agent.address}] (HTTP: 8500", "DNS: 8600",
                  f"Cluster Addr: {agent.address} (LAN: 8301, WAN: 8302)", "Consul agent running!"):
        assert field in log, field
    assert agent.stop() == 1  # a dev agent is a server: SIGTERM does not leave, and exits 1 as Consul's does
    assert not pid_file.exists()
    assert "agent shutdown complete" in agent.log()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_a_server_without_leaving(start_agent, signum: int) -> None:
    agent: AgentProcess = start_agent()
    agent.signal(signum)
    assert agent.proc is not None
    assert agent.proc.wait(10) == 1
    log = agent.log()
    assert "Graceful shutdown disabled. Exiting" in log and "agent shutdown complete" in log
    assert "gracefully shutting down agent" not in log
    assert "Traceback" not in log


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_make_a_client_leave_gracefully(loopback: str, tmp_path: Path, signum: int) -> None:
    agent = AgentProcess(f"{loopback}.2", ("-data-dir", str(tmp_path / "client")))
    try:
        agent.launch()
        deadline = time.monotonic() + 10
        while "Consul agent running!" not in agent.log():
            assert time.monotonic() < deadline, agent.log()
            time.sleep(0.05)
        agent.signal(signum)
        assert agent.proc is not None
        assert agent.proc.wait(15) == 0
        log = agent.log()
        assert "gracefully shutting down agent" in log and "agent shutdown complete" in log
        assert "Traceback" not in log
    finally:
        agent.cleanup()


def test_sighup_reloads_log_level(start_agent, tmp_path: Path) -> None:
    config = tmp_path / "level.json"
    config.write_text('{"log_level": "info"}')
    agent: AgentProcess = start_agent(args=("-dev", "-config-file", str(config)))
    config.write_text('{"log_level": "debug"}')
    agent.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "reload complete" not in agent.log():
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.05)
    assert agent.proc is not None and agent.proc.poll() is None


@pytest.mark.parametrize(("args", "message"), [
    (("-dev", "-no-such-flag"), "flag provided but not defined: -no-such-flag"),
    (("-dev", "-http-port", "eighty"), "eighty"),
    (("-dev", "-log-level", "loud"), "loud"),
    (("-dev", "-bootstrap-expect", "3"), "bootstrap"),
    (("-server",), "data_dir cannot be empty"),
    ((), "data_dir"),
])
def test_bad_command_lines_exit_1(args: tuple[str, ...], message: str) -> None:
    result = run_agent_cli(*args)
    assert result.returncode == 1
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_config_file_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"ports": {"http": "eighty"}}')
    result = run_agent_cli("-dev", "-config-file", str(bad))
    assert result.returncode == 1
    assert "ports.http" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_keyring_file_exits_1(loopback: str, tmp_path: Path) -> None:
    keyring = tmp_path / "serf" / "local.keyring"
    keyring.parent.mkdir()
    keyring.write_text('["not a key"]')
    result = run_agent_cli("-data-dir", str(tmp_path), "-bind", f"{loopback}.2", "-client", f"{loopback}.2")
    assert result.returncode == 1
    assert "==> Error starting agent: Failed to configure keyring: illegal base64 data at input byte 3" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_help_prints_the_agent_usage_and_exits_0() -> None:
    result = run_agent_cli("-h")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("Usage: consul agent [options]\n\n  Starts the Consul agent")
    assert "\n  -bootstrap-expect=<string>\n     Sets the number of servers to wait for before bootstrapping.\n" \
        in result.stdout
