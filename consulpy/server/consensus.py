"""The seam between endpoints and replication: propose a command, learn who leads.

`SingleNode` is dev mode's implementation: it is always leader and applies each command to the FSM at
the next index as soon as it is proposed. The Raft issue supplies another implementation of
`Consensus` that applies only after a quorum has made the entry durable; `ClientConsensus` stands in on
client agents, whose every RPC is routed to a server.
Imports: stdlib, consulpy.fsm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from consulpy.codec import wire
from consulpy.fsm import FSM, Command


class NoLeaderError(Exception):
    """Raised when a write or non-stale read needs a leader and there is none (`No cluster leader`)."""

    def __str__(self) -> str:
        return "No cluster leader"


class OperatorError(Exception):
    """An operator request that cannot be carried out; `str()` is Consul's message (HTTP 500 / CLI error)."""


@wire(34)
@dataclass(slots=True, frozen=True)
class RaftPeer:
    """One server of the Raft configuration, as /v1/operator/raft/configuration reports it."""

    node: str
    id: str
    address: str
    leader: bool
    voter: bool
    last_index: int = 0
    protocol_version: str = "3"


class Consensus(Protocol):
    """What endpoints need from replication."""

    fsm: FSM

    async def apply(self, command: Command) -> Any:
        """Replicate and apply `command`; returns the FSM's result once it is committed."""

    def is_leader(self) -> bool: ...

    def lease_valid(self) -> bool:
        """True while this leader may serve default reads without a ReadIndex round (its lease holds)."""

    def leader_address(self) -> str:
        """The leader's server RPC address (`ip:port`), or "" when there is none."""

    def peers(self) -> list[str]: ...

    def last_contact_ms(self) -> int:
        """Milliseconds since this server last heard from the leader (0 on the leader)."""

    def term(self) -> int:
        """The current Raft term (a snapshot's metadata carries it)."""

    async def read_barrier(self) -> None:
        """Return once this server's state reflects every write committed before the call."""

    def configuration(self) -> tuple[int, list[RaftPeer]]:
        """The latest Raft configuration: the index of the entry that set it, and its servers."""

    async def remove_peer(self, *, peer_id: str = "", address: str = "") -> None:
        """Remove a server (by node ID or by `ip:port`) from the configuration; OperatorError when unknown."""

    async def transfer_leader(self, peer_id: str = "") -> str:
        """Hand leadership to `peer_id`, or to any up-to-date voter when empty; returns the new leader's ID."""


class SingleNode:
    """A single server that is its own quorum: dev mode, and `-bootstrap` with no peers."""

    def __init__(self, fsm: FSM, address: str, node_name: str, node_id: str) -> None:
        self.fsm = fsm
        self.address = address
        self.node_name = node_name
        self.node_id = node_id
        self._index = fsm.store.last_index

    async def apply(self, command: Command) -> Any:
        self._index += 1
        return self.fsm.apply(self._index, command)

    def is_leader(self) -> bool:
        return True

    def lease_valid(self) -> bool:
        return True

    def leader_address(self) -> str:
        return self.address

    def peers(self) -> list[str]:
        return [self.address]

    def last_contact_ms(self) -> int:
        return 0

    def term(self) -> int:
        return 1  # a single server elects itself once, as a one-server Consul reports

    async def read_barrier(self) -> None:
        return None

    def configuration(self) -> tuple[int, list[RaftPeer]]:
        me = RaftPeer(self.node_name, self.node_id, self.address, leader=True, voter=True, last_index=self._index)
        return 1, [me]

    async def remove_peer(self, *, peer_id: str = "", address: str = "") -> None:
        if peer_id == self.node_id or address == self.address:
            raise OperatorError("cannot remove the only server of the configuration")
        if peer_id:
            raise OperatorError(f"id {peer_id!r} was not found in the Raft configuration")
        raise OperatorError(f"address {address!r} was not found in the Raft configuration")

    async def transfer_leader(self, peer_id: str = "") -> str:
        raise OperatorError("cannot find peer to transfer leadership to")


class ClientConsensus:
    """A client agent's: it replicates nothing and leads nothing. Its router sends every RPC to a server
    before an endpoint could reach this, so anything asked here is answered as by a server without a leader."""

    def __init__(self, fsm: FSM) -> None:
        self.fsm = fsm

    async def apply(self, command: Command) -> Any:
        raise NoLeaderError()

    def is_leader(self) -> bool:
        return False

    def lease_valid(self) -> bool:
        return False

    def leader_address(self) -> str:
        return ""

    def peers(self) -> list[str]:
        return []

    def last_contact_ms(self) -> int:
        return 0

    def term(self) -> int:
        return 0

    async def read_barrier(self) -> None:
        raise NoLeaderError()

    def configuration(self) -> tuple[int, list[RaftPeer]]:
        return 0, []

    async def remove_peer(self, *, peer_id: str = "", address: str = "") -> None:
        raise NoLeaderError()

    async def transfer_leader(self, peer_id: str = "") -> str:
        raise NoLeaderError()
