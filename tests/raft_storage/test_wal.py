"""WAL tests: round trips, rotation, truncation, torn-tail recovery (C1, C2), refusal on damage (C3), fsync errors (C5).

Randomized tests take their seed from `SEED` and their case count from `WAL_FAULT_COUNT` (nightly: 100000)
and name the seed in every failure. Imports: stdlib, pytest, consulpy.raft.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from consulpy.raft.messages import Entry, HardState
from consulpy.raft.wal import WAL, CorruptLogError, FatalStorageError, _parse

SEED = int(os.environ.get("SEED", random.randrange(1 << 32)))
COUNT = int(os.environ.get("WAL_FAULT_COUNT", "1000"))
SEGMENT = 4096


@pytest.fixture(autouse=True)
def _print_seed() -> None:
    print(f"SEED={SEED} WAL_FAULT_COUNT={COUNT}")  # shown with the captured output of a failing test


def _batch(start: int, n: int, term: int, rng: random.Random) -> list[Entry]:
    return [Entry(term=term, index=start + i, data=rng.randbytes(rng.randrange(0, 300))) for i in range(n)]


def _state(wal: WAL) -> tuple[int, int, HardState, list[Entry]]:
    entries = wal.entries(wal.first_index, wal.last_index + 1)
    return wal.first_index, wal.last_index, wal.hard_state, entries


@dataclass
class Built:
    directory: Path
    files: dict[str, bytes]
    before_last: tuple[int, int, HardState, list[Entry]]
    tail: str
    last_start: int


def _build(directory: Path, rng: random.Random, batches: int = 30) -> Built:
    """A WAL over several segments; returns its files and the state before its last batch."""
    wal = WAL(str(directory), segment_bytes=SEGMENT)
    before_last = _state(wal)
    tail, last_start = "", 0
    for b in range(batches):
        if b == batches - 1:
            before_last = _state(wal)
            tail_segment = wal._tail()
            last_start = tail_segment.size if tail_segment.size < SEGMENT else 0
        start = wal.last_index + 1
        wal.append(_batch(start, rng.randrange(1, 8), 1 + b // 10, rng), HardState(term=1 + b // 10, vote=2, commit=b))
        tail = os.path.basename(wal._tail().path)
    wal.close()
    files = {p.name: p.read_bytes() for p in directory.iterdir()}
    return Built(directory, files, before_last, tail, last_start)


def _restore(built: Built, tail_bytes: bytes | None = None) -> None:
    for p in built.directory.iterdir():
        p.unlink()
    for name, data in built.files.items():
        (built.directory / name).write_bytes(tail_bytes if name == built.tail and tail_bytes is not None else data)


def _reopen_expect(built: Built, expected: tuple[int, int, HardState, list[Entry]], why: str) -> None:
    wal = WAL(str(built.directory), segment_bytes=SEGMENT)
    try:
        assert _state(wal) == expected, f"{why}; SEED={SEED}"
        wal.append([Entry(term=9, index=wal.last_index + 1, data=b"after")], HardState(term=9, vote=1, commit=0))
        after = wal.last_index
    finally:
        wal.close()
    wal = WAL(str(built.directory), segment_bytes=SEGMENT)
    try:
        assert wal.last_index == after and wal.hard_state.term == 9, f"{why}: append after recovery; SEED={SEED}"
    finally:
        wal.close()


def test_round_trip_rotation_and_reads(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    wal = WAL(str(tmp_path), segment_bytes=SEGMENT)
    written: list[Entry] = []
    for _ in range(40):
        batch = _batch(len(written) + 1, rng.randrange(1, 10), 1, rng)
        wal.append(batch, HardState(term=1, vote=3, commit=len(written)))
        written += batch
    assert len(wal._segments) > 3
    assert wal.entries(1, len(written) + 1) == written
    assert wal.entries(5, 9) == written[4:8]
    assert wal.term(3) == 1 and wal.term(0) is None and wal.term(len(written) + 1) is None
    for limit in (0, 1, 500, 5000):
        limited = wal.entries(1, len(written) + 1, max_bytes=limit)
        assert limited == written[: len(limited)] and limited
        assert len(limited) == 1 or sum(len(e.data) for e in limited) <= limit
        assert len(limited) == len(written) or sum(len(e.data) for e in written[: len(limited) + 1]) > limit
    wal.close()
    wal = WAL(str(tmp_path), segment_bytes=SEGMENT)
    assert wal.entries(1, len(written) + 1) == written
    assert wal.hard_state == HardState(term=1, vote=3, commit=len(written) - len(batch))
    with pytest.raises(IndexError):
        wal.entries(0, 3)
    wal.close()


def test_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "raft" / "wal"
    wal = WAL(str(directory))
    wal.append([Entry(term=1, index=1, data=b"x")])
    wal.close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for p in directory.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_suffix_truncation_in_append_and_explicit(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    wal = WAL(str(tmp_path), segment_bytes=SEGMENT)
    wal.append(_batch(1, 50, 1, rng))
    replacement = _batch(20, 5, 2, rng)
    wal.append(replacement, HardState(term=2, vote=1, commit=10))
    assert wal.last_index == 24 and wal.entries(20, 25) == replacement
    wal.truncate_suffix(22)
    assert wal.last_index == 21
    with pytest.raises(ValueError):
        wal.append(_batch(30, 1, 2, rng))
    wal.close()
    wal = WAL(str(tmp_path), segment_bytes=SEGMENT)
    assert wal.last_index == 21 and wal.entries(20, 22) == replacement[:2]
    assert wal.hard_state == HardState(term=2, vote=1, commit=10)
    wal.close()


def test_prefix_truncation_deletes_segments_and_keeps_hard_state(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    wal = WAL(str(tmp_path), segment_bytes=SEGMENT)
    wal.append(_batch(1, 5, 1, rng), HardState(term=7, vote=2, commit=5))
    for _ in range(30):
        wal.append(_batch(wal.last_index + 1, 5, 7, rng))
    segments = len(list(tmp_path.iterdir()))
    wal.truncate_prefix(140)
    assert wal.first_index == 140 and len(list(tmp_path.iterdir())) < segments
    expected = wal.entries(140, wal.last_index + 1)
    wal.close()
    wal = WAL(str(tmp_path), segment_bytes=SEGMENT)
    assert wal.first_index <= 140 and wal.entries(140, wal.last_index + 1) == expected
    assert wal.hard_state == HardState(term=7, vote=2, commit=5)
    wal.close()


def test_reset_after_snapshot_install(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    wal = WAL(str(tmp_path), segment_bytes=SEGMENT)
    for _ in range(20):
        wal.append(_batch(wal.last_index + 1, 5, 1, rng), HardState(term=1, vote=0, commit=3))
    wal.reset(1000)
    assert (wal.first_index, wal.last_index) == (1000, 999)
    assert len(list(tmp_path.iterdir())) == 1
    wal.append([Entry(term=4, index=1000, data=b"a")])
    wal.close()
    wal = WAL(str(tmp_path), segment_bytes=SEGMENT)
    assert (wal.first_index, wal.last_index, wal.term(1000)) == (1000, 1000, 4)
    assert wal.hard_state == HardState(term=1, vote=0, commit=3)
    wal.close()


def test_c1_torn_tail_keeps_every_synced_batch(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    built = _build(tmp_path, rng)
    end = len(built.files[built.tail])
    for case in range(COUNT):
        cut = rng.randrange(built.last_start, end)
        _restore(built, built.files[built.tail][:cut])
        _reopen_expect(built, built.before_last, f"C1 case {case}: cut tail at {cut} of {end}")


def test_c1_torn_first_batch_of_new_segment(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    wal = WAL(str(tmp_path), segment_bytes=SEGMENT)
    while wal._tail().size < SEGMENT:
        wal.append(_batch(wal.last_index + 1, 3, 1, rng), HardState(term=1, vote=1, commit=wal.last_index))
    before = _state(wal)
    wal.append(_batch(wal.last_index + 1, 3, 2, rng), HardState(term=2, vote=1, commit=0))
    tail = wal._tail()
    assert tail.seq == 2
    wal.close()
    full = Path(tail.path).read_bytes()
    for cut in sorted({0, 1, len(full) - 1, *(rng.randrange(len(full)) for _ in range(20))}):
        Path(tail.path).write_bytes(full[:cut])
        reopened = WAL(str(tmp_path), segment_bytes=SEGMENT)
        assert _state(reopened) == before, f"cut at {cut}; SEED={SEED}"
        assert not Path(tail.path).exists()
        reopened.close()


def test_c2_bit_flips_in_tail_batch_are_dropped(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    built = _build(tmp_path, rng)
    pristine = built.files[built.tail]
    for case in range(COUNT):
        damaged = bytearray(pristine)
        flips = [rng.randrange(built.last_start, len(pristine)) for _ in range(rng.randrange(1, 4))]
        for pos in flips:
            damaged[pos] ^= 1 << rng.randrange(8)
        if damaged == pristine:
            continue
        _restore(built, bytes(damaged))
        _reopen_expect(built, built.before_last, f"C2 case {case}: flipped bits at {flips}")


def _record_starts(data: bytes) -> list[int]:
    starts, pos = [], 0
    while pos < len(data):
        frame = _parse(data, pos)
        assert not isinstance(frame, str)
        starts.append(pos)
        pos = frame.end
    return starts


def test_c3_damage_in_sealed_segment_refuses_to_start(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    built = _build(tmp_path, rng)
    sealed = sorted(name for name in built.files if name != built.tail)
    assert len(sealed) >= 2
    for case in range(max(COUNT // 3, 20)):
        name = rng.choice(sealed)
        damaged = bytearray(built.files[name])
        if case % 4 == 0:
            pos = rng.randrange(0, len(damaged), 512) if len(damaged) > 512 else 0
            damaged[pos : pos + 512] = bytes(len(damaged[pos : pos + 512]))
        else:
            pos = rng.randrange(len(damaged))
            damaged[pos] ^= 1 << rng.randrange(8)
        if damaged == built.files[name]:
            continue
        _restore(built)
        (tmp_path / name).write_bytes(bytes(damaged))
        with pytest.raises(CorruptLogError) as info:
            WAL(str(tmp_path), segment_bytes=SEGMENT)
        changed = next(i for i, (x, y) in enumerate(zip(damaged, built.files[name], strict=True)) if x != y)
        record = max(s for s in _record_starts(built.files[name]) if s <= changed)
        assert info.value.offset == record, f"case {case}: damage from {changed} in {name}; SEED={SEED}"
        assert name in str(info.value) and f"byte offset {record}" in str(info.value)


def test_c3_missing_middle_segment_refuses(tmp_path: Path) -> None:
    built = _build(tmp_path, random.Random(SEED))
    names = sorted(built.files)
    (tmp_path / names[1]).unlink()
    with pytest.raises(CorruptLogError, match=names[2]):
        WAL(str(tmp_path), segment_bytes=SEGMENT)


def test_c3_index_gap_refuses(tmp_path: Path) -> None:
    built = _build(tmp_path, random.Random(SEED))
    names = sorted(built.files)
    seq, base = names[1].removesuffix(".wal").split("-")
    wrong = f"{seq}-{int(base) + 1:020d}.wal"
    (tmp_path / names[1]).rename(tmp_path / wrong)
    with pytest.raises(CorruptLogError, match=f"{wrong} at byte offset 0"):
        WAL(str(tmp_path), segment_bytes=SEGMENT)


def test_c3_bad_record_before_a_later_batch_in_tail_refuses(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    wal = WAL(str(tmp_path))
    for _ in range(3):
        wal.append(_batch(wal.last_index + 1, 3, 1, rng), HardState(term=1, vote=1, commit=0))
    path = Path(wal._tail().path)
    wal.close()
    data = bytearray(path.read_bytes())
    starts = _record_starts(bytes(data))
    victim = rng.choice(starts[:4])
    data[victim + rng.randrange(starts[starts.index(victim) + 1] - victim)] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError, match=f"{path.name} at byte offset {victim}: .*followed by later valid"):
        WAL(str(tmp_path))


@pytest.mark.parametrize("failing", ["fsync", "pwrite"])
def test_c5_io_failure_is_fatal_and_not_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    wal = WAL(str(tmp_path))
    wal.append([Entry(term=1, index=1, data=b"ok")], HardState(term=1, vote=1, commit=0))

    def broken(*args: object) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(os, failing, broken)
        with pytest.raises(FatalStorageError) as info:
            wal.append([Entry(term=2, index=2, data=b"lost")], HardState(term=2, vote=1, commit=1))
    assert not isinstance(info.value, Exception) and isinstance(info.value.__cause__, OSError)
    assert wal.last_index == 1 and wal.hard_state == HardState(term=1, vote=1, commit=0)
    with pytest.raises(FatalStorageError):
        wal.append([Entry(term=2, index=2, data=b"retry")])
    with pytest.raises(FatalStorageError):
        wal.truncate_suffix(1)
    wal.close()


def test_c5_uncaught_fatal_error_exits_non_zero(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "from consulpy.raft.messages import Entry\n"
        "from consulpy.raft.wal import WAL\n"
        "wal = WAL(sys.argv[1])\n"
        "def broken(fd):\n"
        "    raise OSError(5, 'Input/output error')\n"
        "os.fsync = broken\n"
        "try:\n"
        "    wal.append([Entry(term=1, index=1)])\n"
        "except Exception:\n"
        "    print('acknowledged')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=root, capture_output=True, text=True)
    assert done.returncode == 1 and "acknowledged" not in done.stdout
    assert "fsync" in done.stderr


def test_random_operations_match_a_model_across_reopens(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    wal = WAL(str(tmp_path), segment_bytes=1024)
    model: dict[int, Entry] = {}
    first, nxt, hard = 1, 1, HardState()
    for step in range(max(COUNT // 2, 200)):
        op = rng.random()
        if op < 0.55:
            count = rng.randrange(0, 6)
            start = rng.randrange(first, nxt + 1) if count and rng.random() < 0.2 else nxt
            batch = _batch(start, count, step, rng)
            hs = HardState(term=step, vote=rng.randrange(4), commit=first) if rng.random() < 0.5 else None
            wal.append(batch, hs)
            model = {i: e for i, e in model.items() if i < start} | {e.index: e for e in batch}
            nxt = start + count
            hard = hs or hard
        elif op < 0.65:
            cut = rng.randrange(first, nxt + 1)
            wal.truncate_suffix(cut)
            model = {i: e for i, e in model.items() if i < cut}
            nxt = cut
        elif op < 0.75:
            first = rng.randrange(first, nxt + 1)
            wal.truncate_prefix(first)
            model = {i: e for i, e in model.items() if i >= first}
        elif op < 0.78:
            first = nxt = nxt + rng.randrange(0, 50)
            wal.reset(first)
            model = {}
        else:
            wal.close()
            wal = WAL(str(tmp_path), segment_bytes=1024)
            assert wal.first_index <= first, f"step {step}; SEED={SEED}"
            first = wal.first_index
            model = {e.index: e for e in wal.entries(first, wal.last_index + 1)} | model
        assert (wal.last_index, wal.hard_state) == (nxt - 1, hard), f"step {step}; SEED={SEED}"
        assert wal.entries(first, nxt) == [model[i] for i in range(first, nxt)], f"step {step}; SEED={SEED}"
    wal.close()
