"""The seed deployment's files, checked without a Docker engine: docker/compose.yaml runs three servers and a
client on host networking with exactly the command lines the loopback seed test runs (tests/seed.py), the
image is built as documented, and every example in configs/ loads as the agent would load it.

Imports: stdlib, pytest, yaml, consulpy.agent.config, tests.seed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from consulpy.agent.config import RuntimeConfig, load_config, validate_paths
from tests.seed import CLIENT, SEED_MEMBERS, SERVER, SeedMember, member_args

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_BLOCK = "127.0.0"
IMAGE_DATA_DIR = "/consul/data"
CONFIGS = sorted((ROOT / "configs").iterdir())


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    found: dict[str, Any] = compose["services"]
    return found


def test_compose_runs_three_servers_and_a_client_on_host_networking(services: dict[str, Any]) -> None:
    assert sorted(services) == sorted(member.service for member in SEED_MEMBERS)
    for service in services.values():
        assert service["network_mode"] == "host"
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    roles = {name: "-server" in service["command"] for name, service in services.items()}
    assert roles == {member.service: member.role == SERVER for member in SEED_MEMBERS}


@pytest.mark.parametrize("member", SEED_MEMBERS, ids=lambda member: member.service)
def test_compose_command_is_the_seed_command(services: dict[str, Any], member: SeedMember) -> None:
    assert services[member.service]["command"] == member_args(member, COMPOSE_BLOCK, IMAGE_DATA_DIR)


def test_compose_starts_the_first_server_before_the_others_join_it(services: dict[str, Any]) -> None:
    first = SEED_MEMBERS[0].service
    assert "depends_on" not in services[first]
    assert services[first]["healthcheck"]["test"] == [
        "CMD", "consulpy", "members", "-http-addr", f"{COMPOSE_BLOCK}.{SEED_MEMBERS[0].host}:8500"]
    for member in SEED_MEMBERS[1:]:
        wanted = "service_healthy" if member.role == SERVER else "service_started"
        assert services[member.service]["depends_on"] == {first: {"condition": wanted}}


def test_dockerfile_installs_the_project_with_consul_ports() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^RUN pip install --no-cache-dir \. ", text, re.M)
    assert re.search(r'^ENTRYPOINT \["consulpy"\]$', text, re.M)
    (expose,) = re.findall(r"^EXPOSE (.*)$", text, re.M)
    assert sorted(expose.split()) == sorted(
        ["8300", "8301/udp", "8301", "8302/udp", "8302", "8500", "8600/udp", "8600"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_config_example_passes_validate(path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "consulpy", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "Configuration is valid!", "")


def _seed_fields(config: RuntimeConfig) -> tuple[Any, ...]:
    return (config.server, config.bootstrap_expect, config.retry_join, config.node_name, config.data_dir,
            config.bind_addr, config.client_addr, config.datacenter)


@pytest.mark.parametrize(("file", "member"), [
    ("server.hcl", SEED_MEMBERS[0]),
    ("client.hcl", next(member for member in SEED_MEMBERS if member.role == CLIENT)),
], ids=["server", "client"])
def test_role_config_describes_the_seed_agent(file: str, member: SeedMember) -> None:
    from_file = validate_paths([str(ROOT / "configs" / file)])
    from_flags = load_config(member_args(member, COMPOSE_BLOCK, IMAGE_DATA_DIR)[1:]).config
    assert _seed_fields(from_file) == _seed_fields(from_flags)
