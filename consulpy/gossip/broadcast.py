"""The transmit-limited broadcast queue: encoded messages piggybacked on packets until each was sent
retransmit_mult * ceil(log10(N + 1)) times.

Fewest-sent first, then largest, then newest, so fresh news spreads first and packets fill well. A
message queued under a key replaces the one queued under the same key (news about a member supersedes
older news about it). Imports: stdlib.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter


def retransmit_limit(retransmit_mult: int, members: int) -> int:
    return retransmit_mult * math.ceil(math.log10(members + 1))


@dataclass(slots=True)
class _Queued:
    message: bytes
    key: str | None
    rank: tuple[int, int, int]  # (transmits, -size, -age): the order in which messages are taken

    @property
    def transmits(self) -> int:
        return self.rank[0]


_rank = attrgetter("rank")


class BroadcastQueue:
    def __init__(self, retransmit_mult: int) -> None:
        self.retransmit_mult = retransmit_mult
        self._items: list[_Queued] = []
        self._by_key: dict[str, _Queued] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._items)

    def has(self, key: str) -> bool:
        return key in self._by_key

    def queue(self, message: bytes, key: str | None = None) -> None:
        """Queue `message`; a keyed message replaces an older one of the same key."""
        if key is not None and (old := self._by_key.pop(key, None)) is not None:
            self._items.remove(old)
        self._next_id += 1
        item = _Queued(message, key, (0, -len(message), -self._next_id))
        self._items.append(item)
        if key is not None:
            self._by_key[key] = item

    def take(self, space: int, members: int) -> list[bytes]:
        """Messages that fit together in `space` bytes, each counted as one more transmission."""
        if not self._items or space <= 0:
            return []
        limit = retransmit_limit(self.retransmit_mult, members)
        self._items.sort(key=_rank)
        chosen: list[bytes] = []
        spent = False
        for item in self._items:
            if len(item.message) > space:
                continue
            chosen.append(item.message)
            space -= len(item.message)
            transmits, size, age = item.rank
            item.rank = (transmits + 1, size, age)
            spent = spent or transmits + 1 >= limit
            if space <= 0:
                break
        if spent:
            self._keep(lambda item: item.transmits < limit)
        return chosen

    def prune(self, keep: int) -> None:
        """Drop the most-sent messages until at most `keep` remain."""
        if len(self._items) > keep:
            self._items.sort(key=_rank)
            newest = {id(item) for item in self._items[:keep]}
            self._keep(lambda item: id(item) in newest)

    def _keep(self, wanted: Callable[[_Queued], bool]) -> None:
        kept = []
        for item in self._items:
            if wanted(item):
                kept.append(item)
            elif item.key is not None:
                del self._by_key[item.key]
        self._items = kept
