"""The DNS interface of a real dev agent over UDP and TCP on port 8600: lookups, health, limits, bad input."""

from __future__ import annotations

import base64
import random
import socket
import struct
import threading
from collections.abc import Iterator

import pytest
import requests
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord

from tests.agentproc import AgentProcess
from tests.test_dns_resolver import DNSLIB_CRASHERS

DNS_PORT = 8600


def query(agent: AgentProcess, name: str, qtype: str = "A", tcp: bool = False, edns: int | None = None
          ) -> DNSRecord:
    request = DNSRecord.question(name, qtype)
    if edns is not None:
        request.add_ar(EDNS0(udp_len=edns))
    response = DNSRecord.parse(request.send(agent.address, DNS_PORT, tcp=tcp, timeout=3))
    assert response.header.id == request.header.id
    assert str(response.q.qname) == str(request.q.qname)
    return response


def raw_udp(address: str, packet: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (address, DNS_PORT))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def register(agent: AgentProcess, node: str, address: str, service: dict | None = None,
             status: str | None = None) -> None:
    body: dict = {"Node": node, "Address": address}
    if service is not None:
        body["Service"] = service
    if status is not None:
        body["Check"] = {"CheckID": f"ttl-{node}", "Name": "ttl check", "Type": "ttl", "Status": status,
                         "ServiceID": service["ID"] if service else ""}
    reply = requests.put(f"{agent.http}/v1/catalog/register", json=body, timeout=5)
    assert reply.status_code == 200 and reply.json() is True, reply.text


def answers(response: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in response.rr)


def test_service_follows_its_ttl_check_through_three_states(dev_agent: AgentProcess) -> None:
    web = {"ID": "web-1", "Service": "web", "Port": 8080}
    register(dev_agent, "web-node", "10.20.0.1", web, status="critical")
    for tcp in (False, True):
        for qtype in ("A", "SRV"):
            for _ in range(2):  # the second answer comes from the cache
                response = query(dev_agent, "web.service.consul", qtype, tcp=tcp)
                assert response.header.rcode == RCODE.NXDOMAIN and response.rr == []
                assert [QTYPE[rr.rtype] for rr in response.auth] == ["SOA"]

    register(dev_agent, "web-node", "10.20.0.1", web, status="passing")
    for tcp in (False, True):
        a = query(dev_agent, "web.service.consul", tcp=tcp)
        assert a.header.rcode == RCODE.NOERROR and a.header.aa == 1 and answers(a) == ["10.20.0.1"]
        srv = query(dev_agent, "web.service.consul", "SRV", tcp=tcp)
        assert [(r.rdata.priority, r.rdata.weight, r.rdata.port, str(r.rdata.target)) for r in srv.rr] == [
            (1, 1, 8080, "web-node.node.dc1.consul.")]
        assert [(str(rr.rname), str(rr.rdata)) for rr in srv.ar if QTYPE[rr.rtype] == "A"] == [
            ("web-node.node.dc1.consul.", "10.20.0.1")]

    register(dev_agent, "web-node", "10.20.0.1", web, status="critical")
    for tcp in (False, True):
        for qtype in ("A", "SRV"):
            assert query(dev_agent, "web.service.consul", qtype, tcp=tcp).header.rcode == RCODE.NXDOMAIN
    assert "Traceback" not in dev_agent.log()


def test_nodes_servers_and_zone_answers(dev_agent: AgentProcess) -> None:
    node = dev_agent.node_name
    a = query(dev_agent, f"{node.upper()}.node.consul")
    assert answers(a) == [dev_agent.address] and str(a.rr[0].rname) == f"{node.upper()}.node.consul."
    assert '"consul-version=1.20.1"' in [str(rr.rdata) for rr in a.ar]
    txt = query(dev_agent, f"{node}.node.dc1.consul", "TXT", tcp=True)
    assert '"consul-network-segment="' in answers(txt)
    soa = query(dev_agent, "consul", "SOA")
    assert [QTYPE[rr.rtype] for rr in soa.rr] == ["SOA"]
    assert [str(rr.rdata) for rr in soa.auth] == [f"{node}.node.dc1.consul."]
    assert [(str(rr.rname), str(rr.rdata)) for rr in soa.ar] == [(f"{node}.node.dc1.consul.", dev_agent.address)]
    ns = query(dev_agent, "consul", "NS", tcp=True)
    assert [str(rr.rdata) for rr in ns.rr] == [f"{node}.node.dc1.consul."]
    assert answers(query(dev_agent, "consul.service.consul")) == [dev_agent.address]
    assert answers(query(dev_agent, "0a000001.addr.dc1.consul")) == ["10.0.0.1"]
    nodata = query(dev_agent, f"{node}.node.consul", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and nodata.rr == [] and QTYPE[nodata.auth[0].rtype] == "SOA"
    assert query(dev_agent, "nope.node.consul").header.rcode == RCODE.NXDOMAIN
    assert query(dev_agent, "web.service.dc2.consul").header.rcode == RCODE.NXDOMAIN
    refused = query(dev_agent, "example.com", edns=1232)
    assert refused.header.rcode == RCODE.REFUSED and refused.header.aa == 0 and refused.ar == []


def test_udp_limits_edns_and_tcp(dev_agent: AgentProcess) -> None:
    for i in range(12):
        register(dev_agent, f"api-{i}", f"10.30.0.{i}", {"ID": "api", "Service": "api", "Port": 9000 + i},
                 status="passing" if i % 3 else "warning")
    plain = query(dev_agent, "api.service.consul")
    assert len(plain.rr) == 3 and plain.header.tc == 0 and plain.ar == []
    big = query(dev_agent, "api.service.consul", edns=4096)
    assert answers(big) == sorted(f"10.30.0.{i}" for i in range(12))
    assert QTYPE[big.ar[-1].rtype] == "OPT" and big.ar[-1].edns_len == 4096
    assert len(query(dev_agent, "api.service.consul", tcp=True).rr) == 12
    srv = query(dev_agent, "api.service.consul", "SRV", tcp=True)
    assert sorted(rr.rdata.port for rr in srv.rr) == list(range(9000, 9012))
    seen_orders = {tuple(str(rr.rdata) for rr in query(dev_agent, "api.service.consul", edns=4096).rr)
                   for _ in range(30)}
    assert len(seen_orders) > 3


def header(ident: int, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


QUESTION = b"\x06consul\x07service\x06consul\x00\x00\x01\x00\x01"


def test_malformed_packets_never_stop_the_server(dev_agent: AgentProcess) -> None:
    address = dev_agent.address
    formerr = {
        "qdcount 2": header(0x0101, qd=2) + QUESTION + QUESTION,
        "64-byte label": header(0x0102) + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",
        "pointer loop": header(0x0103, ar=1) + QUESTION + b"\xc0\x27\x00\x01\x00\x01" + bytes(6),
        "truncated question": header(0x0104) + b"\x06consul\x07serv",
    }
    for name, packet in formerr.items():
        reply = raw_udp(address, packet)
        assert reply is not None, name
        assert reply[:2] == packet[:2] and reply[3] & 0x0F == RCODE.FORMERR and len(reply) == 12, name
    for packet in [b"", b"\x01\x02\x03", header(0x0105)[:11], header(0x0106, flags=0x8000) + QUESTION]:
        assert raw_udp(address, packet, timeout=0.2) is None
    rng = random.Random(8600)
    junk = [base64.b64decode(text) for text in DNSLIB_CRASHERS]
    junk += [rng.randbytes(rng.randrange(1, 120)) for _ in range(400)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in junk:
            sock.sendto(packet, (address, DNS_PORT))
    with socket.create_connection((address, DNS_PORT), timeout=3) as conn:
        bad = header(0x0107, qd=2) + QUESTION + QUESTION
        good = DNSRecord.question("consul.service.consul").pack()
        conn.sendall(struct.pack("!H", len(bad)) + bad + struct.pack("!H", len(good)) + good)
        replies = [_read_frame(conn), _read_frame(conn)]
    assert replies[0][3] & 0x0F == RCODE.FORMERR
    assert answers(DNSRecord.parse(replies[1])) == [address]
    assert answers(query(dev_agent, "consul.service.consul")) == [address]
    assert requests.get(f"{dev_agent.http}/v1/status/leader", timeout=5).status_code == 200
    assert "Traceback" not in dev_agent.log()


def _read_frame(conn: socket.socket) -> bytes:
    data = b""
    while len(data) < 2:
        data += conn.recv(2 - len(data))
    length = struct.unpack("!H", data)[0]
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        assert chunk
        body += chunk
    return body


class Upstream:
    """A UDP DNS server standing in for a recursor: every A question gets 192.0.2.1."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.sock.settimeout(0.1)
        self.questions: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            request = DNSRecord.parse(data)
            self.questions.append(str(request.q.qname))
            reply = request.reply()
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
            self.sock.sendto(reply.pack(), peer)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def upstream(loopback: str) -> Iterator[Upstream]:
    server = Upstream(f"{loopback}.9", 5353)
    yield server
    server.close()


def test_recursors_alt_domain_and_servfail(start_agent, loopback: str, upstream: Upstream) -> None:
    agent = start_agent(args=("-dev", "-alt-domain", "example.internal", "-recursor", f"{loopback}.8:5353",
                              "-recursor", f"{loopback}.9:5353", "-hcl", 'dns_config { recursor_timeout = "500ms" }'))
    forwarded = query(agent, "Www.Example.COM")
    assert answers(forwarded) == ["192.0.2.1"] and forwarded.rr[0].ttl == 60
    assert upstream.questions == ["Www.Example.COM."]
    assert answers(query(agent, "consul.service.example.internal")) == [agent.address]
    missing = query(agent, "nope.service.example.internal")
    assert missing.header.rcode == RCODE.NXDOMAIN and missing.header.ra == 1
    assert str(missing.auth[0].rname) == "example.internal."
    upstream.close()
    failed = query(agent, "www.example.com")
    assert failed.header.rcode == RCODE.SERVFAIL and failed.header.ra == 1 and failed.header.aa == 0
    assert "Traceback" not in agent.log()


def test_dns_port_minus_one_disables_the_listener(start_agent) -> None:
    agent = start_agent(args=("-dev", "-dns-port", "-1"))
    assert raw_udp(agent.address, DNSRecord.question("consul.service.consul").pack(), timeout=0.3) is None
    with pytest.raises(OSError):
        socket.create_connection((agent.address, DNS_PORT), timeout=1).close()
    assert "Started DNS server" not in agent.log()


def test_busy_dns_port_fails_the_start_cleanly(start_agent, loopback: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((f"{loopback}.2", DNS_PORT))
        with pytest.raises(RuntimeError) as failed:
            start_agent()
    message = str(failed.value)
    assert f"error starting DNS server: listen udp {loopback}.2:{DNS_PORT}" in message
    assert "Traceback" not in message


def test_a_burst_from_several_clients_gets_every_reply_once_to_its_sender(dev_agent: AgentProcess) -> None:
    # Replies to one read burst are sent together after it: each must still reach the socket that asked, once.
    register(dev_agent, "burst-node", "10.7.0.1", {"ID": "burst", "Service": "burst", "Port": 80}, "passing")
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        asked: list[dict[int, str]] = [{}, {}]
        for n in range(300):
            client = n % 2
            ident = 0x4000 + n
            if n % 10 == 9:
                packet, expected = header(ident, qd=2) + QUESTION + QUESTION, "FORMERR"
            else:
                request = DNSRecord.question("burst.service.consul" if n % 3 else "nothing.service.consul")
                request.header.id = ident
                packet, expected = request.pack(), "NOERROR" if n % 3 else "NXDOMAIN"
            asked[client][ident] = expected
            clients[client].sendto(packet, (dev_agent.address, DNS_PORT))
        for client, sock in enumerate(clients):
            sock.settimeout(3)
            seen: dict[int, str] = {}
            while len(seen) < len(asked[client]):
                reply = sock.recv(65535)
                ident = struct.unpack("!H", reply[:2])[0]
                assert ident not in seen, f"a second reply to {ident:#x}"
                seen[ident] = RCODE.get(reply[3] & 0x0F)
            assert seen == asked[client]
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(65535)
    finally:
        for sock in clients:
            sock.close()
