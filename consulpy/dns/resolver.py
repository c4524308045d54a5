"""Answers a DNS question from catalog reads the way Consul's DNS router does. Pure: no sockets.

Names handled: `[tag.]name.service[.dc[.dc]]`, RFC 2782 `_name._tag[.service][.dc]` (`_tcp` = no tag),
`node.node[.dc]`, `<hex>.addr[.dc]`, reverse `in-addr.arpa`/`ip6.arpa`, SOA and NS for any name in the zone;
in `domain` and `alt_domain`. The reads come through `CatalogReads`: the state store on servers and dev
agents, the results fetched from the servers on client agents (`consulpy.dns.remote`).
Imports: stdlib, consulpy.agent.config, consulpy.duration, consulpy.state, consulpy.dns.wire.
"""

from __future__ import annotations

import ipaddress
import random
import re
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Protocol

from consulpy.agent.config import RuntimeConfig
from consulpy.dns.wire import (
    AAAA,
    ANY,
    AXFR,
    CNAME,
    IXFR,
    NOERROR,
    NOTIMP,
    NS,
    NXDOMAIN,
    PTR,
    REFUSED,
    RR,
    SOA,
    SRV,
    TXT,
    A,
    Reply,
    name_ok,
)
from consulpy.duration import DurationError, parse_duration_value
from consulpy.state import (
    CRITICAL,
    NODE_MAINT_CHECK_ID,
    PASSING,
    SERVICE_MAINT_PREFIX,
    WARNING,
    HealthCheck,
    Node,
    NodeService,
)

Instance = tuple[Node, NodeService, list[HealthCheck]]

CONSUL_SERVICE = "consul"
MAX_NS_RECORDS = 3
MAX_CNAME_DEPTH = 3
MAX_CNAME_RECORDS = 5  # records kept from resolving a service's hostname, unless the client sent EDNS
_LOOKUP_KINDS = frozenset({"service", "connect", "virtual", "ingress", "node", "query", "workload"})
_HEX = frozenset(string.hexdigits)
_TRAILING_SPACES = re.compile(" +$")
_HOST = 0  # endpoint kind: a hostname (CNAME) instead of an address record type


@dataclass(slots=True, frozen=True)
class DNSSettings:
    """The DNS part of the agent's configuration, in the units the resolver uses (seconds, labels)."""

    domain: tuple[str, ...] = ("consul",)
    alt_domain: tuple[str, ...] = ()
    datacenter: str = "dc1"
    node_ttl: int = 0
    service_ttl: tuple[tuple[str, int], ...] = ()  # exact names
    service_ttl_prefixes: tuple[tuple[str, int], ...] = ()  # "web-*" keys as prefixes, longest first
    udp_answer_limit: int = 3
    a_record_limit: int = 0
    enable_truncate: bool = False
    only_passing: bool = False
    compress: bool = True
    node_meta_txt: bool = True
    soa_refresh: int = 3600
    soa_retry: int = 600
    soa_expire: int = 86400
    soa_min_ttl: int = 0
    recursors: tuple[tuple[str, int], ...] = ()
    recursor_timeout: float = 2.0
    recursor_random: bool = False
    allow_stale: bool = True  # how a client agent reads from the servers
    max_stale_ms: int = 87600 * 3600 * 1000
    cache_max_age: float = 0.0  # seconds a client agent reuses a service read; 0 = not at all

    @classmethod
    def from_config(cls, config: RuntimeConfig) -> DNSSettings:
        dns = config.dns_config
        exact = tuple((k, v // 10**9) for k, v in dns.service_ttl.items() if not k.endswith("*"))
        prefixes = sorted(((k[:-1], v // 10**9) for k, v in dns.service_ttl.items() if k.endswith("*")),
                          key=lambda item: -len(item[0]))
        return cls(
            domain=_labels(config.domain), alt_domain=_labels(config.alt_domain), datacenter=config.datacenter,
            node_ttl=dns.node_ttl // 10**9, service_ttl=exact, service_ttl_prefixes=tuple(prefixes),
            udp_answer_limit=dns.udp_answer_limit, a_record_limit=dns.a_record_limit,
            enable_truncate=dns.enable_truncate, only_passing=dns.only_passing,
            compress=not dns.disable_compression, node_meta_txt=dns.enable_additional_node_meta_txt,
            soa_refresh=dns.soa.refresh, soa_retry=dns.soa.retry, soa_expire=dns.soa.expire,
            soa_min_ttl=dns.soa.min_ttl, recursors=tuple(recursor_address(r) for r in config.recursors),
            recursor_timeout=dns.recursor_timeout / 1e9, recursor_random=dns.recursor_strategy == "random",
            allow_stale=dns.allow_stale, max_stale_ms=dns.max_stale // 10**6, cache_max_age=_cache_max_age(config))


def _cache_max_age(config: RuntimeConfig) -> float:
    """`dns_config.cache_max_age` in seconds when `use_cache` is on, else 0 (not kept in `DNSConfig`).

    Consul's agent cache keeps an entry fresh with background blocking queries when no max age is set;
    consulpy has no such refresher, so without a max age nothing is reused.
    """
    raw = config.raw.get("dns_config") or {}
    if raw.get("use_cache") is not True:
        return 0.0
    try:
        return max(parse_duration_value(raw.get("cache_max_age", 0)), 0) / 1e9
    except DurationError:
        return 0.0


def _labels(domain: str) -> tuple[str, ...]:
    text = domain.strip(".").lower()
    return tuple(text.split(".")) if text else ()


def recursor_address(text: str) -> tuple[str, int]:
    """`ip`, `ip:port` or `[ipv6]:port` as (host, port); port 53 when absent."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


class Question(NamedTuple):
    labels: tuple[str, ...]  # lower-cased
    qtype: int
    edns: bool = False


class _Ctx(NamedTuple):
    """One (possibly nested) lookup: the zone it fell in, who owns the answers, the type asked."""

    qname: str  # lower-cased absolute name
    owner: str | None  # record owner name; None = the question as asked
    qtype: int
    edns: bool
    zone: str  # "consul." or the alt domain, absolute
    depth: int


@lru_cache(maxsize=4096)
def _ip(address: str) -> tuple[int, bytes] | None:
    """(A or AAAA, packed) for an IP literal, IPv4-mapped IPv6 as A (Go's To4); None for anything else."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        return (A, mapped.packed) if mapped is not None else (AAAA, ip.packed)
    return A, ip.packed


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _wants(qtype: int, rtype: int) -> bool:
    return qtype in (rtype, ANY)


def _rfc1464(key: str, value: str) -> str:
    """`key=value` with RFC 1464 quoting of the key, as Consul's encodeKVasRFC1464."""
    key = key.replace("`", "``").replace("=", "`=")
    leading = len(key) - len(key.lstrip(" "))
    key = "` " * leading + key[leading:]
    found = _TRAILING_SPACES.search(key)
    if found is not None:
        key = key[:found.start()] + "` " * len(found.group(0))
    return key + "=" + value.replace("`", "``")


def meta_txt(owner: str | None, node: Node, ttl: int) -> list[RR]:
    """One TXT record per node meta key (value only for `rfc1035-` keys), in key order."""
    records = []
    for key in sorted(node.meta):
        value = node.meta[key]
        text = value if key.lower().startswith("rfc1035-") else _rfc1464(key, value)
        data = text.encode("utf-8", "surrogateescape")
        chunks = tuple(data[i:i + 255] for i in range(0, len(data), 255)) or (b"",)
        records.append(RR(owner, TXT, ttl, chunks))
    return records


def weight(svc: NodeService, checks: list[HealthCheck]) -> int:
    """The SRV weight: Weights.Warning when the instance's checks aggregate to warning, else Weights.Passing."""
    maintenance = critical = warning = False
    for check in checks:
        if check.service_name not in (svc.service, ""):
            continue
        if check.check_id == NODE_MAINT_CHECK_ID or check.check_id.startswith(SERVICE_MAINT_PREFIX):
            maintenance = True
        elif check.status == WARNING:
            warning = True
        elif check.status == CRITICAL:
            critical = True
        elif check.status != PASSING:
            return 1
    if maintenance or critical:
        return 0
    return svc.weights.warning if warning else svc.weights.passing


def ip_from_arpa(labels: tuple[str, ...]) -> str | None:
    """The address a reverse name stands for, in canonical text form."""
    try:
        if labels[-2:] == ("in-addr", "arpa") and len(labels) == 6:
            octets = labels[3::-1]
            if all(o.isascii() and o.isdigit() and (o == "0" or not o.startswith("0")) for o in octets):
                return str(ipaddress.IPv4Address(".".join(octets)))
        elif labels[-2:] == ("ip6", "arpa") and len(labels) == 34:
            nibbles = labels[31::-1]
            if all(len(n) == 1 and n in _HEX for n in nibbles):
                return str(ipaddress.IPv6Address(bytes.fromhex("".join(nibbles))))
    except ValueError:
        return None
    return None


class CatalogReads(Protocol):
    """Everything the resolver reads; `StateStore` is one, `consulpy.dns.remote.FetchedReads` another."""

    def check_service_nodes(self, name: str) -> tuple[int, list[Instance]]: ...

    def nodes(self) -> tuple[int, list[Node]]: ...

    def services(self) -> tuple[int, list[tuple[Node, NodeService]]]: ...

    def get_node(self, name: str) -> Node | None: ...


class Resolver:
    """Turns questions into `Reply`s from one source of catalog reads and one set of DNS settings."""

    def __init__(self, reads: CatalogReads, settings: DNSSettings, clock: Callable[[], float] = time.time,
                 shuffle: Callable[[list[Instance]], None] = random.shuffle) -> None:
        self.reads = reads
        self.settings = settings
        self._clock = clock
        self._shuffle = shuffle
        self._dc = settings.datacenter.lower()
        self._exact_ttl = dict(settings.service_ttl)

    def resolve(self, question: Question) -> Reply:
        return self._resolve(question.labels, question.qtype, question.edns, None, MAX_CNAME_DEPTH)

    # ------------------------------------------------------------------ dispatch

    def _zone(self, labels: tuple[str, ...]) -> tuple[str, int] | None:
        """(response zone, labels it takes) for the longest suffix that is ours, as Consul's parseDomain."""
        s = self.settings
        for start in range(len(labels)):
            suffix = labels[start:]
            if suffix == s.domain:
                return ".".join(s.domain) + ".", len(suffix)
            if s.alt_domain and suffix == s.alt_domain:
                return ".".join(s.alt_domain) + ".", len(suffix)
            if suffix == ("arpa",):
                return ".".join(s.domain) + ".", 1
        return None

    def _resolve(self, labels: tuple[str, ...], qtype: int, edns: bool, owner: str | None, depth: int) -> Reply:
        zone = self._zone(labels)
        if zone is None:
            if self.settings.recursors:
                return Reply(recurse=True)
            return Reply(rcode=REFUSED, authoritative=False, edns=False)
        ctx = _Ctx(".".join(labels) + ".", owner, qtype, edns, zone[0], depth)
        if qtype in (SOA, NS):
            return self._servers(ctx)
        if qtype in (AXFR, IXFR):
            return self._negative(NOTIMP, ctx)
        if labels[-1] == "arpa" and zone[1] == 1:
            return self._ptr(labels, ctx)
        if len(labels) > 2 and labels[1] == "addr":
            return self._addr(labels[0], ctx)
        return self._lookup(labels[:len(labels) - zone[1]], ctx)

    def _lookup(self, labels: tuple[str, ...], ctx: _Ctx) -> Reply:
        for i in range(len(labels) - 1, -1, -1):
            label = labels[i]
            if label in _LOOKUP_KINDS:
                kind, parts, suffix = label, labels[:i], labels[i + 1:]
                break
            if ctx.qtype == SRV and label.startswith("_"):
                kind, parts, suffix = "service", labels[:i + 1], labels[i + 1:]
                break
        else:
            return self._negative(NXDOMAIN, ctx)
        if self._datacenter(suffix) != self._dc:
            return self._negative(NXDOMAIN, ctx)
        if kind == "service":
            if len(parts) == 2 and parts[0].startswith("_") and parts[1].startswith("_"):
                tag = parts[1][1:]
                return self._service(parts[0][1:], "" if tag == "tcp" else tag, ctx)
            if len(parts) == 1:
                return self._service(parts[0], "", ctx)
            if len(parts) == 2:
                return self._service(parts[1], parts[0], ctx)
        elif kind == "node" and len(parts) == 1:
            return self._node(parts[0], ctx)
        return self._negative(NXDOMAIN, ctx)

    def _datacenter(self, suffix: tuple[str, ...]) -> str | None:
        """The datacenter named by the labels after the lookup kind (CE: only the default namespace/partition)."""
        count = len(suffix)
        if count == 0:
            return self._dc
        if count == 1:
            return suffix[0]
        if count not in (2, 4, 6):
            return None
        datacenter = self._dc
        for i in range(0, count, 2):
            value, key = suffix[i], suffix[i + 1]
            if key in ("dc", "cluster"):
                datacenter = value
            elif key in ("ns", "ap"):
                if value != "default":
                    return None
            elif count == 2 and value == "default":
                return key
            else:
                return None
        return datacenter

    # ------------------------------------------------------------------ answers

    def _soa(self, zone: str) -> RR:
        s = self.settings
        serial = int(self._clock()) & 0xFFFFFFFF
        return RR(zone, SOA, s.soa_min_ttl,
                  ("ns." + zone, "hostmaster." + zone, serial, s.soa_refresh, s.soa_retry, s.soa_expire,
                   s.soa_min_ttl))

    def _negative(self, rcode: int, ctx: _Ctx) -> Reply:
        """NXDOMAIN, NODATA (NOERROR, nothing) or NOTIMP: authoritative, the zone's SOA in authority."""
        return Reply(rcode=rcode, recursion_available=bool(self.settings.recursors),
                     authority=[self._soa(ctx.zone)])

    def _answer(self, answer: list[RR], additional: list[RR] | None = None, authority: list[RR] | None = None,
                varies: bool = False) -> Reply:
        return Reply(answer=answer, authority=authority or [], additional=additional or [], trim=True,
                     varies=varies, recursion_available=bool(self.settings.recursors))

    def _node_fqdn(self, node: str, zone: str) -> str:
        return f"{node}.node.{self.settings.datacenter}.{zone}"

    def _service_ttl(self, name: str) -> int:
        ttl = self._exact_ttl.get(name)
        if ttl is not None:
            return ttl
        for prefix, prefix_ttl in self.settings.service_ttl_prefixes:
            if name.startswith(prefix):
                return prefix_ttl
        return self.settings.node_ttl

    def healthy(self, name: str, tag: str) -> list[Instance]:
        """Instances of a service with the tag and no critical check (no non-passing one if only_passing)."""
        only_passing = self.settings.only_passing
        _, found = self.reads.check_service_nodes(name)
        out = []
        for node, svc, checks in found:
            if tag and tag not in (t.lower() for t in svc.tags):
                continue
            if checks and any(c.status == CRITICAL or (only_passing and c.status != PASSING) for c in checks):
                continue
            out.append((node, svc, checks))
        return out

    def _servers(self, ctx: _Ctx) -> Reply:
        """SOA (answer SOA, NS in authority) or NS (answer NS): up to 3 healthy `consul` servers, with glue."""
        servers = self.healthy(CONSUL_SERVICE, "")
        if not servers:
            return self._negative(NXDOMAIN, ctx)
        self._shuffle(servers)
        ttl = self._service_ttl(CONSUL_SERVICE)
        records: list[RR] = []
        glue: list[RR] = []
        for node, _svc, _checks in servers[:MAX_NS_RECORDS]:
            fqdn = self._node_fqdn(node.node, ctx.zone)
            if not name_ok(fqdn):
                continue
            records.append(RR(ctx.zone, NS, ttl, fqdn))
            ip = _ip(node.address)
            if ip is not None:
                glue.append(RR(fqdn, ip[0], ttl, ip[1]))
        varies = len(servers) > 1
        if ctx.qtype == SOA:
            return self._answer([self._soa(ctx.zone)], glue, records, varies=varies)
        if not records:
            return self._negative(NOERROR, ctx)
        return self._answer(records, glue, varies=varies)

    def _addr(self, text: str, ctx: _Ctx) -> Reply:
        if len(text) // 2 not in (4, 16) or len(text) % 2 or not _HEX.issuperset(text):
            return self._negative(NXDOMAIN, ctx)
        raw = bytes.fromhex(text)
        if len(raw) == 16 and raw[:12] == b"\x00" * 10 + b"\xff\xff":
            raw = raw[12:]
        rtype = A if len(raw) == 4 else AAAA
        if not _wants(ctx.qtype, rtype):
            return self._negative(NOERROR, ctx)
        return self._answer([RR(ctx.owner, rtype, self.settings.node_ttl, raw)])

    def _ptr(self, labels: tuple[str, ...], ctx: _Ctx) -> Reply:
        address = ip_from_arpa(labels)
        target = None
        if address is not None:
            target = self._ptr_target(address, ctx.zone)
        if target is None:
            return self._negative(NXDOMAIN, ctx)
        if ctx.qtype not in (PTR, ANY):
            return self._negative(NOERROR, ctx)
        return self._answer([RR(ctx.owner, PTR, 0, target)])

    def _ptr_target(self, address: str, zone: str) -> str | None:
        """A node with this address, else a service instance with it (Consul's FetchRecordsByIp)."""
        _, nodes = self.reads.nodes()
        for node in nodes:
            if node.address == address:
                fqdn = self._node_fqdn(node.node, zone)
                return fqdn if name_ok(fqdn) else None
        _, pairs = self.reads.services()
        for _node, svc in sorted(pairs, key=lambda pair: (pair[0].node, pair[1].id)):
            if svc.address == address:
                fqdn = f"{svc.service}.service.{self.settings.datacenter}.{zone}"
                return fqdn if name_ok(fqdn) else None
        return None

    def _node(self, name: str, ctx: _Ctx) -> Reply:
        node = self.reads.get_node(name)
        if node is None:
            return self._negative(NXDOMAIN, ctx)
        ttl = self.settings.node_ttl
        answer: list[RR] = []
        ip = _ip(node.address)
        if ip is not None:
            if _wants(ctx.qtype, ip[0]):
                answer.append(RR(ctx.owner, ip[0], ttl, ip[1]))
        elif node.address and ctx.qtype in (A, AAAA, ANY, CNAME):
            answer.extend(self._cname(ctx, _fqdn(node.address), ttl))
        additional: list[RR] = []
        if ctx.qtype in (TXT, ANY):
            answer.extend(meta_txt(ctx.owner, node, ttl))
        elif answer and self.settings.node_meta_txt:
            additional = meta_txt(ctx.owner, node, ttl)
        if not answer:
            return self._negative(NOERROR, ctx)
        return self._answer(answer, additional)

    def _endpoint(self, node: Node, svc: NodeService, ctx: _Ctx) -> tuple[int, bytes | str, bool] | None:
        """Where an instance is: (A/AAAA, address, uses the node's address) or (_HOST, hostname, False)."""
        address = svc.address
        node_ip = _ip(node.address)
        if address and not (node_ip is not None and _fqdn(address).lower() == ctx.qname):
            ip = _ip(address)
            if ip is not None:
                return ip[0], ip[1], address == node.address
            return _HOST, _fqdn(address), False
        if node_ip is not None:
            return node_ip[0], node_ip[1], True
        if node.address:
            return _HOST, _fqdn(node.address), False
        return None

    def _service(self, name: str, tag: str, ctx: _Ctx) -> Reply:
        instances = self.healthy(name, tag)
        if not instances:
            return self._negative(NXDOMAIN, ctx)
        if len(instances) > 1:
            self._shuffle(instances)
        ttl = self._service_ttl(name)
        varies = len(instances) > 1
        if ctx.qtype == SRV:
            return self._srv(instances, ttl, ctx, varies)
        answer: list[RR] = []
        seen: set[RR] = set()
        cname: list[RR] = []
        limit = self.settings.a_record_limit
        for node, svc, _checks in instances:
            endpoint = self._endpoint(node, svc, ctx)
            if endpoint is None:
                continue
            kind, where, _ = endpoint
            if isinstance(where, str):
                if not cname and ctx.qtype in (A, AAAA, ANY, CNAME):
                    cname = self._cname(ctx, where, ttl)
                continue
            if not _wants(ctx.qtype, kind):
                continue
            rr = RR(ctx.owner, kind, ttl, where)
            if rr in seen:
                continue
            seen.add(rr)
            answer.append(rr)
            if len(answer) == limit:
                break
        if not answer:
            answer = cname
        if not answer:
            return self._negative(NOERROR, ctx)
        return self._answer(answer, varies=varies)

    def _srv(self, instances: list[Instance], ttl: int, ctx: _Ctx, varies: bool) -> Reply:
        answer: list[RR] = []
        extra: list[RR] = []
        seen: set[tuple[str, str, int]] = set()
        meta = self.settings.node_meta_txt
        for node, svc, checks in instances:
            key = (node.node, svc.address, svc.port)
            if key in seen:
                continue
            seen.add(key)
            endpoint = self._endpoint(node, svc, ctx)
            if endpoint is None:
                continue
            kind, where, on_node = endpoint
            node_fqdn = self._node_fqdn(node.node, ctx.zone)
            srv = (1, weight(svc, checks) & 0xFFFF, svc.port & 0xFFFF)
            if isinstance(where, str):
                target = where
                if not name_ok(target):
                    continue
                answer.append(RR(ctx.owner, SRV, ttl, (*srv, target)))
                extra.extend(self._internal(ctx, target, ttl))
                if meta:
                    extra.extend(meta_txt(ctx.owner, node, ttl))
                continue
            addr_fqdn = f"{where.hex()}.addr.{self.settings.datacenter}.{ctx.zone}"
            target = node_fqdn if on_node else addr_fqdn
            if not name_ok(target) or not name_ok(node_fqdn):
                continue
            answer.append(RR(ctx.owner, SRV, ttl, (*srv, target)))
            extra.append(RR(target, kind, ttl, where))
            if meta:
                extra.extend(meta_txt(node_fqdn, node, ttl))
        if not answer:
            return self._negative(NOERROR, ctx)
        return self._answer(answer, extra, varies=varies)

    def _cname(self, ctx: _Ctx, target: str, ttl: int) -> list[RR]:
        """A CNAME to a hostname address, followed by what that name resolves to when it is ours."""
        if not name_ok(target):
            return []
        return [RR(ctx.owner, CNAME, ttl, target), *self._internal(ctx, target, ttl)]

    def _internal(self, ctx: _Ctx, target: str, ttl: int) -> list[RR]:
        """Records for a hostname inside our zones (Consul's resolveCNAME; other names are not chased)."""
        labels = _labels(target)
        zone = self._zone(labels)
        if zone is None or labels[-1] == "arpa" or ctx.depth < 1:
            return []
        reply = self._resolve(labels, ANY, ctx.edns, target, ctx.depth - 1)
        if reply.rcode != NOERROR:
            return []
        kept = [rr._replace(ttl=ttl) for rr in reply.answer if rr.rtype in (CNAME, A, AAAA, TXT)]
        return kept if ctx.edns else kept[:MAX_CNAME_RECORDS]
