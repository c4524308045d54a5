"""Commands: every write to the state store, as a frozen, msgpack-serialisable record.

Names follow Consul's RPC endpoints (Catalog.Register → RegisterRequest, KVS.Apply → KVSRequest …).
A command carries everything its apply needs (IDs, values), so applying it is deterministic.
Imports: stdlib, consulpy.codec, consulpy.state.
"""

from __future__ import annotations

from dataclasses import dataclass

from consulpy.codec import CodecError, decode, encode, wire
from consulpy.state import CoordinateEntry, HealthCheck, KVOp, Node, NodeService, Session


@wire(20)
@dataclass(slots=True, frozen=True)
class RegisterRequest:
    """Catalog.Register: upsert a node and optionally one service and some checks."""

    node: Node
    service: NodeService | None = None
    checks: tuple[HealthCheck, ...] = ()
    skip_node_update: bool = False


@wire(21)
@dataclass(slots=True, frozen=True)
class DeregisterRequest:
    """Catalog.Deregister: a check, a service (with its checks), or the whole node."""

    node: str
    service_id: str = ""
    check_id: str = ""


@wire(22)
@dataclass(slots=True, frozen=True)
class KVSRequest:
    """KVS.Apply: one KV operation (`set`, `cas`, `lock`, `unlock`, `delete`, `delete-cas`, `delete-tree`)."""

    op: KVOp


@wire(23)
@dataclass(slots=True, frozen=True)
class SessionRequest:
    """Session.Apply: `create` (session carries its ID) or `destroy`."""

    op: str
    session: Session


@wire(24)
@dataclass(slots=True, frozen=True)
class TxnRequest:
    """Txn.Apply: KV operations applied all-or-nothing."""

    ops: tuple[KVOp, ...]


@wire(25)
@dataclass(slots=True, frozen=True)
class RestoreRequest:
    """Snapshot.Restore: replace the whole state with a state image (`consulpy.state.snapshot`)."""

    data: bytes


@wire(26)
@dataclass(slots=True, frozen=True)
class CoordinateBatchUpdate:
    """Coordinate.Update, batched by the leader: upsert network coordinates of catalog nodes."""

    updates: tuple[CoordinateEntry, ...]


Command = (RegisterRequest | DeregisterRequest | KVSRequest | SessionRequest | TxnRequest | RestoreRequest
           | CoordinateBatchUpdate)
COMMAND_TYPES = (RegisterRequest, DeregisterRequest, KVSRequest, SessionRequest, TxnRequest, RestoreRequest,
                 CoordinateBatchUpdate)


def encode_command(command: Command) -> bytes:
    return encode(command)


def decode_command(data: bytes) -> Command:
    command = decode(data)
    if not isinstance(command, COMMAND_TYPES):
        raise CodecError(f"not a command: {type(command).__name__}")
    return command
