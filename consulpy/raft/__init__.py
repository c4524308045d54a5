"""Raft consensus for consulpy: a sans-IO core (`RaftNode`) driven by messages and ticks, emitting `Ready` batches.

Storage and transport live beside it and are the caller's. Imports: stdlib, consulpy.codec.
"""

from consulpy.raft.core import Config, Mutations, RaftNode, Ready, Role, early_messages, must_sync
from consulpy.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgType,
    ReadState,
    Snapshot,
)

__all__ = [
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "Entry",
    "EntryType",
    "HardState",
    "Message",
    "MsgType",
    "Mutations",
    "RaftNode",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "early_messages",
    "must_sync",
]
