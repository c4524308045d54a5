"""Vivaldi network coordinates (hashicorp/serf's coordinate package): each member keeps a coordinate
that it moves after every probe round trip so that distances between coordinates estimate RTTs.

Pure: the random source (used only to pick a direction when two coordinates coincide) is injected.
Imports: stdlib, and this package's config and messages.
"""

from __future__ import annotations

import math
import random

from consulpy.serf.config import VivaldiConfig
from consulpy.serf.messages import Coordinate

# Below this, distances, errors and RTTs count as zero (serf's zeroThreshold).
ZERO_THRESHOLD = 1.0e-6
# Round trips outside [0, MAX_RTT] seconds are rejected as measurement errors.
MAX_RTT = 10.0


class CoordinateRejected(ValueError):
    """An update that would corrupt the coordinate (incompatible or invalid peer, impossible RTT)."""


def new_coordinate(config: VivaldiConfig) -> Coordinate:
    return Coordinate((0.0,) * config.dimensionality, config.vivaldi_error_max, 0.0, config.height_min)


def _raw_distance(a: Coordinate, b: Coordinate) -> float:
    return math.dist(a.vec, b.vec) + a.height + b.height


def distance(a: Coordinate, b: Coordinate) -> float:
    """Estimated round trip between two coordinates, in seconds (serf's DistanceTo)."""
    if len(a.vec) != len(b.vec):
        raise CoordinateRejected("coordinate dimensionality does not match")
    raw = _raw_distance(a, b)
    adjusted = raw + a.adjustment + b.adjustment
    return adjusted if adjusted > 0.0 else raw


def _unit_vector_at(rng: random.Random, a: tuple[float, ...], b: tuple[float, ...]) -> tuple[list[float], float]:
    """The unit vector from b to a and the distance between them; a random direction if they coincide."""
    diff = [x - y for x, y in zip(a, b, strict=True)]
    magnitude = math.hypot(*diff)
    if magnitude > ZERO_THRESHOLD:
        return [d / magnitude for d in diff], magnitude
    diff = [rng.random() - 0.5 for _ in diff]
    magnitude = math.hypot(*diff)
    if magnitude > ZERO_THRESHOLD:
        return [d / magnitude for d in diff], 0.0
    return [1.0] + [0.0] * (len(diff) - 1), 0.0


def apply_force(config: VivaldiConfig, rng: random.Random, c: Coordinate, force: float,
                other: Coordinate) -> Coordinate:
    """`c` pushed `force` seconds away from `other` (pulled towards it when negative)."""
    unit, magnitude = _unit_vector_at(rng, c.vec, other.vec)
    vec = tuple(v + u * force for v, u in zip(c.vec, unit, strict=True))
    height = c.height
    if magnitude > ZERO_THRESHOLD:
        height = max((c.height + other.height) * force / magnitude + c.height, config.height_min)
    return Coordinate(vec, c.error, c.adjustment, height)


class VivaldiClient:
    """This member's coordinate and the state that moves it (serf's coordinate.Client)."""

    def __init__(self, config: VivaldiConfig, rng: random.Random) -> None:
        self.config = config
        self.resets = 0
        self._rng = rng
        self._coord = new_coordinate(config)
        self._origin = new_coordinate(config)
        self._adjustment_index = 0
        self._adjustment_samples = [0.0] * config.adjustment_window_size
        self._latency_samples: dict[str, list[float]] = {}

    def coordinate(self) -> Coordinate:
        return self._coord

    def forget(self, node: str) -> None:
        self._latency_samples.pop(node, None)

    def update(self, node: str, other: Coordinate, rtt: float) -> Coordinate:
        """Move our coordinate after measuring `rtt` seconds to `node`, whose coordinate is `other`."""
        self._check(other)
        if not 0.0 <= rtt <= MAX_RTT:
            raise CoordinateRejected(f"round trip time not in valid range, duration {rtt}s is not a positive "
                                     f"value less than {MAX_RTT:g}s")
        rtt = self._latency_filter(node, rtt)
        self._update_vivaldi(other, rtt)
        self._update_adjustment(other, rtt)
        self._update_gravity()
        if not self._coord.is_valid():
            self.resets += 1
            self._coord = new_coordinate(self.config)
        return self._coord

    def _check(self, coord: Coordinate) -> None:
        if len(coord.vec) != len(self._coord.vec):
            raise CoordinateRejected("dimensions aren't compatible")
        if not coord.is_valid():
            raise CoordinateRejected("coordinate is invalid")

    def _latency_filter(self, node: str, rtt: float) -> float:
        """The median of the last few samples from `node`."""
        samples = self._latency_samples.setdefault(node, [])
        samples.append(rtt)
        if len(samples) > self.config.latency_filter_size:
            del samples[0]
        return sorted(samples)[len(samples) // 2]

    def _update_vivaldi(self, other: Coordinate, rtt: float) -> None:
        config, c = self.config, self._coord
        dist = distance(c, other)
        rtt = max(rtt, ZERO_THRESHOLD)
        wrongness = abs(dist - rtt) / rtt
        weight = c.error / max(c.error + other.error, ZERO_THRESHOLD)
        error = min(config.vivaldi_ce * weight * wrongness + c.error * (1.0 - config.vivaldi_ce * weight),
                    config.vivaldi_error_max)
        moved = apply_force(config, self._rng, c, config.vivaldi_cc * weight * (rtt - dist), other)
        self._coord = Coordinate(moved.vec, error, moved.adjustment, moved.height)

    def _update_adjustment(self, other: Coordinate, rtt: float) -> None:
        window = self.config.adjustment_window_size
        if window == 0:
            return
        self._adjustment_samples[self._adjustment_index] = rtt - _raw_distance(self._coord, other)
        self._adjustment_index = (self._adjustment_index + 1) % window
        c = self._coord
        self._coord = Coordinate(c.vec, c.error, sum(self._adjustment_samples) / (2.0 * window), c.height)

    def _update_gravity(self) -> None:
        dist = distance(self._origin, self._coord)
        force = -1.0 * (dist / self.config.gravity_rho) ** 2
        self._coord = apply_force(self.config, self._rng, self._coord, force, self._origin)
