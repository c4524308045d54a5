"""The state store: catalog, health, KV, session and coordinate tables with Raft indexes, secondary indexes and watches.

Only `consulpy.fsm` writes to it; everything else reads. Imports: stdlib, sortedcontainers, consulpy.codec.
"""

from consulpy.state.errors import KVOpFailed, StateError
from consulpy.state.kv_ops import KV_VERBS, KVOp
from consulpy.state.records import (
    CHECK_STATUSES,
    CRITICAL,
    MAINTENANCE,
    NODE_MAINT_CHECK_ID,
    PASSING,
    SERF_CHECK_ID,
    SERF_CHECK_NAME,
    SERVICE_MAINT_PREFIX,
    WARNING,
    CoordinateEntry,
    DirEntry,
    HealthCheck,
    Node,
    NodeService,
    Session,
    Weights,
)
from consulpy.state.store import StateStore, WatchSet

__all__ = [
    "CHECK_STATUSES",
    "CRITICAL",
    "KV_VERBS",
    "MAINTENANCE",
    "NODE_MAINT_CHECK_ID",
    "PASSING",
    "SERF_CHECK_ID",
    "SERF_CHECK_NAME",
    "SERVICE_MAINT_PREFIX",
    "WARNING",
    "CoordinateEntry",
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
