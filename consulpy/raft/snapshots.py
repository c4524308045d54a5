"""Atomic Raft snapshot files under `<data-dir>/raft/snapshots/`: temp file, fsync, rename, directory fsync.

A file is a magic, a checksummed msgpack metadata block (index, term, configuration, data length and CRC32)
and the data. `latest()` skips partial or corrupt files, so a crash at any step leaves the previous snapshot
or the new one. Imports: stdlib, msgpack, consulpy.codec, consulpy.raft.messages.
"""

from __future__ import annotations

import os
import re
import struct
import zlib

import msgpack

from consulpy import codec
from consulpy.raft.messages import ConfState, Snapshot
from consulpy.raft.wal import fsync_dir

_MAGIC = b"CPYSNAP1"
_META_HEADER = struct.Struct("<II")  # metadata length, metadata CRC32
_NAME = re.compile(r"^(\d{20})-(\d{20})\.snap$")
_TMP_SUFFIX = ".tmp"


def encode_snapshot(index: int, term: int, configuration: ConfState, data: bytes) -> bytes:
    """The bytes of a snapshot file."""
    meta = msgpack.packb([index, term, codec.encode(configuration), len(data), zlib.crc32(data)])
    return _MAGIC + _META_HEADER.pack(len(meta), zlib.crc32(meta)) + meta + data


def decode_snapshot(blob: bytes) -> Snapshot | None:
    """The snapshot in a file's bytes, or None if they are partial or corrupt."""
    head = len(_MAGIC) + _META_HEADER.size
    if len(blob) < head or blob[: len(_MAGIC)] != _MAGIC:
        return None
    meta_len, meta_crc = _META_HEADER.unpack_from(blob, len(_MAGIC))
    meta = blob[head : head + meta_len]
    if len(meta) != meta_len or zlib.crc32(meta) != meta_crc:
        return None
    try:
        index, term, conf, data_len, data_crc = msgpack.unpackb(meta)
        configuration = codec.decode(conf)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    data = blob[head + meta_len :]
    if len(data) != data_len or zlib.crc32(data) != data_crc:
        return None
    return Snapshot(index=index, term=term, conf=configuration, data=data)


class SnapshotStore:
    """Snapshot files in one directory (0700, files 0600), keeping the newest `retain`."""

    def __init__(self, directory: str, retain: int = 2) -> None:
        self.directory = directory
        self.retain = retain
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        for name in os.listdir(directory):
            if name.endswith(_TMP_SUFFIX):
                os.unlink(os.path.join(directory, name))

    def save(self, index: int, term: int, configuration: ConfState, data: bytes) -> str:
        """Write a snapshot durably and prune old ones; returns its path. OSError propagates (nothing replaced)."""
        name = f"{index:020d}-{term:020d}.snap"
        final = os.path.join(self.directory, name)
        tmp = final + _TMP_SUFFIX
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(encode_snapshot(index, term, configuration, data))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
        fsync_dir(self.directory)
        self._prune()
        return final

    def latest(self) -> Snapshot | None:
        """The newest valid snapshot, skipping partial or corrupt files."""
        for path in self._paths():
            with open(path, "rb") as f:
                snapshot = decode_snapshot(f.read())
            if snapshot is not None:
                return snapshot
        return None

    def _paths(self) -> list[str]:
        """Snapshot files, newest (highest index, then term) first."""
        found = []
        for name in os.listdir(self.directory):
            match = _NAME.match(name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), os.path.join(self.directory, name)))
        return [path for _, _, path in sorted(found, reverse=True)]

    def _prune(self) -> None:
        """Delete all but the newest `retain` snapshot files (the newest was just written and synced)."""
        doomed = self._paths()[self.retain :]
        for path in doomed:
            os.unlink(path)
        if doomed:
            fsync_dir(self.directory)
