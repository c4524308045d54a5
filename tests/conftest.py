"""Shared fixtures: loopback blocks and real dev agents."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.agentproc import AgentProcess, LoopbackBlocks

_blocks = LoopbackBlocks()


@pytest.fixture
def loopback() -> str:
    """A fresh 127.A.B prefix for this test; use .2, .3, … as hosts."""
    return _blocks.next_block()


@pytest.fixture
def start_agent(loopback: str) -> Iterator[Callable[..., AgentProcess]]:
    """Start agents on this test's block: start_agent() → .2, start_agent(host=3, args=[...]) → .3."""
    started: list[AgentProcess] = []

    def start(host: int = 2, args: tuple[str, ...] = ("-dev",), env: dict[str, str] | None = None,
              wait: float = 10.0) -> AgentProcess:
        agent = AgentProcess(f"{loopback}.{host}", args, env)
        started.append(agent)
        return agent.start(wait)

    yield start
    for agent in started:
        agent.cleanup()


@pytest.fixture
def dev_agent(start_agent: Callable[..., AgentProcess]) -> AgentProcess:
    """One running `consulpy agent -dev`."""
    return start_agent()
