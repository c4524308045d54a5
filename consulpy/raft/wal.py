"""Segmented write-ahead log of Raft entries and hard state under `<data-dir>/raft/wal/`, one fsync per batch.

Records are framed with a magic, a CRC32 (zlib; the stdlib has no CRC32C) bound to the record's file offset,
a length and a type; every batch ends with a COMMIT record. Recovery drops a torn tail batch and refuses to
start on any other damage. Imports: stdlib, consulpy.raft.messages.
"""

from __future__ import annotations

import itertools
import os
import re
import struct
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from consulpy.raft.messages import Entry, HardState

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

_MAGIC = b"\xc0\x45\x57\x4c"
_HEADER = struct.Struct("<4sIIB")  # magic, crc, payload length, record type
_CRC_PREFIX = struct.Struct("<QIB")  # file offset, payload length, record type: what the CRC covers before the payload
_ENTRY = struct.Struct("<QQB")  # index, term, entry type; the data follows
_HARD = struct.Struct("<QQQ")  # term, vote, commit
_INDEX = struct.Struct("<Q")  # TRUNCATE and RESET: an index
_COMMIT = struct.Struct("<QI")  # offset of the batch's first record, number of records before this one

_T_ENTRY, _T_HARD, _T_TRUNCATE, _T_RESET, _T_COMMIT = 1, 2, 3, 4, 5
_MAX_PAYLOAD = 1 << 31
_NAME = re.compile(r"^(\d{10})-(\d{20})\.wal$")


class FatalStorageError(SystemExit):
    """A write or fsync of durable Raft state failed: the process must exit (status 1) and never acknowledge.

    It derives from SystemExit, so `except Exception` does not swallow it and asyncio lets it out of the loop.
    After a failed fsync the kernel may have dropped the dirty pages, so retrying and carrying on would report
    lost writes as durable; the WAL refuses every later call. The original OSError is the `__cause__`.
    """


class CorruptLogError(Exception):
    """The on-disk log is damaged in a way a crash cannot explain; the node must not start from it."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt Raft WAL {path} at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset


@dataclass(slots=True)
class _Segment:
    seq: int
    base: int
    path: str
    fd: int
    size: int


@dataclass(slots=True)
class _Frame:
    offset: int
    end: int
    type: int
    payload: bytes


def _crc(offset: int, rtype: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(_CRC_PREFIX.pack(offset, len(payload), rtype)))


def _frame(offset: int, rtype: int, payload: bytes) -> bytes:
    return _HEADER.pack(_MAGIC, _crc(offset, rtype, payload), len(payload), rtype) + payload


def _parse(buf: bytes, offset: int) -> _Frame | str:
    """The frame starting at `offset`, or why there is no valid one."""
    if len(buf) - offset < _HEADER.size:
        return "truncated record header"
    magic, crc, length, rtype = _HEADER.unpack_from(buf, offset)
    if magic != _MAGIC:
        return "bad record magic"
    start = offset + _HEADER.size
    if length > len(buf) - start:
        return "record runs past the end of the file"
    payload = bytes(buf[start : start + length])
    if _crc(offset, rtype, payload) != crc:
        return "record checksum mismatch"
    return _Frame(offset, start + length, rtype, payload)


def _valid_frames_after(buf: bytes, offset: int) -> list[_Frame]:
    """Every valid frame starting after `offset`, found by resynchronising on the magic."""
    found: list[_Frame] = []
    pos = buf.find(_MAGIC, offset + 1)
    while pos != -1:
        frame = _parse(buf, pos)
        if isinstance(frame, _Frame):
            found.append(frame)
            pos = buf.find(_MAGIC, frame.end)
        else:
            pos = buf.find(_MAGIC, pos + 1)
    return found


def fsync_dir(path: str) -> None:
    """Make a directory's entries (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WAL:
    """The durable Raft log. Entries [first_index, last_index] are readable; `hard_state` is the last one saved.

    Mutations (`append`, `truncate_suffix`, `reset`, `truncate_prefix`) return only once their effect is on
    disk; any I/O failure in them raises FatalStorageError. Open raises CorruptLogError on damage.
    Calls block on fsync and are not thread-safe: use it from one thread (or one executor worker) at a time.
    """

    def __init__(self, directory: str, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.hard_state = HardState()
        self._segments: dict[int, _Segment] = {}
        self._first = 1
        self._next = 1
        self._seg = array("Q")
        self._off = array("Q")
        self._len = array("Q")
        self._term = array("Q")
        self._failed = False
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        try:
            self._recover()
        except CorruptLogError:
            self.close()
            raise

    @property
    def first_index(self) -> int:
        return self._first

    @property
    def last_index(self) -> int:
        """The last entry's index; first_index - 1 when the log is empty."""
        return self._next - 1

    def term(self, index: int) -> int | None:
        """The term of the entry at `index`, or None if it is not in the log."""
        if self._first <= index < self._next:
            return self._term[index - self._first]
        return None

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries lo <= index < hi (at least one if any, then stopping before `max_bytes` of data is passed)."""
        if lo < self._first or hi > self._next:
            raise IndexError(f"entries [{lo}, {hi}) outside the log [{self._first}, {self._next})")
        out: list[Entry] = []
        total = 0
        i = lo
        while i < hi:
            seq = self._seg[i - self._first]
            j, span = i, 0
            while j < hi and self._seg[j - self._first] == seq and (max_bytes is None or j == i or span <= max_bytes):
                span += self._len[j - self._first]
                j += 1
            segment = self._segments[seq]
            start = self._off[i - self._first]
            end = self._off[j - 1 - self._first] + self._len[j - 1 - self._first]
            buf = os.pread(segment.fd, end - start, start)
            for k in range(i, j):
                entry = self._decode_at(segment, buf, self._off[k - self._first] - start, k)
                total += len(entry.data)
                if out and max_bytes is not None and total > max_bytes:
                    return out
                out.append(entry)
            i = j
        return out

    def _decode_at(self, segment: _Segment, buf: bytes, rel: int, index: int) -> Entry:
        offset = self._off[index - self._first]
        length = self._len[index - self._first]
        chunk = buf[rel : rel + length]
        if len(chunk) != length:
            raise CorruptLogError(segment.path, offset, f"entry {index} is cut short on read")
        magic, crc, plen, rtype = _HEADER.unpack_from(chunk, 0)
        payload = bytes(chunk[_HEADER.size :])
        if magic != _MAGIC or rtype != _T_ENTRY or plen != len(payload) or _crc(offset, rtype, payload) != crc:
            raise CorruptLogError(segment.path, offset, f"entry {index} failed its checksum on read")
        idx, term, etype = _ENTRY.unpack_from(payload, 0)
        return Entry(term=term, index=idx, type=etype, data=payload[_ENTRY.size :])

    def append(self, entries: Sequence[Entry], hard_state: HardState | None = None) -> None:
        """Write `entries` (contiguous) and `hard_state` as one batch with one fsync; durable on return.

        If the first entry's index is at or below last_index, the conflicting suffix is dropped in the same
        batch (a follower's truncation).
        """
        self._check_usable()
        records: list[tuple[int, bytes]] = []
        start = entries[0].index if entries else self._next
        if entries:
            if not self._first <= start <= self._next:
                raise ValueError(f"entry {start} does not follow the log [{self._first}, {self._next})")
            for offset, entry in enumerate(entries):
                if entry.index != start + offset:
                    raise ValueError(f"entries not contiguous at {entry.index}")
            if start < self._next:
                records.append((_T_TRUNCATE, _INDEX.pack(start)))
            records.extend((_T_ENTRY, _ENTRY.pack(e.index, e.term, e.type) + e.data) for e in entries)
        if hard_state is not None:
            records.append((_T_HARD, _HARD.pack(hard_state.term, hard_state.vote, hard_state.commit)))
        if not records:
            return
        segment = self._tail()
        rotated = segment.size >= self.segment_bytes
        if rotated:
            segment = self._rotate(records)
        positions = self._write_batch(segment, records)
        if rotated:
            try:
                fsync_dir(self.directory)
            except OSError as err:
                raise self._fatal(f"fsync of {self.directory}", err) from err
        if start < self._next:
            self._drop_from(start)
        for (rtype, _), (offset, length) in zip(records, positions, strict=True):
            if rtype == _T_ENTRY:
                self._seg.append(segment.seq)
                self._off.append(offset)
                self._len.append(length)
        for entry in entries:
            self._term.append(entry.term)
        self._next = start + len(entries)
        if hard_state is not None:
            self.hard_state = hard_state

    def truncate_suffix(self, index: int) -> None:
        """Durably drop the entries at `index` and after (first_index <= index <= last_index + 1)."""
        self._check_usable()
        if not self._first <= index <= self._next:
            raise ValueError(f"cannot truncate at {index}: log is [{self._first}, {self._next})")
        self._write_batch(self._tail(), [(_T_TRUNCATE, _INDEX.pack(index))])
        self._drop_from(index)
        self._next = index

    def reset(self, next_index: int) -> None:
        """Durably empty the log so the next entry is `next_index` (after installing a snapshot)."""
        self._check_usable()
        self._write_batch(self._tail(), [(_T_RESET, _INDEX.pack(next_index))])
        self._first = self._next = next_index
        for arr in (self._seg, self._off, self._len, self._term):
            del arr[:]
        self._delete_segments_before(self._tail().seq)

    def truncate_prefix(self, index: int) -> None:
        """Forget entries before `index` (covered by a snapshot) and delete the segments that only hold those.

        After a reopen, first_index may be lower than `index`: entries sharing a kept segment remain readable.
        """
        self._check_usable()
        if not self._first <= index <= self._next:
            raise ValueError(f"cannot compact to {index}: log is [{self._first}, {self._next})")
        drop = index - self._first
        for arr in (self._seg, self._off, self._len, self._term):
            del arr[:drop]
        self._first = index
        self._delete_segments_before(self._seg[0] if self._seg else self._tail().seq)

    def close(self) -> None:
        for segment in self._segments.values():
            os.close(segment.fd)
        self._segments.clear()

    def _check_usable(self) -> None:
        if self._failed:
            raise FatalStorageError("Raft WAL failed earlier; refusing further writes")
        if not self._segments:
            raise ValueError("WAL is closed")

    def _tail(self) -> _Segment:
        return self._segments[max(self._segments)]

    def _drop_from(self, index: int) -> None:
        keep = max(0, index - self._first)
        for arr in (self._seg, self._off, self._len, self._term):
            del arr[keep:]
        if index < self._first:
            self._first = index

    def _fatal(self, what: str, err: OSError) -> FatalStorageError:
        self._failed = True
        return FatalStorageError(f"Raft WAL {what} failed: {err}; exiting so nothing unsynced is acknowledged")

    def _write_batch(self, segment: _Segment, records: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
        """Append records plus a COMMIT, fsync once; returns each record's (offset, framed length)."""
        buf = bytearray()
        positions: list[tuple[int, int]] = []
        for rtype, payload in records:
            offset = segment.size + len(buf)
            framed = _frame(offset, rtype, payload)
            positions.append((offset, len(framed)))
            buf += framed
        buf += _frame(segment.size + len(buf), _T_COMMIT, _COMMIT.pack(segment.size, len(records)))
        try:
            view = memoryview(buf)
            written = 0
            while written < len(buf):
                written += os.pwrite(segment.fd, view[written:], segment.size + written)
        except OSError as err:
            raise self._fatal(f"write to {segment.path}", err) from err
        try:
            os.fsync(segment.fd)
        except OSError as err:
            raise self._fatal(f"fsync of {segment.path}", err) from err
        segment.size += len(buf)
        return positions

    def _rotate(self, records: list[tuple[int, bytes]]) -> _Segment:
        """Open the next segment; the batch written into it first carries a copy of the hard state."""
        seq = max(self._segments) + 1
        path = os.path.join(self.directory, f"{seq:010d}-{self._next:020d}.wal")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as err:
            raise self._fatal(f"create of {path}", err) from err
        segment = _Segment(seq, self._next, path, fd, 0)
        self._segments[seq] = segment
        if not any(rtype == _T_HARD for rtype, _ in records):
            hs = self.hard_state
            records.append((_T_HARD, _HARD.pack(hs.term, hs.vote, hs.commit)))
        return segment

    def _delete_segments_before(self, seq: int) -> None:
        doomed = sorted(s for s in self._segments if s < seq)
        if not doomed:
            return
        try:
            for old in doomed:
                segment = self._segments.pop(old)
                os.close(segment.fd)
                os.unlink(segment.path)
            fsync_dir(self.directory)
        except OSError as err:
            raise self._fatal("segment deletion", err) from err

    def _recover(self) -> None:
        named: dict[int, tuple[int, str]] = {}
        for name in os.listdir(self.directory):
            match = _NAME.match(name)
            if match:
                named[int(match.group(1))] = (int(match.group(2)), os.path.join(self.directory, name))
        if not named:
            path = os.path.join(self.directory, f"{1:010d}-{1:020d}.wal")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fsync(fd)
            fsync_dir(self.directory)
            self._segments[1] = _Segment(1, 1, path, fd, 0)
            return
        seqs = sorted(named)
        for prev, cur in itertools.pairwise(seqs):
            if cur != prev + 1:
                raise CorruptLogError(named[cur][1], 0, f"segment(s) {prev + 1}..{cur - 1} before it are missing")
        self._first = self._next = named[seqs[0]][0]
        for seq in seqs:
            base, path = named[seq]
            if base != self._next:
                raise CorruptLogError(path, 0, f"segment starts at index {base} but the log continues at {self._next}")
            fd = os.open(path, os.O_RDWR)
            segment = _Segment(seq, base, path, fd, 0)
            self._segments[seq] = segment
            with open(path, "rb") as f:
                buf = f.read()
            end = self._replay(segment, buf, last=seq == seqs[-1])
            segment.size = end
            if end < len(buf):
                os.ftruncate(fd, end)
                os.fsync(fd)
        tail = self._tail()
        if tail.size == 0 and len(self._segments) > 1:
            del self._segments[tail.seq]
            os.close(tail.fd)
            os.unlink(tail.path)
            fsync_dir(self.directory)

    def _replay(self, segment: _Segment, buf: bytes, last: bool) -> int:
        """Apply every committed batch of one segment; returns the end of the last one (the kept length)."""
        pos = batch_start = 0
        pending: list[_Frame] = []
        while pos < len(buf):
            frame = _parse(buf, pos)
            if isinstance(frame, str):
                if not last:
                    raise CorruptLogError(segment.path, pos, frame + " in a sealed segment")
                after = _valid_frames_after(buf, pos)
                commit = next((f for f in after if f.type == _T_COMMIT), None)
                if commit is not None and after[-1] is not commit:
                    raise CorruptLogError(segment.path, pos, frame + ", followed by later valid batches")
                return batch_start
            if frame.type != _T_COMMIT:
                pending.append(frame)
                pos = frame.end
                continue
            start, count = _COMMIT.unpack(frame.payload)
            if start != batch_start or count != len(pending):
                raise CorruptLogError(segment.path, frame.offset, "commit record does not match its batch")
            for record in pending:
                self._apply(segment, record)
            pending.clear()
            pos = batch_start = frame.end
        if pending and not last:
            raise CorruptLogError(segment.path, batch_start, "sealed segment ends with an uncommitted batch")
        return batch_start

    def _apply(self, segment: _Segment, frame: _Frame) -> None:
        if frame.type == _T_ENTRY:
            index, term, _ = _ENTRY.unpack_from(frame.payload, 0)
            if index != self._next:
                raise CorruptLogError(segment.path, frame.offset, f"entry {index} where {self._next} was expected")
            self._seg.append(segment.seq)
            self._off.append(frame.offset)
            self._len.append(frame.end - frame.offset)
            self._term.append(term)
            self._next += 1
        elif frame.type == _T_HARD:
            term, vote, commit = _HARD.unpack(frame.payload)
            self.hard_state = HardState(term=term, vote=vote, commit=commit)
        elif frame.type == _T_TRUNCATE:
            (index,) = _INDEX.unpack(frame.payload)
            if index > self._next:
                raise CorruptLogError(segment.path, frame.offset, f"truncation at {index} beyond {self._next}")
            self._drop_from(index)
            self._next = index
        elif frame.type == _T_RESET:
            (index,) = _INDEX.unpack(frame.payload)
            self._drop_from(self._first)
            self._first = self._next = index
        else:
            raise CorruptLogError(segment.path, frame.offset, f"unknown record type {frame.type}")
