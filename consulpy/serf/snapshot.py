"""Serf's local snapshot (`<data-dir>/serf/local.snapshot`), so `-rejoin` finds the cluster after a restart:
a pure encoder and decoder; reading, appending, fsync and rename are the caller's.

The format is serf's, line by line, UTF-8, each line ending in "\\n"; later lines override earlier ones, so
a file serf appended to reads the same; `encode_snapshot` writes the compacted form, which the caller
swaps in whole (temp file, fsync, rename) whenever `Serf.snapshot_state()` changes:
    alive: <name> <host:port>   a member seen alive (the last space separates name and address)
    not-alive: <name>           it left or failed since
    clock: <n>                  the member Lamport clock's last used time
    event-clock: <n>            the event clock's last seen time (events at or before it are not replayed)
    query-clock: <n>            the query clock's
    leave                       we left gracefully: forget the members and clocks above, unless rejoining
                                after a leave is allowed (Consul's `-rejoin`)
    # ...                       a comment
`coordinate:` lines from old serf versions are skipped; other lines are ignored. Imports: stdlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SnapshotState:
    alive: dict[str, str] = field(default_factory=dict)  # member name -> "host:port"
    clock: int = 0
    event_clock: int = 0
    query_clock: int = 0
    left: bool = False  # a graceful leave was recorded last


def encode_snapshot(state: SnapshotState) -> bytes:
    """The compacted file: alive members (sorted, so output is stable), the clocks, and a leave marker."""
    lines = [f"alive: {name} {address}\n" for name, address in sorted(state.alive.items())]
    lines += [f"clock: {state.clock}\n", f"event-clock: {state.event_clock}\n",
              f"query-clock: {state.query_clock}\n"]
    if state.left:
        lines.append("leave\n")
    return "".join(lines).encode()


_CLOCKS = {"clock: ": "clock", "event-clock: ": "event_clock", "query-clock: ": "query_clock"}


def decode_snapshot(data: bytes, rejoin_after_leave: bool = False) -> tuple[SnapshotState, list[str]]:
    """Replay a snapshot file: the state it leaves, and a warning per line that could not be used.
    A torn last line (no newline) is ignored, as serf ignores it."""
    state = SnapshotState()
    warnings: list[str] = []
    text = data.decode("utf-8", "replace")
    for line in text.split("\n")[:-1]:
        if line.startswith("alive: "):
            name, sep, address = line[len("alive: "):].rpartition(" ")
            if not sep:
                warnings.append(f"Failed to parse address: {line}")
                continue
            state.alive[name] = address
            state.left = False
        elif line.startswith("not-alive: "):
            state.alive.pop(line[len("not-alive: "):], None)
        elif (prefix := next((p for p in _CLOCKS if line.startswith(p)), None)) is not None:
            value = line[len(prefix):]
            if not value.isdecimal() or not value.isascii():
                warnings.append(f"Failed to convert clock time: {line}")
                continue
            setattr(state, _CLOCKS[prefix], int(value))
            state.left = False
        elif line == "leave":
            if rejoin_after_leave:
                warnings.append("Ignoring previous leave in snapshot")
                continue
            state = SnapshotState(left=True)
        elif line.startswith(("coordinate: ", "#")):
            continue
        else:
            warnings.append(f"Unrecognized snapshot line: {line}")
    return state, warnings

