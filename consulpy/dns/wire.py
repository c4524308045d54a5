"""DNS wire format: a lean query parser, reply packing with name compression, and Consul's trimming rules.

Nothing here trusts its input: every length is bounds-checked, a compression pointer in a query must point
backwards (so pointer loops cannot exist), and a malformed query raises `Drop` or `Reject`. Replies are
packed from our own `RR` tuples, never by re-packing parsed input. Imports: stdlib only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

# record types
A = 1
NS = 2
CNAME = 5
SOA = 6
PTR = 12
TXT = 16
AAAA = 28
SRV = 33
OPT = 41
IXFR = 251
AXFR = 252
ANY = 255
CLASS_IN = 1

# response codes
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5

OPCODE_QUERY = 0
OPCODE_NOTIFY = 4
EDNS_CLIENT_SUBNET = 8

# Consul's size rules (agent/dns/router_response.go): 512 bytes without EDNS; the EDNS size, at most
# 65535 - 68; TCP 65523. Without EDNS at most min(8, udp_answer_limit) answers.
PLAIN_UDP_SIZE = 512
MAX_UDP_SIZE = 65535 - 68
MAX_TCP_SIZE = 65523
MAX_UDP_ANSWERS = 8
MAX_TCP_ANSWERS = 4096
MAX_TCP_SRV_ANSWERS = 1024

_ID_FLAGS = struct.Struct("!HH")  # two 16-bit fields: ID and flags, or a question's type and class
_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_RR_TYPE_CLASS_TTL = struct.Struct("!HHI")
_SRV_FIXED = struct.Struct("!HHH")
_SOA_FIXED = struct.Struct("!IIIII")

_QR = 0x8000
_AA = 0x0400
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080
_CD = 0x0010
_OPCODE_MASK = 0x7800


class Drop(Exception):
    """A packet that gets no reply: too short for a header, or itself a response."""


class Reject(Exception):
    """A packet whose header was read but which cannot be answered; the reply is the header with `rcode`."""

    def __init__(self, rcode: int, reason: str) -> None:
        super().__init__(reason)
        self.rcode = rcode


class WireError(Exception):
    """A name or record that cannot be encoded."""


class RR(NamedTuple):
    """One resource record. `name` None means the question's own name, written exactly as asked.

    rdata by type: A/AAAA packed address bytes; NS/CNAME/PTR a name; SRV (priority, weight, port, target);
    TXT a tuple of byte strings; SOA (mname, rname, serial, refresh, retry, expire, minimum);
    OPT (udp size, option bytes).
    """

    name: str | None
    rtype: int
    ttl: int
    rdata: Any


@dataclass(slots=True)
class Query:
    """A parsed query: the header fields a reply copies, the question, and the EDNS parts we use."""

    id: int
    flags: int
    question: bytes  # qname + qtype + qclass exactly as received
    labels: tuple[str, ...]  # lower-cased
    qtype: int
    qclass: int
    edns_size: int | None = None
    ecs: bytes | None = None  # client-subnet option data, echoed with scope 0

    @property
    def name(self) -> str:
        return ".".join(self.labels) + "."


@dataclass(slots=True)
class Reply:
    """What a resolver decided; `render` turns it into bytes for one transport."""

    rcode: int = NOERROR
    authoritative: bool = True
    recursion_available: bool = False
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    trim: bool = False  # a served answer: trimmed to the transport's limits (Consul's trimDNSResponse)
    edns: bool = True  # echo an OPT record when the query carried one
    varies: bool = False  # built from a random shuffle: another build may order records differently
    recurse: bool = False  # outside our zones: forward to the recursors


# ---------------------------------------------------------------------------------------------------------
# parsing


def parse_query(data: bytes) -> Query:
    """Parse a query the way miekg/dns's server accepts one (Consul's DNS server sits on it)."""
    if len(data) < 12:
        raise Drop("short header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & _QR:
        raise Drop("response packet")
    opcode = (flags >> 11) & 0xF
    if opcode not in (OPCODE_QUERY, OPCODE_NOTIFY):
        raise Reject(NOTIMP, f"opcode {opcode}")
    if qdcount != 1 or ancount > 1 or nscount > 1 or arcount > 2:
        raise Reject(FORMERR, "section counts")
    labels, off = _question_name(data)
    if off + 4 > len(data):
        raise Reject(FORMERR, "truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, off)
    qend = off + 4
    query = Query(ident, flags, data[12:qend], labels, qtype, qclass)
    off = qend
    first_additional = ancount + nscount
    for position in range(ancount + nscount + arcount):
        off, rtype, rclass, rdstart, rdlen = _skip_rr(data, off)
        if rtype != OPT:
            continue
        if position < first_additional or query.edns_size is not None:
            raise Reject(FORMERR, "misplaced OPT")
        query.edns_size = rclass
        query.ecs = _client_subnet(data, rdstart, rdlen)
    return query


def _question_name(data: bytes) -> tuple[tuple[str, ...], int]:
    """The question's name at offset 12; a pointer there could only point into the header, so none is allowed."""
    labels: list[str] = []
    off = 12
    total = 1
    size = len(data)
    while True:
        if off >= size:
            raise Reject(FORMERR, "truncated name")
        length = data[off]
        if length == 0:
            return tuple(labels), off + 1
        if length > 63:
            raise Reject(FORMERR, "pointer or bad label in question")
        total += length + 1
        if total > 255 or off + 1 + length > size:
            raise Reject(FORMERR, "name too long or truncated")
        labels.append(data[off + 1:off + 1 + length].decode("utf-8", "surrogateescape").lower())
        off += 1 + length


def _skip_name(data: bytes, off: int) -> int:
    """Validate a possibly compressed name and return the offset after its in-place part."""
    size = len(data)
    end = -1
    total = 1
    while True:
        if off >= size:
            raise Reject(FORMERR, "truncated name")
        length = data[off]
        if length == 0:
            return end if end >= 0 else off + 1
        kind = length & 0xC0
        if kind == 0xC0:
            if off + 1 >= size:
                raise Reject(FORMERR, "truncated pointer")
            target = ((length & 0x3F) << 8) | data[off + 1]
            if end < 0:
                end = off + 2
            if target >= off:
                raise Reject(FORMERR, "forward or looping pointer")
            off = target
            continue
        if kind:
            raise Reject(FORMERR, "unknown label type")
        total += length + 1
        if total > 255 or off + 1 + length > size:
            raise Reject(FORMERR, "name too long or truncated")
        off += 1 + length


def _skip_rr(data: bytes, off: int) -> tuple[int, int, int, int, int]:
    off = _skip_name(data, off)
    if off + 10 > len(data):
        raise Reject(FORMERR, "truncated record")
    rtype, rclass, _ttl, rdlen = _RR_FIXED.unpack_from(data, off)
    rdstart = off + 10
    if rdstart + rdlen > len(data):
        raise Reject(FORMERR, "truncated rdata")
    return rdstart + rdlen, rtype, rclass, rdstart, rdlen


def _client_subnet(data: bytes, off: int, length: int) -> bytes | None:
    """Walk the OPT options; return the client-subnet option's data, validated, if there is one."""
    end = off + length
    found = None
    while off < end:
        if off + 4 > end:
            raise Reject(FORMERR, "truncated EDNS option")
        code, optlen = struct.unpack_from("!HH", data, off)
        off += 4
        if off + optlen > end:
            raise Reject(FORMERR, "truncated EDNS option")
        if code == EDNS_CLIENT_SUBNET:
            found = _valid_subnet(data[off:off + optlen])
        off += optlen
    return found


def _valid_subnet(option: bytes) -> bytes:
    if len(option) < 4:
        raise Reject(FORMERR, "short client subnet")
    family, source = struct.unpack_from("!HB", option)
    limit = {1: 32, 2: 128}.get(family)
    if limit is None or source > limit or len(option) - 4 > limit // 8:
        raise Reject(FORMERR, "bad client subnet")
    return option


def cache_key(data: bytes, fold_case: bool = True) -> tuple[bytes, int] | None:
    """(key, end of question) for a plain cacheable query, else None: the hot path's only parsing.

    Plain means: a QUERY with one question, no other records but at most one OPT without a client-subnet
    option. The key is the question (name lower-cased when `fold_case`) plus the EDNS size.
    """
    size = len(data)
    if size < 17 or data[2] & 0xF8 or data[4:11] != b"\x00\x01\x00\x00\x00\x00\x00":
        return None
    off = 12
    while True:
        length = data[off]
        if length == 0:
            break
        if length > 63:
            return None
        off += length + 1
        if off >= size:
            return None
    qend = off + 5
    if qend - 12 > 259:
        return None
    name = data[12:off + 1]
    if fold_case:
        name = name.lower()
    arcount = data[11]
    if arcount == 0:
        if qend != size:
            return None
        return name + data[off + 1:qend], qend
    if arcount != 1 or size < qend + 11 or data[qend:qend + 3] != b"\x00\x00\x29":
        return None
    rdlen = (data[qend + 9] << 8) | data[qend + 10]
    if qend + 11 + rdlen != size:
        return None
    opt = qend + 11
    while opt < size:
        if opt + 4 > size:
            return None
        code = (data[opt] << 8) | data[opt + 1]
        optlen = (data[opt + 2] << 8) | data[opt + 3]
        if code == EDNS_CLIENT_SUBNET:
            return None
        opt += 4 + optlen
    if opt != size:
        return None
    return name + data[off + 1:qend] + data[qend + 3:qend + 5], qend


def plain_query(data: bytes, qend: int) -> Query:
    """The Query of a packet `cache_key` found plain, ending its question at `qend`: what `parse_query` returns
    for it, without checking again what `cache_key` already did (one question, at most an OPT and no
    client-subnet option, labels of 1-63 bytes, a name within 255 bytes)."""
    labels = []
    off = 12
    while True:
        length = data[off]
        if length == 0:
            break
        labels.append(data[off + 1:off + 1 + length].decode("utf-8", "surrogateescape").lower())
        off += 1 + length
    ident, flags = _ID_FLAGS.unpack_from(data)
    qtype, qclass = _ID_FLAGS.unpack_from(data, qend - 4)
    query = Query(ident, flags, data[12:qend], tuple(labels), qtype, qclass)
    if len(data) > qend:  # the OPT record: its class is the requester's UDP size
        query.edns_size = (data[qend + 3] << 8) | data[qend + 4]
    return query


# ---------------------------------------------------------------------------------------------------------
# packing


def name_ok(name: str) -> bool:
    """Whether `name` (absolute, dotted) can be written on the wire."""
    try:
        _encode_labels(name)
    except WireError:
        return False
    return True


@lru_cache(maxsize=8192)
def _encode_labels(name: str) -> tuple[tuple[str, bytes], ...]:
    """(lower-cased suffix from this label on, label bytes) for each label of a name."""
    if name in (".", ""):
        return ()
    text = name[:-1] if name.endswith(".") else name
    labels = [label.encode("utf-8", "surrogateescape") for label in text.split(".")]
    total = 1
    for label in labels:
        if not 0 < len(label) < 64:
            raise WireError(f"bad label in {name!r}")
        total += len(label) + 1
    if total > 255:
        raise WireError(f"name too long: {name!r}")
    lowered = [label.lower() for label in labels]
    return tuple((b".".join(lowered[i:]).decode("utf-8", "surrogateescape"), label)
                 for i, label in enumerate(labels))


class _Packer:
    __slots__ = ("buf", "names", "qname")

    def __init__(self, qname: bytes, compress: bool) -> None:
        self.buf = bytearray()
        self.names: dict[str, int] | None = {} if compress else None
        self.qname = qname

    def name(self, name: str | None, compressible: bool = True) -> None:
        buf = self.buf
        names = self.names
        if name is None:
            if names is not None:
                buf += b"\xc0\x0c"
            else:
                buf += self.qname
            return
        labels = _encode_labels(name)
        if names is None:
            for _, label in labels:
                buf.append(len(label))
                buf += label
            buf.append(0)
            return
        for key, label in labels:
            if compressible:
                pointer = names.get(key)
                if pointer is not None:
                    buf += (0xC000 | pointer).to_bytes(2, "big")
                    return
            if len(buf) < 0x3FFF:
                names.setdefault(key, len(buf))
            buf.append(len(label))
            buf += label
        buf.append(0)

    def record(self, rr: RR) -> None:
        buf = self.buf
        self.name(rr.name)
        rtype = rr.rtype
        rdata = rr.rdata
        if rtype == OPT:
            udp_size, options = rdata
            buf += _RR_FIXED.pack(OPT, udp_size, 0, len(options))
            buf += options
            return
        buf += _RR_TYPE_CLASS_TTL.pack(rtype, CLASS_IN, rr.ttl & 0xFFFFFFFF)
        mark = len(buf)
        buf += b"\x00\x00"
        if rtype in (A, AAAA):
            buf += rdata
        elif rtype in (NS, CNAME, PTR):
            self.name(rdata)
        elif rtype == SRV:
            buf += _SRV_FIXED.pack(*rdata[:3])
            self.name(rdata[3], compressible=False)
        elif rtype == TXT:
            for text in rdata:
                buf.append(len(text))
                buf += text
        elif rtype == SOA:
            self.name(rdata[0])
            self.name(rdata[1])
            buf += _SOA_FIXED.pack(*(value & 0xFFFFFFFF for value in rdata[2:]))
        else:
            raise WireError(f"cannot pack type {rtype}")
        rdlen = len(buf) - mark - 2
        buf[mark:mark + 2] = rdlen.to_bytes(2, "big")


def pack_message(ident: int, flags: int, question: bytes, labels: tuple[str, ...], answer: list[RR],
                 authority: list[RR], additional: list[RR], compress: bool) -> bytes:
    """Pack a reply; the question is written as received and is a compression target as a whole name."""
    packer = _Packer(question[:-4], compress)
    buf = packer.buf
    buf += _HEADER.pack(ident, flags, 1, len(answer), len(authority), len(additional))
    if packer.names is not None:
        dotted = ".".join(labels)
        if dotted.count(".") == len(labels) - 1:  # no label has a dot of its own
            packer.names[dotted] = 12
    buf += question
    for rr in answer:
        packer.record(rr)
    for rr in authority:
        packer.record(rr)
    for rr in additional:
        packer.record(rr)
    return bytes(buf)


# ---------------------------------------------------------------------------------------------------------
# replies


def reject_reply(data: bytes, rcode: int) -> bytes:
    """The header-only reply miekg/dns sends for a query it refuses to parse (FORMERR) or run (NOTIMP)."""
    flags = (data[2] << 8) | data[3]
    opcode = flags & _OPCODE_MASK if rcode == NOTIMP else 0
    out = _QR | opcode | (flags & (_RD | _CD)) | rcode
    return data[:2] + out.to_bytes(2, "big") + bytes(8)


def render(query: Query, reply: Reply, tcp: bool, compress: bool, udp_answer_limit: int,
           enable_truncate: bool) -> bytes:
    """Pack `reply` for `query`: trim to the transport, set the flags, echo EDNS."""
    answer = list(reply.answer)
    authority = list(reply.authority)
    additional = _dedup(reply.additional) if reply.additional else []
    truncated = False
    if reply.trim:
        sections = [answer, authority, additional]
        truncated = _trim(query, sections, tcp, compress, udp_answer_limit)
        answer, authority, additional = sections
    flags = _QR | (query.flags & (_OPCODE_MASK | _RD | _CD)) | reply.rcode
    if reply.authoritative:
        flags |= _AA
    if reply.recursion_available:
        flags |= _RA
    if truncated and enable_truncate:
        flags |= _TC
    if query.edns_size is not None and reply.edns:
        additional.append(RR(".", OPT, 0, (query.edns_size, _echo_subnet(query.ecs))))
    return pack_message(query.id, flags, query.question, query.labels, answer, authority, additional, compress)


def template(response: bytes) -> bytes:
    """A rendered reply with the request's RD and CD bits cleared, for `splice`."""
    out = bytearray(response)
    out[2] &= 0xFE
    out[3] &= 0xEF
    return bytes(out)


def splice(data: bytes, qend: int, cached: bytes) -> bytes:
    """A cached reply for a new query: its ID, RD and CD bits, and its question exactly as asked."""
    flags = bytes((cached[2] | (data[2] & 0x01), cached[3] | (data[3] & 0x10)))
    return data[:2] + flags + cached[4:12] + data[12:qend] + cached[qend:]


def _echo_subnet(ecs: bytes | None) -> bytes:
    """The client-subnet option echoed with scope 0 (the answer is valid for every subnet)."""
    if ecs is None:
        return b""
    source = ecs[2]
    body = ecs[:3] + b"\x00" + ecs[4:4 + (source + 7) // 8]
    return struct.pack("!HH", EDNS_CLIENT_SUBNET, len(body)) + body


def _dedup(records: list[RR]) -> list[RR]:
    seen: set[RR] = set()
    out = []
    for rr in records:
        if rr not in seen:
            seen.add(rr)
            out.append(rr)
    return out


def _trim(query: Query, sections: list[list[RR]], tcp: bool, compress: bool, udp_answer_limit: int) -> bool:
    """Consul's trimUDPResponse/trimTCPResponse: cut answers (and their additional records) to fit.

    `sections` is [answer, authority, additional], replaced in place. Returns whether answers were dropped.
    """
    answer, authority, additional = sections
    total = len(answer)
    index = _index(additional) if additional else None
    size_compress = compress

    def size() -> int:
        return len(pack_message(query.id, 0, query.question, query.labels, answer, authority, additional,
                                size_compress))

    if tcp:
        max_size = MAX_TCP_SIZE
        limit = MAX_TCP_SRV_ANSWERS if query.qtype == SRV else MAX_TCP_ANSWERS
        answer = answer[:limit]
        cut = False
        while len(answer) > 1 and size() > max_size:
            cut = True
            authority = []
            answer, additional = _shrink(query, answer, authority, additional, index, max_size, size_compress)
        sections[:] = [answer, authority, additional]
        return cut
    max_size = PLAIN_UDP_SIZE
    if query.edns_size is not None and query.edns_size > max_size:
        max_size = min(query.edns_size, MAX_UDP_SIZE)
    max_answers = min(MAX_UDP_ANSWERS, udp_answer_limit)
    if max_size == PLAIN_UDP_SIZE and total > max_answers:
        # Consul sizes plain 512-byte replies uncompressed (and still sends them compressed).
        size_compress = False
        answer = answer[:max_answers]
        if index is not None:
            additional = _sync_extra(index, answer)
    while len(answer) > 1 and size() > max_size - 8:
        authority = []
        answer, additional = _shrink(query, answer, authority, additional, index, max_size, size_compress)
    sections[:] = [answer, authority, additional]
    return len(answer) < total


def _shrink(query: Query, answer: list[RR], authority: list[RR], additional: list[RR],
            index: dict[str, RR] | None, max_size: int, compress: bool) -> tuple[list[RR], list[RR]]:
    """One step of Consul's trimming loop: a binary search when far over, else drop the last answer."""
    current = len(pack_message(query.id, 0, query.question, query.labels, answer, authority, additional,
                               compress))
    if current - max_size > 100:
        answer = answer[:_binary_truncate(query, answer, authority, index, max_size, compress, additional)]
    else:
        answer = answer[:-1]
    if index is not None:
        additional = _sync_extra(index, answer)
    return answer, additional


def _binary_truncate(query: Query, answer: list[RR], authority: list[RR], index: dict[str, RR] | None,
                     max_size: int, compress: bool, additional: list[RR]) -> int:
    start, end = 0, len(answer) + 1
    while end - start > 1:
        median = start + (end - start) // 2
        extra = _sync_extra(index, answer[:median]) if index is not None else additional
        length = len(pack_message(query.id, 0, query.question, query.labels, answer[:median], authority, extra,
                                  compress))
        if length <= max_size:
            if max_size - length < 10:
                return median
            start = median
        else:
            end = median
    return start


def _index(records: list[RR]) -> dict[str, RR]:
    index: dict[str, RR] = {}
    for rr in records:
        if rr.name is not None:
            index.setdefault(rr.name.lower(), rr)
    return index


def _sync_extra(index: dict[str, RR], answer: list[RR]) -> list[RR]:
    """The additional records SRV answers still need (Consul's syncExtra: one record per target name)."""
    extra: list[RR] = []
    resolved: set[str] = set()
    for rr in answer:
        if rr.rtype != SRV:
            continue
        target = rr.rdata[3].lower()
        while target not in resolved:
            resolved.add(target)
            found = index.get(target)
            if found is None:
                break
            extra.append(found)
            if found.rtype != CNAME:
                break
            target = found.rdata.lower()
    return extra
