"""Sends this agent's LAN network coordinate to the servers (Consul's agent sendCoordinate loop).

Every interval, plus a random stagger of up to one interval, the coordinate the gossip layer holds goes to
`Coordinate.Update`; a failure is logged and the next round sends afresh. The interval is Consul's
`sync_coordinate_interval_min` (15 s), raised so the whole cluster sends about `sync_coordinate_rate_target`
(64) updates a second. `wan_coordinates` gives the Coordinate endpoint the WAN pool's server coordinates.
Imports: stdlib, consulpy.agent.gossip, consulpy.duration, consulpy.endpoints.coordinate, consulpy.serf.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from consulpy.agent.background import BackgroundLoop
from consulpy.agent.gossip import GossipPool
from consulpy.duration import MILLISECOND, SECOND, DurationError, parse_duration
from consulpy.endpoints.coordinate import DEFAULT_UPDATE_PERIOD, Coordinate
from consulpy.serf import MemberStatus
from consulpy.serf.messages import Coordinate as VivaldiCoordinate

if TYPE_CHECKING:
    from consulpy.agent.config import RuntimeConfig

log = logging.getLogger("consulpy.agent")

INTERVAL_MIN = 15 * SECOND
RATE_TARGET = 64.0
# Dev agents send every second (Consul keeps 15 s even in -dev), so a new agent's coordinate shows at once.
DEV_INTERVAL = SECOND
DEV_UPDATE_PERIOD = 100 * MILLISECOND  # Consul's -dev consul.coordinate.update_period


def _duration_key(value: object) -> int:
    """A positive duration from a config value, else 0."""
    if not isinstance(value, str):
        return 0
    try:
        duration = parse_duration(value)
    except DurationError:
        return 0
    return max(duration, 0)


def coordinate_interval(config: RuntimeConfig) -> int:
    """The least time between two sends: `sync_coordinate_interval_min` if set, else 15 s (1 s for -dev)."""
    interval = _duration_key(config.raw.get("sync_coordinate_interval_min"))
    if interval:
        return interval
    return DEV_INTERVAL if config.dev else INTERVAL_MIN


def update_period(config: RuntimeConfig) -> int:
    """How often the leader applies queued updates: `consul.coordinate.update_period`, else 5 s (100 ms -dev)."""
    consul = config.raw.get("consul")
    coordinate = consul.get("coordinate") if isinstance(consul, dict) else None
    period = _duration_key(coordinate.get("update_period")) if isinstance(coordinate, dict) else 0
    if period:
        return period
    return DEV_UPDATE_PERIOD if config.dev else DEFAULT_UPDATE_PERIOD


def rate_scaled_interval(interval_ns: int, members: int, rate: float = RATE_TARGET) -> float:
    """Seconds between sends: enough for `members` agents to send `rate` updates a second in all, at least
    the configured interval (Consul's lib.RateScaledInterval)."""
    return max(interval_ns / SECOND, members / rate if rate > 0 else 0.0)


def wan_coordinates(pool: GossipPool | None) -> list[tuple[str, str, VivaldiCoordinate]]:
    """(member name, datacenter, coordinate) of each server in the WAN pool that has not left, as Consul's
    router lists them: the coordinates their acks carried, and ours as it stands (serf caches its own)."""
    if pool is None:
        return []
    found = []
    for member in pool.members():
        if member.tags.get("role") != "consul" or member.status == MemberStatus.LEFT:
            continue
        own = member.name == pool.settings.name
        coord = pool.coordinate() if own else pool.cached_coordinate(member.name)
        if coord is not None:
            found.append((member.name, member.tags.get("dc", ""), coord))
    return found


class CoordinateSync(BackgroundLoop):
    """This agent's coordinate sender: start() after the agent is up, stop() when it shuts down."""

    def __init__(self, endpoint: Coordinate, node_name: str, source: Callable[[], VivaldiCoordinate | None],
                 interval_ns: int, members: Callable[[], int] | None = None) -> None:
        self.endpoint = endpoint
        self.node_name = node_name
        self.source = source
        self.interval_ns = interval_ns
        self.members = members

    async def _run(self) -> None:
        while True:
            members = self.members() if self.members is not None else 1
            interval = rate_scaled_interval(self.interval_ns, members)
            await asyncio.sleep(interval + random.random() * interval)
            await self.send()

    async def send(self) -> bool:
        """Send the current coordinate once; False when there is none or the servers refused it."""
        coord = self.source()
        if coord is None:
            return False
        try:
            await self.endpoint.update(self.node_name, "", coord)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("Coordinate update error: error=%s", exc)
            return False
        return True
