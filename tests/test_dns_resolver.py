"""DNS resolver and wire format on a state store filled through the FSM: no sockets, dnslib as the client."""

from __future__ import annotations

import base64
import random
import struct
from dataclasses import replace
from types import SimpleNamespace

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord, EDNSOption

from consulpy.agent.config import RuntimeConfig, load_config
from consulpy.dns import wire
from consulpy.dns.resolver import DNSSettings, Question, Resolver, _rfc1464, weight
from consulpy.dns.server import SHUFFLE_VARIANTS, DNSFrontend
from consulpy.fsm import FSM, RegisterRequest
from consulpy.state import HealthCheck, Node, NodeService, StateStore, Weights

# Inputs that made dnslib 0.9.26 raise from parse()/pack() (shared/reference/reliability.md §2.3).
DNSLIB_CRASHERS = [
    "//n/AQAAAAEAAAAAAAAvAAAAAAD7AAEAAAAAAAAvAAAAAAD7CAo=",
    "AQAAAAAAAAIAAP8AAgICAhICAgICAgICAgICAAEBm/gAAgICAjsCBv//////AQAAAAAAAgAAAAICAgJ9AgICAAAAAAIAMQ==",
    "AAz/AQAAAAABAAAAAAEBAQEBAQAMAAz/AP8BAQEBAQEBAQEBAQEBAQEADAAM/wD/AA==",
]


class Catalog:
    """A state store written only through FSM commands, as the agent does."""

    def __init__(self) -> None:
        self.store = StateStore()
        self.fsm = FSM(self.store)
        self.index = 0

    def register(self, node: str, address: str, service: NodeService | None = None,
                 checks: tuple[HealthCheck, ...] = (), meta: dict[str, str] | None = None) -> None:
        self.index += 1
        result = self.fsm.apply(self.index, RegisterRequest(
            node=Node(id="", node=node, address=address, meta=meta or {}), service=service, checks=checks))
        assert result is True, result

    def web(self, node: str, address: str, status: str = "passing", port: int = 80, tags: tuple[str, ...] = (),
            service_address: str = "", weights: Weights | None = None, name: str = "web") -> None:
        svc = NodeService(id=f"{name}-{node}", service=name, port=port, tags=tags, address=service_address,
                          weights=weights or Weights())
        check = HealthCheck(node=node, check_id=f"check-{name}-{node}", name="check", status=status,
                            service_id=svc.id)
        self.register(node, address, svc, (check,))


def settings(*args: str) -> DNSSettings:
    return DNSSettings.from_config(load_config(["-dev", *args]).config)


def ask(resolver: Resolver, name: str, qtype: str = "A", tcp: bool = False, edns: int | None = None,
        options: list[EDNSOption] | None = None) -> DNSRecord:
    request = DNSRecord.question(name, qtype)
    if edns is not None:
        request.add_ar(EDNS0(udp_len=edns, opts=options or []))
    data = request.pack()
    query = wire.parse_query(data)
    reply = resolver.resolve(Question(query.labels, query.qtype, query.edns_size is not None))
    s = resolver.settings
    out = wire.render(query, reply, tcp, s.compress, s.udp_answer_limit, s.enable_truncate)
    response = DNSRecord.parse(out)
    response.wire_size = len(out)
    assert response.header.id == request.header.id
    assert str(response.q.qname) == str(request.q.qname)
    return response


def rdatas(response: DNSRecord, section: str = "rr", rtype: str | None = None) -> list[str]:
    return [str(rr.rdata) for rr in getattr(response, section) if rtype is None or QTYPE[rr.rtype] == rtype]


def soa_only(response: DNSRecord, rcode: int, zone: str = "consul.") -> None:
    assert response.header.rcode == rcode
    assert response.header.aa == 1
    assert response.rr == []
    assert [(str(rr.rname), QTYPE[rr.rtype]) for rr in response.auth] == [(zone, "SOA")]


@pytest.fixture
def catalog() -> Catalog:
    cat = Catalog()
    cat.register("server1", "10.1.0.1", NodeService(id="consul", service="consul", port=8300),
                 meta={"rack": "r1", "rfc1035-plain": "just value"})
    return cat


def test_service_a_excludes_critical_includes_warning(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1", "passing")
    catalog.web("n2", "10.0.0.2", "warning")
    catalog.web("n3", "10.0.0.3", "critical")
    resolver = Resolver(catalog.store, settings())
    response = ask(resolver, "web.service.consul")
    assert response.header.rcode == RCODE.NOERROR and response.header.aa == 1 and response.header.ra == 0
    assert sorted(rdatas(response)) == ["10.0.0.1", "10.0.0.2"]
    assert all(rr.ttl == 0 for rr in response.rr)
    only_passing = Resolver(catalog.store, settings("-hcl", "dns_config { only_passing = true }"))
    assert rdatas(ask(only_passing, "web.service.consul")) == ["10.0.0.1"]


def test_node_level_critical_check_hides_every_instance_on_it(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1")
    catalog.web("n2", "10.0.0.2")
    catalog.register("n2", "10.0.0.2", checks=(HealthCheck(node="n2", check_id="serfHealth", name="serf",
                                                            status="critical"),))
    resolver = Resolver(catalog.store, settings())
    assert rdatas(ask(resolver, "web.service.consul")) == ["10.0.0.1"]


def test_no_healthy_instance_is_nxdomain_and_unknown_names_too(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1", "critical")
    resolver = Resolver(catalog.store, settings("-hcl", "dns_config { soa { min_ttl = 30 } }"))
    for name, qtype in [("web.service.consul", "A"), ("web.service.consul", "SRV"), ("nope.service.consul", "A"),
                        ("nope.node.consul", "A"), ("consul", "A"), ("foo.consul", "A"),
                        ("a.b.web.service.consul", "A"), ("web.service.dc2.consul", "A"), ("x.query.consul", "A")]:
        response = ask(resolver, name, qtype)
        soa_only(response, RCODE.NXDOMAIN)
        assert response.auth[0].ttl == 30
        soa = response.auth[0].rdata
        assert (str(soa.mname), str(soa.rname), soa.times[1:]) == ("ns.consul.", "hostmaster.consul.",
                                                                   (3600, 600, 86400, 30))


def test_tags_and_rfc2782(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1", tags=("Primary",))
    catalog.web("n2", "10.0.0.2", tags=("udp",))
    resolver = Resolver(catalog.store, settings())
    assert rdatas(ask(resolver, "primary.web.service.consul")) == ["10.0.0.1"]
    assert rdatas(ask(resolver, "PRIMARY.web.service.dc1.consul")) == ["10.0.0.1"]
    assert len(rdatas(ask(resolver, "_web._tcp.service.consul", "SRV", edns=4096))) == 2
    assert [r.split()[2] for r in rdatas(ask(resolver, "_web._udp.service.consul", "SRV"))] == ["80"]
    assert len(rdatas(ask(resolver, "_web._tcp.consul", "SRV", edns=4096))) == 2
    assert len(rdatas(ask(resolver, "_web._tcp.dc1.consul", "SRV", edns=4096))) == 2
    soa_only(ask(resolver, "_web._tcp.consul", "A"), RCODE.NXDOMAIN)
    soa_only(ask(resolver, "other.web.service.consul"), RCODE.NXDOMAIN)


def test_datacenter_forms(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1")
    resolver = Resolver(catalog.store, settings())
    for name in ["web.service.dc1.consul", "web.service.dc1.dc.consul", "web.service.DC1.consul",
                 "server1.node.dc1.dc.consul", "web.service.default.dc1.consul",
                 "web.service.default.ns.dc1.dc.consul"]:
        assert ask(resolver, name).rr, name
    for name in ["web.service.dc2.consul", "web.service.dc2.dc.consul", "server1.node.dc2.consul",
                 "web.service.team.ns.dc1.dc.consul", "web.service.a.b.c.consul"]:
        soa_only(ask(resolver, name), RCODE.NXDOMAIN)


def test_srv_targets_weights_and_additional(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1", "passing", port=8080, weights=Weights(passing=10, warning=2))
    catalog.web("n2", "10.0.0.2", "warning", port=8081, weights=Weights(passing=10, warning=2))
    catalog.web("n3", "10.0.0.3", port=8082, service_address="192.168.0.3")
    catalog.web("n4", "10.0.0.4", port=8083, service_address="10.0.0.4")
    catalog.web("n5", "10.0.0.5", port=8084, service_address="2001:db8::5")
    catalog.register("n1", "10.0.0.1", meta={"zone": "a"})
    resolver = Resolver(catalog.store, settings())
    response = ask(resolver, "web.service.consul", "SRV", edns=4096)
    srv = {rr.rdata.port: rr.rdata for rr in response.rr}
    assert {port: (r.priority, r.weight, str(r.target)) for port, r in srv.items()} == {
        8080: (1, 10, "n1.node.dc1.consul."),
        8081: (1, 2, "n2.node.dc1.consul."),
        8082: (1, 1, "c0a80003.addr.dc1.consul."),
        8083: (1, 1, "n4.node.dc1.consul."),
        8084: (1, 1, "20010db8000000000000000000000005.addr.dc1.consul."),
    }
    extra = {(str(rr.rname), QTYPE[rr.rtype], str(rr.rdata)) for rr in response.ar}
    assert ("c0a80003.addr.dc1.consul.", "A", "192.168.0.3") in extra
    assert ("20010db8000000000000000000000005.addr.dc1.consul.", "AAAA", "2001:db8::5") in extra
    assert ("n1.node.dc1.consul.", "A", "10.0.0.1") in extra
    assert ("n1.node.dc1.consul.", "TXT", '"zone=a"') in extra
    assert ("n3.node.dc1.consul.", "TXT", '"zone=a"') not in extra
    assert QTYPE[response.ar[-1].rtype] == "OPT" and response.ar[-1].edns_len == 4096
    quiet = Resolver(catalog.store, settings("-hcl", "dns_config { enable_additional_node_meta_txt = false }"))
    assert "TXT" not in {QTYPE[rr.rtype] for rr in ask(quiet, "web.service.consul", "SRV", edns=4096).ar}


def test_wrong_type_is_nodata_with_soa(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1")
    resolver = Resolver(catalog.store, settings())
    for name, qtype in [("web.service.consul", "AAAA"), ("web.service.consul", "MX"), ("server1.node.consul", "AAAA"),
                        ("server1.node.consul", "SRV"), ("0a000001.addr.consul", "AAAA")]:
        soa_only(ask(resolver, name, qtype), RCODE.NOERROR)
    catalog.web("n6", "2001:db8::6", name="v6")
    assert rdatas(ask(resolver, "v6.service.consul", "AAAA")) == ["2001:db8::6"]
    soa_only(ask(resolver, "v6.service.consul", "A"), RCODE.NOERROR)
    assert rdatas(ask(resolver, "v6.service.consul", "ANY")) == ["2001:db8::6"]


def test_ttls_from_config(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1")
    catalog.web("n2", "10.0.0.2", name="webapp")
    catalog.web("n3", "10.0.0.3", name="db")
    resolver = Resolver(catalog.store, settings(
        "-hcl", 'dns_config { node_ttl = "10s" service_ttl = { "web" = "7s", "web*" = "5s", "*" = "3s" } }'))
    assert ask(resolver, "web.service.consul").rr[0].ttl == 7
    assert ask(resolver, "webapp.service.consul").rr[0].ttl == 5
    assert ask(resolver, "db.service.consul", "SRV").rr[0].ttl == 3
    assert ask(resolver, "server1.node.consul").rr[0].ttl == 10
    plain = Resolver(catalog.store, settings("-hcl", 'dns_config { node_ttl = "10s" }'))
    assert ask(plain, "db.service.consul").rr[0].ttl == 10


def test_node_lookup_and_meta_txt(catalog: Catalog) -> None:
    resolver = Resolver(catalog.store, settings())
    response = ask(resolver, "SERVER1.node.consul")
    assert rdatas(response) == ["10.1.0.1"]
    assert str(response.rr[0].rname) == "SERVER1.node.consul."
    assert sorted(rdatas(response, "ar")) == ['"just value"', '"rack=r1"']
    any_response = ask(resolver, "server1.node.dc1.consul", "ANY")
    assert sorted(rdatas(any_response)) == ['"just value"', '"rack=r1"', "10.1.0.1"]
    assert sorted(rdatas(ask(resolver, "server1.node.consul", "TXT"))) == ['"just value"', '"rack=r1"']
    assert _rfc1464("a=b", "c`d") == "a`=b=c``d"
    assert _rfc1464("  k ", "v") == "` ` k` =v"


def test_soa_and_ns_list_at_most_three_servers_with_glue(catalog: Catalog) -> None:
    for i in range(2, 6):
        catalog.register(f"server{i}", f"10.1.0.{i}", NodeService(id="consul", service="consul", port=8300))
    resolver = Resolver(catalog.store, settings())
    soa = ask(resolver, "consul", "SOA")
    assert [QTYPE[rr.rtype] for rr in soa.rr] == ["SOA"]
    assert len(soa.auth) == 3 and all(QTYPE[rr.rtype] == "NS" and str(rr.rname) == "consul." for rr in soa.auth)
    glue = {str(rr.rname): str(rr.rdata) for rr in soa.ar}
    assert {str(rr.rdata) for rr in soa.auth} == set(glue)
    assert all(glue[name] == f"10.1.0.{name[6]}" for name in glue)
    ns = ask(resolver, "web.service.consul", "NS")
    assert len(ns.rr) == 3 and all(str(rr.rdata).endswith(".node.dc1.consul.") for rr in ns.rr)


def test_addr_lookups(catalog: Catalog) -> None:
    resolver = Resolver(catalog.store, settings())
    assert rdatas(ask(resolver, "7f000001.addr.consul")) == ["127.0.0.1"]
    assert rdatas(ask(resolver, "7F000001.addr.dc1.consul")) == ["127.0.0.1"]
    assert rdatas(ask(resolver, "20010db8000000000000000000000001.addr.consul", "AAAA")) == ["2001:db8::1"]
    for bad in ["7f00001.addr.consul", "zz000001.addr.consul", "7f00000100.addr.consul"]:
        soa_only(ask(resolver, bad), RCODE.NXDOMAIN)


def test_ptr_lookups(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1", service_address="192.168.7.7")
    resolver = Resolver(catalog.store, settings())
    assert rdatas(ask(resolver, "1.0.1.10.in-addr.arpa", "PTR")) == ["server1.node.dc1.consul."]
    assert rdatas(ask(resolver, "7.7.168.192.in-addr.arpa", "PTR")) == ["web.service.dc1.consul."]
    soa_only(ask(resolver, "9.9.9.9.in-addr.arpa", "PTR"), RCODE.NXDOMAIN)


def test_hostname_addresses_become_cnames(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1", service_address="db.example.com", name="ext")
    catalog.web("n2", "10.0.0.2", service_address="server1.node.consul", name="alias")
    resolver = Resolver(catalog.store, settings())
    ext = ask(resolver, "ext.service.consul")
    assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in ext.rr] == [("CNAME", "db.example.com.")]
    srv = ask(resolver, "ext.service.consul", "SRV")
    assert str(srv.rr[0].rdata.target) == "db.example.com."
    alias = ask(resolver, "alias.service.consul")
    assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in alias.rr if QTYPE[rr.rtype] != "TXT"] == [
        ("CNAME", "server1.node.consul."), ("A", "10.1.0.1")]


def test_case_is_echoed_and_domain_alternatives(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1")
    resolver = Resolver(catalog.store, settings("-alt-domain", "example.internal"))
    response = ask(resolver, "WeB.SeRvIcE.CoNsUl")
    assert str(response.rr[0].rname) == "WeB.SeRvIcE.CoNsUl."
    assert rdatas(ask(resolver, "web.service.example.internal")) == ["10.0.0.1"]
    soa_only(ask(resolver, "nope.service.example.internal"), RCODE.NXDOMAIN, zone="example.internal.")
    srv = ask(resolver, "web.service.example.internal", "SRV")
    assert str(srv.rr[0].rdata.target) == "n1.node.dc1.example.internal."


def test_outside_the_domain_is_refused_without_recursors(catalog: Catalog) -> None:
    resolver = Resolver(catalog.store, settings())
    for name in ["example.com", "consul.example.com", "."]:
        response = ask(resolver, name, edns=1232)
        assert response.header.rcode == RCODE.REFUSED and response.header.aa == 0 and response.header.ra == 0
        assert response.rr == [] and response.auth == [] and response.ar == []
    recursing = Resolver(catalog.store, settings("-recursor", "10.9.9.9"))
    assert recursing.resolve(Question(("example", "com"), 1)).recurse
    assert ask(recursing, "nope.service.consul").header.ra == 1


def test_udp_answer_limit_edns_and_truncation(catalog: Catalog) -> None:
    for i in range(20):
        catalog.web(f"node-with-a-long-name-{i:02d}", f"10.0.1.{i}")
    resolver = Resolver(catalog.store, settings())
    plain = ask(resolver, "web.service.consul")
    assert len(plain.rr) == 3 and plain.header.tc == 0
    assert len(ask(resolver, "web.service.consul", edns=512).rr) == 3
    assert len(ask(resolver, "web.service.consul", edns=4096).rr) == 20
    assert len(ask(resolver, "web.service.consul", tcp=True).rr) == 20
    srv = ask(resolver, "web.service.consul", "SRV", edns=1232)
    assert 5 < len(srv.rr) < 20
    assert srv.wire_size <= 1232
    assert {str(rr.rdata.target) for rr in srv.rr} == {str(rr.rname) for rr in srv.ar if QTYPE[rr.rtype] == "A"}
    assert len(ask(resolver, "web.service.consul", "SRV", tcp=True).rr) == 20
    truncating = Resolver(catalog.store, settings("-hcl", "dns_config { enable_truncate = true }"))
    assert ask(truncating, "web.service.consul").header.tc == 1
    assert ask(truncating, "web.service.consul", edns=4096).header.tc == 0
    limited = Resolver(catalog.store, settings("-hcl", "dns_config { a_record_limit = 4, udp_answer_limit = 2 }"))
    assert len(ask(limited, "web.service.consul", tcp=True).rr) == 4
    assert len(ask(limited, "web.service.consul").rr) == 2


def test_instances_are_shuffled(catalog: Catalog) -> None:
    for i in range(6):
        catalog.web(f"n{i}", f"10.0.2.{i}")
    resolver = Resolver(catalog.store, settings())
    orders = {tuple(rdatas(ask(resolver, "web.service.consul", edns=4096))) for _ in range(40)}
    assert len(orders) > 5
    assert all(sorted(order) == [f"10.0.2.{i}" for i in range(6)] for order in orders)


def test_disabled_compression_still_answers(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1")
    compressed = ask(Resolver(catalog.store, settings()), "web.service.consul", "SRV")
    plain = ask(Resolver(catalog.store, settings("-hcl", "dns_config { disable_compression = true }")),
                "web.service.consul", "SRV")
    assert str(plain.rr[0].rdata.target) == "n1.node.dc1.consul."
    assert str(plain.rr[0].rname) == "web.service.consul."
    assert plain.wire_size > compressed.wire_size


def test_weight_follows_aggregated_status() -> None:
    svc = NodeService(id="w", service="web", weights=Weights(passing=7, warning=3))

    def check(status: str, check_id: str = "c", service: str = "web") -> HealthCheck:
        return HealthCheck(node="n", check_id=check_id, name="c", status=status, service_name=service)

    assert weight(svc, []) == 7
    assert weight(svc, [check("passing"), check("warning", "d", "")]) == 3
    assert weight(svc, [check("passing"), check("warning", "d", "other")]) == 7
    assert weight(svc, [check("critical", "_node_maintenance", "")]) == 0


# ---------------------------------------------------------------------------------------------------------
# wire


def header(ident: int = 0x1234, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


QUESTION = b"\x03web\x07service\x06consul\x00\x00\x01\x00\x01"


@pytest.mark.parametrize("packet, rcode", [
    (header(qd=2) + QUESTION + QUESTION, wire.FORMERR),
    (header(qd=0), wire.FORMERR),
    (header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", wire.FORMERR),
    (header() + b"\xc0\x0c\x00\x01\x00\x01", wire.FORMERR),
    (header() + b"\x03web\x07serv", wire.FORMERR),
    (header(ar=1) + QUESTION + b"\xc0\x1d\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00", wire.FORMERR),
    (header(ar=1) + QUESTION + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x08\x00\x08\x00\x04\x00\x01\x21\x00",
     wire.FORMERR),
    (header(flags=0x2900) + QUESTION, wire.NOTIMP),
])
def test_malformed_queries_are_rejected(packet: bytes, rcode: int) -> None:
    with pytest.raises(wire.Reject) as caught:
        wire.parse_query(packet)
    assert caught.value.rcode == rcode
    reply = wire.reject_reply(packet, rcode)
    assert reply[:2] == packet[:2] and len(reply) == 12
    assert reply[3] & 0x0F == rcode and reply[2] & 0x80 and reply[2] & 0x01
    assert reply[2] & 0x78 == (0x28 if rcode == wire.NOTIMP else 0)


def test_pointer_loops_are_formerr() -> None:
    rr_tail = b"\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00"
    self_loop = header(ar=1) + QUESTION + b"\xc0\x28" + rr_tail  # the record's name at 0x28 points at itself
    mutual = header(an=1, ar=1) + QUESTION + b"\xc0\x34" + rr_tail + b"\xc0\x28" + rr_tail
    for packet in (self_loop, mutual):
        with pytest.raises(wire.Reject) as caught:
            wire.parse_query(packet)
        assert caught.value.rcode == wire.FORMERR


def test_short_packets_and_responses_are_dropped() -> None:
    for packet in [b"", b"\x12", header()[:11], header(flags=0x8100) + QUESTION]:
        with pytest.raises(wire.Drop):
            wire.parse_query(packet)


def test_dnslib_crashers_and_random_bytes_never_escape() -> None:
    rng = random.Random(2026)
    packets = [base64.b64decode(text) for text in DNSLIB_CRASHERS]
    packets += [rng.randbytes(rng.randrange(0, 80)) for _ in range(3000)]
    packets += [header() + rng.randbytes(rng.randrange(0, 60)) for _ in range(3000)]
    valid = DNSRecord.question("web.service.consul", "SRV").pack()
    packets += [bytes(b ^ (rng.randrange(256) if rng.random() < 0.1 else 0) for b in valid) for _ in range(3000)]
    for packet in packets:
        try:
            wire.parse_query(packet)
            wire.cache_key(packet)
        except (wire.Drop, wire.Reject):
            pass


def test_edns_client_subnet_is_echoed_with_global_scope(catalog: Catalog) -> None:
    catalog.web("n1", "10.0.0.1")
    resolver = Resolver(catalog.store, settings())
    ecs = EDNSOption(8, bytes([0, 1, 24, 0, 192, 0, 2]))
    response = ask(resolver, "web.service.consul", edns=1400, options=[ecs])
    opt = response.ar[-1]
    assert opt.edns_len == 1400
    assert [(o.code, o.data) for o in opt.rdata] == [(8, bytes([0, 1, 24, 0, 192, 0, 2]))]


def test_cache_key_folds_case_and_splice_restores_the_query() -> None:
    first = DNSRecord.question("Web.Service.Consul", "A")
    second = DNSRecord.question("WEB.service.CONSUL", "A")
    second.header.rd = 0
    key1, end1 = wire.cache_key(first.pack())  # type: ignore[misc]
    key2, end2 = wire.cache_key(second.pack())  # type: ignore[misc]
    assert key1 == key2 and end1 == end2
    assert wire.cache_key(DNSRecord.question("web.service.consul", "AAAA").pack())[0] != key1  # type: ignore[index]
    with_ecs = DNSRecord.question("web.service.consul", "A")
    with_ecs.add_ar(EDNS0(opts=[EDNSOption(8, bytes([0, 1, 24, 0, 1, 2, 3]))]))
    assert wire.cache_key(with_ecs.pack()) is None
    query = wire.parse_query(first.pack())
    rendered = wire.render(query, wire.Reply(answer=[wire.RR(None, wire.A, 0, bytes([10, 0, 0, 1]))]),
                           False, True, 3, False)
    spliced = DNSRecord.parse(wire.splice(second.pack(), end2, wire.template(rendered)))
    assert spliced.header.id == second.header.id and spliced.header.rd == 0
    assert str(spliced.q.qname) == "WEB.service.CONSUL." and str(spliced.rr[0].rname) == "WEB.service.CONSUL."


def test_settings_follow_config() -> None:
    config = load_config(["-dev", "-domain", "Example.", "-recursor", "[::1]:5353", "-recursor", "10.0.0.1"]).config
    s = DNSSettings.from_config(replace(config, datacenter="east"))
    assert s.domain == ("example",) and s.datacenter == "east"
    assert s.recursors == (("::1", 5353), ("10.0.0.1", 53))
    assert DNSSettings.from_config(RuntimeConfig()).udp_answer_limit == 3


def test_frontend_cache_follows_the_catalog_and_the_config(catalog: Catalog) -> None:
    agent = SimpleNamespace(config=load_config(["-dev"]).config, store=catalog.store)
    frontend = DNSFrontend(agent)  # type: ignore[arg-type]
    catalog.web("n1", "10.0.0.1")

    def udp(name: str, qtype: str = "A", rd: bool = True) -> DNSRecord:
        request = DNSRecord.question(name, qtype)
        request.header.rd = int(rd)
        out = frontend.answer(bytes(request.pack()), False)
        assert isinstance(out, bytes)
        response = DNSRecord.parse(out)
        assert response.header.id == request.header.id and response.header.rd == int(rd)
        assert str(response.q.qname) == str(request.q.qname)
        return response

    assert rdatas(udp("web.service.consul")) == ["10.0.0.1"]
    hit = udp("WEB.service.consul", rd=False)
    assert rdatas(hit) == ["10.0.0.1"] and str(hit.rr[0].rname) == "WEB.service.consul."
    catalog.web("n1", "10.0.0.1", "critical")
    assert udp("web.service.consul").header.rcode == RCODE.NXDOMAIN
    catalog.web("n1", "10.0.0.1")
    for i in range(2, 6):
        catalog.web(f"n{i}", f"10.0.0.{i}")
    orders = {tuple(rdatas(udp("web.service.consul"))) for _ in range(3 * SHUFFLE_VARIANTS)}
    assert 1 < len(orders) <= SHUFFLE_VARIANTS
    agent.config = load_config(["-dev", "-hcl", "dns_config { udp_answer_limit = 1 }"]).config
    assert len(udp("web.service.consul").rr) == 1
    assert frontend.answer(b"\x00\x01", False) is None
    assert frontend.answer(header(qd=2) + QUESTION + QUESTION, False) == wire.reject_reply(
        header(qd=2) + QUESTION + QUESTION, wire.FORMERR)


def test_a_plain_query_reads_as_the_full_parser_reads_it() -> None:
    rng = random.Random(2027)
    valid = [DNSRecord.question(name, qtype).pack() for name, qtype in
             (("web.service.consul", "A"), ("Web.Service.Consul", "SRV"), ("x.node.dc1.consul", "ANY"),
              ("1.0.0.10.in-addr.arpa", "PTR"), (".", "NS"))]
    edns = DNSRecord.question("web.service.consul", "A")
    edns.add_ar(EDNS0(udp_len=1400))
    with_subnet = DNSRecord.question("web.service.consul", "A")
    with_subnet.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(8, bytes([0, 1, 24, 0, 192, 0, 2]))]))
    valid += [edns.pack(), with_subnet.pack()]
    packets = [bytes(packet) for packet in valid]
    packets += [bytes(b ^ (rng.randrange(256) if rng.random() < 0.05 else 0) for b in packet)
                for packet in valid for _ in range(2000)]
    plain = 0
    for packet in packets:
        found = wire.cache_key(packet)
        if found is None:
            continue
        plain += 1
        try:
            expected = wire.parse_query(packet)
        except (wire.Drop, wire.Reject) as exc:
            raise AssertionError(f"cache_key took a packet the parser refuses: {packet!r}") from exc
        assert wire.plain_query(packet, found[1]) == expected, packet
    assert plain > 1000
