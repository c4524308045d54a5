"""The seam between endpoints and replication: propose a command, learn who leads.

`SingleNode` is dev mode's implementation: it is always leader and applies each command to the FSM at
the next index as soon as it is proposed. The Raft issue supplies another implementation of
`Consensus` that applies only after a quorum has made the entry durable.
Imports: stdlib, consulpy.fsm.
"""

from __future__ import annotations

from typing import Any, Protocol

from consulpy.fsm import FSM, Command


class NoLeaderError(Exception):
    """Raised when a write or non-stale read needs a leader and there is none (`No cluster leader`)."""

    def __str__(self) -> str:
        return "No cluster leader"


class Consensus(Protocol):
    """What endpoints need from replication."""

    fsm: FSM

    async def apply(self, command: Command) -> Any:
        """Replicate and apply `command`; returns the FSM's result once it is committed."""

    def is_leader(self) -> bool: ...

    def leader_address(self) -> str:
        """The leader's server RPC address (`ip:port`), or "" when there is none."""

    def peers(self) -> list[str]: ...

    def last_contact_ms(self) -> int:
        """Milliseconds since this server last heard from the leader (0 on the leader)."""

    async def read_barrier(self) -> None:
        """Return once this server's state reflects every write committed before the call."""


class SingleNode:
    """A single server that is its own quorum: dev mode, and `-bootstrap` with no peers."""

    def __init__(self, fsm: FSM, address: str) -> None:
        self.fsm = fsm
        self.address = address
        self._index = fsm.store.last_index

    async def apply(self, command: Command) -> Any:
        self._index += 1
        return self.fsm.apply(self._index, command)

    def is_leader(self) -> bool:
        return True

    def leader_address(self) -> str:
        return self.address

    def peers(self) -> list[str]:
        return [self.address]

    def last_contact_ms(self) -> int:
        return 0

    async def read_barrier(self) -> None:
        return None
