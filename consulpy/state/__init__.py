"""The state store: catalog, health, KV and session tables with Raft indexes, secondary indexes and watches.

Only `consulpy.fsm` writes to it; everything else reads. Imports: stdlib, sortedcontainers, consulpy.codec.
"""

from consulpy.state.errors import KVOpFailed, StateError
from consulpy.state.kv_ops import KV_VERBS, KVOp
from consulpy.state.records import (
    DirEntry,
    HealthCheck,
    Node,
    NodeService,
    Session,
    Weights,
)
from consulpy.state.store import StateStore, WatchSet

__all__ = [
    "KV_VERBS",
    "DirEntry",
    "HealthCheck",
    "KVOp",
    "KVOpFailed",
    "Node",
    "NodeService",
    "Session",
    "StateError",
    "StateStore",
    "WatchSet",
    "Weights",
]
