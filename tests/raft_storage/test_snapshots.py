"""Snapshot store tests: round trip, retention, and crash points (C4) that must leave the previous snapshot usable.

Randomized tests take their seed from `SEED` and their case count from `SNAPSHOT_FAULT_COUNT` (nightly: 5000).
Imports: stdlib, pytest, consulpy.raft.
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from consulpy.raft.messages import ConfState, Snapshot
from consulpy.raft.snapshots import SnapshotStore, encode_snapshot
from consulpy.raft.storage import RaftStorage

SEED = int(os.environ.get("SEED", random.randrange(1 << 32)))
COUNT = int(os.environ.get("SNAPSHOT_FAULT_COUNT", "200"))
CONF = ConfState(voters=(1, 2, 3), learners=(4,))


@pytest.fixture(autouse=True)
def _print_seed() -> None:
    print(f"SEED={SEED} SNAPSHOT_FAULT_COUNT={COUNT}")  # shown with the captured output of a failing test


def _previous(store: SnapshotStore) -> Snapshot:
    store.save(10, 2, CONF, b"state at ten" * 50)
    previous = store.latest()
    assert previous == Snapshot(index=10, term=2, conf=CONF, data=b"state at ten" * 50)
    return previous


def test_round_trip_retention_and_permissions(tmp_path: Path) -> None:
    storage = RaftStorage(str(tmp_path))
    store = storage.snapshots
    assert store.latest() is None
    for index in (5, 10, 15):
        store.save(index, 1, CONF, f"data {index}".encode())
    assert store.latest() == Snapshot(index=15, term=1, conf=CONF, data=b"data 15")
    names = sorted(p.name for p in Path(store.directory).iterdir())
    assert [int(name[:20]) for name in names] == [10, 15]
    for directory in (Path(storage.directory), Path(store.directory), Path(storage.wal.directory)):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for p in Path(store.directory).iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    storage.close()


def test_c4_partial_temp_file_is_ignored_and_removed(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    store = SnapshotStore(str(tmp_path))
    previous = _previous(store)
    blob = encode_snapshot(20, 3, CONF, rng.randbytes(4000))
    tmp = tmp_path / f"{20:020d}-{3:020d}.snap.tmp"
    for _ in range(20):
        tmp.write_bytes(blob[: rng.randrange(len(blob) + 1)])
        assert store.latest() == previous, f"SEED={SEED}"
    assert SnapshotStore(str(tmp_path)).latest() == previous and not tmp.exists()


def test_c4_rename_lost_without_directory_fsync(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    previous = _previous(store)
    (tmp_path / f"{20:020d}-{3:020d}.snap.tmp").write_bytes(encode_snapshot(20, 3, CONF, b"new"))
    assert SnapshotStore(str(tmp_path)).latest() == previous


def test_c4_torn_or_flipped_final_file_falls_back(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    store = SnapshotStore(str(tmp_path))
    previous = _previous(store)
    new = Snapshot(index=20, term=3, conf=CONF, data=rng.randbytes(3000))
    blob = encode_snapshot(new.index, new.term, new.conf, new.data)
    final = tmp_path / f"{20:020d}-{3:020d}.snap"
    for case in range(COUNT):
        damaged = bytearray(blob)
        if case % 2:
            damaged = damaged[: rng.randrange(len(blob))]
        else:
            head = rng.random() < 0.5
            pos = rng.randrange(40) if head else rng.randrange(len(blob))
            damaged[pos] ^= 1 << rng.randrange(8)
        final.write_bytes(bytes(damaged))
        assert store.latest() == (new if damaged == blob else previous), f"case {case}; SEED={SEED}"


@pytest.mark.parametrize("failing", ["fsync", "rename", "write"])
def test_c4_failure_during_save_keeps_previous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    store = SnapshotStore(str(tmp_path))
    previous = _previous(store)

    def broken(*args: object) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(os, failing, broken)
        with pytest.raises(OSError):
            store.save(20, 3, CONF, b"new")
    assert SnapshotStore(str(tmp_path)).latest() == previous


def test_newer_valid_snapshot_wins_and_corrupt_newest_is_skipped(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    store.save(10, 2, CONF, b"a")
    path = store.save(20, 2, CONF, b"b")
    assert store.latest().index == 20
    Path(path).write_bytes(b"CPYSNAP1garbage")
    assert store.latest().index == 10
