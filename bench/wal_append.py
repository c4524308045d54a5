"""Benchmark: durable WAL appends/s (fsync per batch) for 1-entry and 64-entry batches of 256-byte entries.

Runs on a temp directory for a bounded time per mode and removes it. `python -m bench.wal_append [seconds]`.
Imports: stdlib, consulpy.raft.
"""

from __future__ import annotations

import sys
import tempfile
import time

from consulpy.raft.messages import Entry, HardState
from consulpy.raft.wal import WAL

SECONDS = 2.0
ENTRY_BYTES = 256


def _run(batch: int, seconds: float) -> tuple[float, float]:
    """(batches/s, entries/s) appending `batch` entries per fsync for `seconds`."""
    payload = b"v" * ENTRY_BYTES
    with tempfile.TemporaryDirectory(prefix="wal-bench-") as directory:
        wal = WAL(directory)
        batches = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            first = wal.last_index + 1
            wal.append([Entry(term=1, index=first + i, data=payload) for i in range(batch)], HardState(1, 1, first))
            batches += 1
        elapsed = time.perf_counter() - started
        wal.close()
    return batches / elapsed, batches * batch / elapsed


def main(seconds: float = SECONDS) -> list[tuple[str, float, str]]:
    single, _ = _run(1, seconds)
    batches, entries = _run(64, seconds)
    return [
        ("wal appends/s, 1 x 256 B entry per fsync", single, "fsync floor ~6,500/s (performance.md 2.1)"),
        ("wal batches/s, 64 x 256 B entries per fsync", batches, "one fsync per batch"),
        ("wal entries/s in 64-entry batches", entries, ">= 3,000/s cluster PUT target"),
    ]


if __name__ == "__main__":
    for name, value, target in main(float(sys.argv[1]) if len(sys.argv) > 1 else SECONDS):
        print(f"{name}: {value:,.0f} (target {target})", flush=True)
