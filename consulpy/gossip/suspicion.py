"""Lifeguard's dynamic suspicion: a timer that starts long and shrinks as independent confirmations arrive.

The minimum is suspicion_mult * max(1, log10 N) * probe_interval; the timer starts at
suspicion_max_timeout_mult times that and moves toward the minimum logarithmically with each of the k
expected confirmations (memberlist's formula). Time is passed in. Imports: stdlib.
"""

from __future__ import annotations

import math


def suspicion_timeout(suspicion_mult: int, members: int, probe_interval: float) -> float:
    """The minimum suspicion time for a cluster of `members`, rounded down to the millisecond as memberlist does."""
    node_scale = max(1.0, math.log10(max(1.0, float(members))))
    return suspicion_mult * math.floor(node_scale * 1000) / 1000 * probe_interval


class Suspicion:
    """One member's suspicion: who accused it, and when it should be declared dead."""

    def __init__(self, accuser: str, k: int, minimum: float, maximum: float, start: float) -> None:
        self.k = k
        self.minimum = minimum
        self.maximum = maximum
        self.start = start
        self.confirmations = 0
        self._accusers = {accuser}
        self.deadline = start + (maximum if k >= 1 else minimum)

    def confirm(self, accuser: str) -> bool:
        """Count an independent confirmation; True if it was new (then worth re-gossiping) and moved the deadline."""
        if self.confirmations >= self.k or accuser in self._accusers:
            return False
        self._accusers.add(accuser)
        self.confirmations += 1
        fraction = math.log(self.confirmations + 1.0) / math.log(self.k + 1.0)
        raw = self.maximum - fraction * (self.maximum - self.minimum)
        self.deadline = self.start + max(self.minimum, math.floor(1000.0 * raw) / 1000.0)
        return True
