"""Durable Raft storage of one server under `<data-dir>/raft/` (0700): the WAL in `wal/`, snapshots in `snapshots/`.

Open it once at start-up; CorruptLogError means refuse to start, FatalStorageError means exit at once.
Imports: stdlib, consulpy.raft.wal, consulpy.raft.snapshots.
"""

from __future__ import annotations

import os

from consulpy.raft.snapshots import SnapshotStore
from consulpy.raft.wal import DEFAULT_SEGMENT_BYTES, WAL, CorruptLogError, FatalStorageError

__all__ = ["WAL", "CorruptLogError", "FatalStorageError", "RaftStorage", "SnapshotStore"]


class RaftStorage:
    """The WAL and the snapshot store of one data directory."""

    def __init__(self, data_dir: str, segment_bytes: int = DEFAULT_SEGMENT_BYTES, retain_snapshots: int = 2) -> None:
        self.directory = os.path.join(data_dir, "raft")
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self.snapshots = SnapshotStore(os.path.join(self.directory, "snapshots"), retain_snapshots)
        self.wal = WAL(os.path.join(self.directory, "wal"), segment_bytes)

    def close(self) -> None:
        self.wal.close()
