"""Real gossip transports on one test's loopback block, in one process: start, view, wait and stop them.

Imports: stdlib, consulpy.gossip.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from consulpy.gossip import Config, Event, MemberState, local_config
from consulpy.gossip.keyring import Keyring
from consulpy.gossip.transport import GossipTransport

PORT = 8301
T = TypeVar("T")


class Pool:
    """Members named node-<host> on <prefix>.<host>:8301, each recording the events it hands up."""

    def __init__(self, prefix: str, config: Config | None = None) -> None:
        self.prefix = prefix
        self.config = config or local_config()
        self.members: dict[str, GossipTransport] = {}
        self.events: dict[str, list[Event]] = {}

    def ip(self, host: int) -> str:
        return f"{self.prefix}.{host}"

    def seed(self, host: int = 2) -> str:
        return f"{self.ip(host)}:{PORT}"

    async def start(self, host: int, keyring: Keyring | None = None, **options: object) -> GossipTransport:
        name = f"node-{host}"
        events: list[Event] = []
        member = GossipTransport(self.config, name, self.ip(host), PORT, keyring=keyring,
                                 on_event=events.append, rng=random.Random(host), **options)  # type: ignore[arg-type]
        await member.start()
        self.members[name] = member
        self.events[name] = events
        return member

    async def stop(self, name: str) -> None:
        await self.members.pop(name).stop()

    async def close(self) -> None:
        for member in list(self.members.values()):
            await member.stop()
        self.members.clear()


def view(member: GossipTransport) -> dict[str, MemberState]:
    return {m.name: m.state for m in member.core.members()}


async def until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `check()` holds; AssertionError naming `what` if `timeout` passes first."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def run(prefix: str, body: Callable[[Pool], Awaitable[T]], timeout: float = 30.0,
        config: Config | None = None) -> T:
    """Run `body` with a fresh pool on `prefix`, bounded by `timeout`, stopping every member after."""

    async def main() -> T:
        pool = Pool(prefix, config)
        try:
            return await asyncio.wait_for(body(pool), timeout)
        finally:
            await pool.close()

    return asyncio.run(main())
