"""Lamport clocks (hashicorp/serf lamport.go): a counter that only moves forward, used to order member
intents and user events across the cluster without synchronised wall clocks. Imports: stdlib.
"""

from __future__ import annotations


class LamportClock:
    def __init__(self, start: int = 0) -> None:
        self._counter = start

    def time(self) -> int:
        return self._counter

    def increment(self) -> int:
        """Advance and return the new time."""
        self._counter += 1
        return self._counter

    def witness(self, seen: int) -> None:
        """Having seen `seen`, make sure our next time is later than it."""
        if seen >= self._counter:
            self._counter = seen + 1
