"""Lifeguard's local health awareness: a saturating score that stretches this member's probe interval.

Missed acks and nacks and having to refute raise the score; successful probes lower it. A member that is
itself slow then probes less often and so accuses healthy members less. Imports: stdlib.
"""

from __future__ import annotations


class Awareness:
    def __init__(self, max_multiplier: int, enabled: bool = True) -> None:
        self.max_multiplier = max_multiplier
        self.enabled = enabled
        self.score = 0

    def apply_delta(self, delta: int) -> None:
        if self.enabled:
            self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)

    def scale(self, timeout: float) -> float:
        return timeout * (self.score + 1)
