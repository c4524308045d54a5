"""Snapshots of the state store: the image of every table and index, and the archive that carries it.

`dump` writes a store as one msgpack document (records through consulpy.codec); `load` builds a new store from
it, rebuilding the secondary indexes instead of trusting stored ones. `write_archive`/`read_archive` wrap an image
as Consul's snapshot archive (gzip'd tar of meta.json, state.bin, SHA256SUMS) and check one with Consul's error
texts. The image is consulpy's own format, not interchangeable with a HashiCorp Consul snapshot in either
direction. This module is the store's friend: it fills a fresh store's tables directly.
Imports: stdlib, sortedcontainers, consulpy.codec, consulpy.gojson, consulpy.state.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import operator
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedDict

from consulpy.codec import CodecError, decode, encode
from consulpy.gojson import json_type
from consulpy.state.errors import StateError
from consulpy.state.records import CoordinateEntry, DirEntry, HealthCheck, Node, NodeService, Session

if TYPE_CHECKING:
    from consulpy.state.store import StateStore

IMAGE_MAGIC = "consulpy-state"
IMAGE_VERSION = 1

# An image travels as one Raft entry (a RestoreRequest) and the Raft transport caps a frame at 64 MiB, so an
# archive (compressed, or once inflated: image plus meta.json, SHA256SUMS and tar headers) is held to this.
MAX_ARCHIVE_BYTES = 33 << 20

SNAPSHOT_VERSION = 1  # raft.SnapshotVersion, as meta.json carries it
SUFFRAGE_VOTER, SUFFRAGE_NONVOTER = 0, 1


class SnapshotError(StateError):
    """An image or archive that cannot be restored; `str()` is the reason shown to the user."""


# --------------------------------------------------------------------------- the image


def _row_of(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    return operator.attrgetter(*(field.name for field in fields(cls)))


# Records are imaged as rows of field values in declaration order (one msgpack array each, no per-record
# ext wrapper), which is several times faster to write and read than the codec's generic record encoding.
_ROWS: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    cls: _row_of(cls) for cls in (Node, NodeService, HealthCheck, DirEntry, Session, CoordinateEntry)}


def dump(store: StateStore) -> bytes:
    """Every table, tombstone, table index, per-service index and the last applied index of `store`.

    The coordinates table is the last section; an image written before it existed (11 sections) still loads.
    """
    service_row = _ROWS[NodeService]
    image = (IMAGE_MAGIC, IMAGE_VERSION, store.last_index, store._indexes, store._service_index,
             list(map(_ROWS[Node], store._nodes.values())),
             [(node_key, service_row(svc)) for (node_key, _), svc in store._services.items()],
             list(map(_ROWS[HealthCheck], store._checks.values())),
             # The sorted map's own order is rebuilt on load; its plain dict view iterates much faster.
             list(map(_ROWS[DirEntry], dict.values(store._kv))),
             dict(store._tombstones), list(map(_ROWS[Session], store._sessions.values())),
             [_ROWS[CoordinateEntry](entry) for by_segment in store._coordinates.values()
              for entry in by_segment.values()])
    return encode(image)


def load_into(store: StateStore, data: bytes) -> None:
    """Fill the empty `store` with the image `data`; SnapshotError when it is not a sound image."""
    try:
        image = decode(data)
    except CodecError as exc:
        raise SnapshotError(f"not a consulpy state image: {exc}") from None
    if not (isinstance(image, tuple) and len(image) in (11, 12) and image[0] == IMAGE_MAGIC):
        raise SnapshotError("not a consulpy state image (snapshots taken by HashiCorp Consul cannot be restored "
                            "into consulpy)")
    if image[1] != IMAGE_VERSION:
        raise SnapshotError(f"unsupported state image version {image[1]}")
    try:
        _fill(store, *image[2:])
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise SnapshotError(f"malformed state image: {exc}") from None


Row = tuple[Any, ...]


def _fill(store: StateStore, last_index: int, indexes: dict[str, int], service_index: dict[str, int],
          nodes: tuple[Row, ...], services: tuple[tuple[str, Row], ...], checks: tuple[Row, ...],
          kv: tuple[Row, ...], tombstones: dict[str, int], sessions: tuple[Row, ...],
          coordinates: tuple[Row, ...] = ()) -> None:
    """Load the image's tables into an empty store and rebuild every secondary index from them."""
    if not isinstance(last_index, int) or not isinstance(indexes, dict) or not isinstance(service_index, dict):
        raise TypeError("bad index section")
    store.last_index = last_index
    store._indexes = dict(indexes)
    store._service_index = dict(service_index)
    for row in nodes:
        node = Node(*row)
        store._nodes[node.node.lower()] = node
    for node_key, row in services:
        svc = NodeService(*row)
        skey = (node_key, svc.id)
        store._services[skey] = svc
        store._services_by_node.setdefault(node_key, {})[svc.id] = svc
        store._services_by_name.setdefault(svc.service.lower(), set()).add(skey)
    for row in checks:
        check = HealthCheck(*row)
        node_key = check.node.lower()
        ckey = (node_key, check.check_id)
        store._checks[ckey] = check
        store._checks_by_node.setdefault(node_key, {})[check.check_id] = check
        store._checks_by_status.setdefault(check.status, set()).add(ckey)
        if check.service_id:
            store._checks_by_service.setdefault((node_key, check.service_id), set()).add(check.check_id)
    entries = [DirEntry(*row) for row in kv]
    for entry in entries:
        if entry.session:
            store._locks_by_session.setdefault(entry.session, set()).add(entry.key)
    store._kv = SortedDict((entry.key, entry) for entry in entries)
    store._tombstones = SortedDict(tombstones)
    for row in sessions:
        session = Session(*row)
        store._sessions[session.id] = session
        node_key = session.node.lower()
        store._sessions_by_node.setdefault(node_key, set()).add(session.id)
        check_ids = [*session.node_checks, *(check.get("ID", "") for check in session.service_checks)]
        for check_id in check_ids:
            store._sessions_by_check.setdefault((node_key, check_id), set()).add(session.id)
    for row in coordinates:
        coordinate = CoordinateEntry(*row)
        store._coordinates.setdefault(coordinate.node.lower(), {})[coordinate.segment.lower()] = coordinate


def image_records(store: StateStore) -> Iterator[tuple[str, int, str]]:
    """(Consul message type, encoded size, KV key or "") for each record of a store, for `snapshot inspect`."""
    for table, index in store._indexes.items():
        yield "Index", len(encode((table, index))), ""
    for name, index in store._service_index.items():
        yield "Index", len(encode((f"service.{name}", index))), ""
    for record in (*store._nodes.values(), *store._services.values(), *store._checks.values()):
        yield "Register", len(encode(_ROWS[type(record)](record))), ""
    for entry in store._kv.values():
        yield "KVS", len(encode(_ROWS[DirEntry](entry))), entry.key
    for key, index in store._tombstones.items():
        yield "Tombstone", len(encode((key, index))), ""
    for session in store._sessions.values():
        yield "Session", len(encode(_ROWS[Session](session))), ""
    for by_segment in store._coordinates.values():
        for entry in by_segment.values():
            yield "CoordinateBatchUpdate", len(encode(_ROWS[CoordinateEntry](entry))), ""


# --------------------------------------------------------------------------- the archive


@dataclass(slots=True, frozen=True)
class SnapshotMeta:
    """meta.json: hashicorp/raft's SnapshotMeta. `servers` are (id, address, voter) of the Raft configuration."""

    index: int
    term: int
    size: int
    id: str = ""
    version: int = SNAPSHOT_VERSION
    servers: tuple[tuple[str, str, bool], ...] = ()
    configuration_index: int = 0

    def to_json(self) -> bytes:
        """The document Go's json.Encoder writes for it: compact, fields in struct order, one newline."""
        snapshot_id = self.id or f"{self.term}-{self.index}-{int(time.time() * 1000)}"
        peers = base64.b64encode(encode([address for _, address, _ in self.servers])).decode()
        servers = [{"Suffrage": SUFFRAGE_VOTER if voter else SUFFRAGE_NONVOTER, "ID": node_id, "Address": address}
                   for node_id, address, voter in self.servers]
        document = {"Version": self.version, "ID": snapshot_id, "Index": self.index, "Term": self.term,
                    "Peers": peers, "Configuration": {"Servers": servers},
                    "ConfigurationIndex": self.configuration_index, "Size": self.size}
        return json.dumps(document, separators=(",", ":")).encode() + b"\n"


_META_FIELDS = {"Version": "int", "ID": "string", "Index": "uint64", "Term": "uint64", "Size": "int64",
                "ConfigurationIndex": "uint64"}
_SUMMED = ("meta.json", "state.bin")
_CHUNK = 1 << 20
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)


def write_archive(meta: SnapshotMeta, image: bytes) -> bytes:
    """The gzip'd tar Consul streams from GET /v1/snapshot: meta.json, state.bin, SHA256SUMS."""
    meta_json = meta.to_json()
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                   for name, data in zip(_SUMMED, (meta_json, image), strict=True)).encode()
    import tarfile  # only snapshot archives need it (with shutil, bz2, lzma): ~10 ms off every agent start

    now = int(time.time())
    parts = []
    for name, data in (("meta.json", meta_json), ("state.bin", image), ("SHA256SUMS", sums)):
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, now
        parts += [info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"), data, bytes(-len(data) % _BLOCK)]
    # Go's tar writer ends with two zero blocks and no record padding; its gzip writer leaves MTIME at 0.
    parts.append(bytes(2 * _BLOCK))
    return gzip.compress(b"".join(parts), compresslevel=6, mtime=0)


class _ReadError(Exception):
    """A read that ran past the decompressed data; the text is the Go error the reader would return."""


class _Payload:
    """The decompressed archive, read as Go's readers would read the gzip stream (errors surface where met)."""

    def __init__(self, data: bytes, error: str) -> None:
        self.data = data
        self.error = error
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes, or the gzip stream's fault (else `unexpected EOF`) as io.ReadFull inside tar."""
        start, end = self.pos, self.pos + size
        if end > len(self.data):
            self.pos = len(self.data)
            raise _ReadError(self.error or "unexpected EOF")
        self.pos = end
        return self.data[start:end]


def _gzip_header_length(data: bytes) -> int:
    """Length of the gzip member header at the start of `data`; _ReadError as Go's gzip.Reader words it."""
    if not data:
        raise _ReadError("EOF")
    if len(data) < 10:
        raise _ReadError("unexpected EOF")
    if data[:3] != b"\x1f\x8b\x08":
        raise _ReadError("gzip: invalid header")
    flags, pos = data[3], 10
    if flags & 0x04:
        if len(data) < pos + 2:
            raise _ReadError("unexpected EOF")
        pos += 2 + struct.unpack_from("<H", data, pos)[0]
    for bit in (0x08, 0x10):
        if flags & bit:
            end = data.find(b"\0", pos)
            if end < 0:
                raise _ReadError("unexpected EOF")
            pos = end + 1
    if flags & 0x02:
        if len(data) < pos + 2:
            raise _ReadError("unexpected EOF")
        if struct.unpack_from("<H", data, pos)[0] != zlib.crc32(data[:pos]) & 0xFFFF:
            raise _ReadError("gzip: invalid header")
        pos += 2
    if pos > len(data):
        raise _ReadError("unexpected EOF")
    return pos


def _inflate_member(data: bytes, pos: int, out: list[bytes], budget: int) -> tuple[str, int]:
    """Inflate the deflate stream at `pos` into `out` and check its trailer: (Go's fault or "", position after)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    view = memoryview(data)
    offset = pos
    crc = size = 0
    try:
        while not inflater.eof and offset < len(data):
            chunk: bytes | memoryview = view[offset:offset + _CHUNK]
            offset += len(chunk)
            while chunk and not inflater.eof:
                piece = inflater.decompress(chunk, _CHUNK)
                chunk = inflater.unconsumed_tail
                crc = zlib.crc32(piece, crc)
                size += len(piece)
                if size > budget:
                    raise SnapshotError(f"snapshot is larger than the {MAX_ARCHIVE_BYTES} bytes this agent "
                                        "accepts")
                out.append(piece)
    except zlib.error:
        return f"flate: corrupt input before offset {offset - pos}", len(data)
    if not inflater.eof:
        return "unexpected EOF", len(data)
    end = offset - len(inflater.unused_data)
    if len(data) < end + 8:
        return "unexpected EOF", len(data)
    want_crc, want_size = struct.unpack_from("<II", data, end)
    if want_crc != crc or want_size != size & 0xFFFFFFFF:
        return "gzip: invalid checksum", len(data)
    return "", end + 8


def _gunzip(data: bytes) -> _Payload:
    """Inflate every gzip member; a fault after the first header is kept for the reader to meet, as in Go."""
    try:
        pos = _gzip_header_length(data)
    except _ReadError as exc:
        raise SnapshotError(f"failed to decompress snapshot: {exc}") from None
    out: list[bytes] = []
    while True:
        fault, pos = _inflate_member(data, pos, out, MAX_ARCHIVE_BYTES - sum(len(piece) for piece in out))
        if fault or pos == len(data):
            return _Payload(b"".join(out), fault)
        try:
            pos += _gzip_header_length(data[pos:])
        except _ReadError as exc:
            return _Payload(b"".join(out), str(exc))


def _next_member(payload: _Payload, pad: int) -> tuple[str, int] | None:
    """Go's tar.Reader.Next: skip the last member's padding, then the next (name, size); None at the end."""
    payload.read(pad)
    if payload.at_end() and not payload.error:
        return None
    block = payload.read(_BLOCK)
    if block == _ZERO_BLOCK:
        if payload.at_end() and not payload.error:
            return None
        if payload.read(_BLOCK) == _ZERO_BLOCK:
            return None
        raise _ReadError("archive/tar: invalid tar header")
    import tarfile  # only snapshot archives need it: ~10 ms off every agent start

    try:
        info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        raise _ReadError("archive/tar: invalid tar header") from None
    return info.name, info.size


def _decode_meta(raw: bytes) -> dict[str, Any]:
    """meta.json's SnapshotMeta fields; _ReadError with the reason Go's json.Decoder would give."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        raise _ReadError("EOF")
    try:
        document, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            raise _ReadError("unexpected EOF") from None
        where = "looking for beginning of value" if exc.pos == 0 else "in JSON value"
        raise _ReadError(f"invalid character {text[exc.pos]!r} {where}") from None
    if not isinstance(document, dict):
        raise _ReadError(f"json: cannot unmarshal {json_type(document)} into Go value of type raft.SnapshotMeta")
    fields = _meta_fields(document)
    for name, value in fields.items():
        kind = _META_FIELDS[name]
        if value is None or (kind == "string" and isinstance(value, str)):
            continue
        if kind != "string" and isinstance(value, int) and not isinstance(value, bool) \
                and not (kind.startswith("u") and value < 0):
            continue
        shown = f"number {value}" if isinstance(value, int | float) and not isinstance(value, bool) \
            else json_type(value)
        raise _ReadError(f"json: cannot unmarshal {shown} into Go struct field SnapshotMeta.{name} of type {kind}")
    return fields


def _meta_fields(document: dict[str, Any]) -> dict[str, Any]:
    """The SnapshotMeta fields of a decoded meta.json, matched case-insensitively as Go's decoder does."""
    by_lower = {name.lower(): name for name in _META_FIELDS}
    fields: dict[str, Any] = {}
    for key, value in document.items():
        name = by_lower.get(key.lower())
        if name is not None and (name not in fields or key == name):
            fields[name] = value
    return fields


def _verify_sums(sums: bytes, digests: dict[str, Any]) -> str | None:
    """Go's hashList.DecodeAndVerify over SHA256SUMS: why the integrity check fails, or None."""
    lines = sums.decode("utf-8", "replace").split("\n")
    if lines[-1] == "":
        lines.pop()  # bufio.ScanLines drops the empty token after a final newline
    seen = set()
    for line in lines:
        fields = line.rstrip("\r").split()
        if not fields:
            return "unexpected EOF"
        if len(fields) < 2:
            return "input does not match format"
        digest, name = fields[0], fields[1]
        if name not in digests:
            return f"list missing hash for {json.dumps(name)}"
        try:
            matches = bytes.fromhex(digest) == digests[name].digest()
        except ValueError:
            matches = False
        if not matches:
            return f"hash check failed for {json.dumps(name)}"
        seen.add(name)
    for name in _SUMMED:
        if name not in seen:
            return f"file missing for {json.dumps(name)}"
    return None


def read_archive(data: bytes) -> tuple[SnapshotMeta, bytes]:
    """Check an archive as Consul's snapshot.Read does and return its metadata and image.

    Every fault raises SnapshotError with the text Consul's agent and CLI report for it.
    """
    payload = _gunzip(data)
    try:
        meta, image = _read_members(payload)
    except _ReadError as exc:
        raise SnapshotError(f"failed to read snapshot file: {exc}") from None
    if payload.error:
        raise SnapshotError(payload.error)
    if not payload.at_end():
        raise SnapshotError(f"{len(payload.data) - payload.pos} unread uncompressed bytes remain")
    return meta, image


def _read_members(payload: _Payload) -> tuple[SnapshotMeta, bytes]:
    """The tar walk of Consul's archive read: each expected member, its hash, and the integrity check."""
    digests = {name: hashlib.sha256() for name in _SUMMED}
    fields: dict[str, Any] = {}
    image_parts: list[bytes] = []
    sums = b""
    pad = 0
    while True:
        try:
            member = _next_member(payload, pad)
        except _ReadError as exc:
            raise _ReadError(f"failed reading snapshot: {exc}") from None
        if member is None:
            break
        name, size = member
        pad = -size % _BLOCK
        if name not in ("meta.json", "state.bin", "SHA256SUMS"):
            raise _ReadError(f"unexpected file {json.dumps(name)} in snapshot")
        try:
            content = payload.read(size)
        except _ReadError as exc:
            stage = {"meta.json": "failed to decode snapshot metadata",
                     "state.bin": "failed to read or write snapshot data",
                     "SHA256SUMS": "failed to read snapshot hashes"}[name]
            raise _ReadError(f"{stage}: {exc}") from None
        if name == "meta.json":
            digests[name].update(content)
            try:
                fields.update(_decode_meta(content))
            except _ReadError as exc:
                raise _ReadError(f"failed to decode snapshot metadata: {exc}") from None
        elif name == "state.bin":
            digests[name].update(content)
            image_parts.append(content)
        else:
            sums = content
    reason = _verify_sums(sums, digests)
    if reason is not None:
        raise _ReadError(f"failed checking integrity of snapshot: {reason}")
    meta = SnapshotMeta(index=fields.get("Index") or 0, term=fields.get("Term") or 0, size=fields.get("Size") or 0,
                        id=fields.get("ID") or "", version=fields.get("Version") or 0,
                        configuration_index=fields.get("ConfigurationIndex") or 0)
    return meta, b"".join(image_parts)


def check_restorable(meta: SnapshotMeta, image: bytes, scratch: StateStore) -> None:
    """What hashicorp/raft's Restore and the FSM would refuse, checked (the image loaded into the empty
    `scratch` store) before anything is proposed."""
    if meta.version not in (0, SNAPSHOT_VERSION):
        raise SnapshotError(f"Raft error when restoring snapshot: unsupported snapshot version {meta.version}")
    if meta.size != len(image):
        raise SnapshotError("Raft error when restoring snapshot: failed to write snapshot, size didn't match "
                            f"({len(image)} != {meta.size})")
    try:
        load_into(scratch, image)
    except SnapshotError as exc:
        raise SnapshotError(f"Raft error when restoring snapshot: failed to restore snapshot: {exc}") from None
