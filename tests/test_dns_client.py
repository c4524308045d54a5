"""DNS on client agents: answers come from the servers through the endpoints (stale reads), never the local store.

The unit tests drive a client agent's DNS frontend over async fakes of the Catalog and Health endpoints that
read a real state store, and compare every answer with the one a server's frontend gives from that store;
the last test runs a real server and a real client agent and asks both over UDP.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from dnslib import QTYPE, RCODE, DNSRecord

from consulpy.agent.config import load_config
from consulpy.dns.server import DNSFrontend, DNSServer, Lookup
from consulpy.endpoints.query import QueryMeta, QueryOptions
from consulpy.server.consensus import NoLeaderError
from consulpy.state import Node, NodeService, StateStore
from tests.agentproc import AgentProcess, wait_until
from tests.test_dns_resolver import Catalog

DNS_PORT = 8600


class FakeServers:
    """The Catalog and Health endpoints of a client agent, answering from `store` as a server would."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.calls: list[tuple[str, str, str]] = []  # (RPC, argument, consistency)
        self.failure: Exception | None = None
        self.last_contact_ms = 0

    def _meta(self, method: str, argument: str, opts: QueryOptions, index: int) -> QueryMeta:
        self.calls.append((method, argument, opts.consistency))
        if self.failure is not None:
            raise self.failure
        return QueryMeta(index=index, last_contact_ms=self.last_contact_ms if opts.consistency == "stale" else 0)

    async def service_nodes(self, opts: QueryOptions, service: str, tags: list[str], passing: bool,
                            node_meta: dict[str, str]) -> tuple[QueryMeta, list[Any]]:
        index, found = self.store.check_service_nodes(service)
        return self._meta("Health.ServiceNodes", service, opts, index), found

    async def node_services(self, opts: QueryOptions, node: str
                            ) -> tuple[QueryMeta, tuple[Node | None, list[NodeService]]]:
        index, found, services = self.store.node_services(node)
        return self._meta("Catalog.NodeServices", node, opts, index), (found, services)

    async def list_nodes(self, opts: QueryOptions, node_meta: dict[str, str]) -> tuple[QueryMeta, list[Node]]:
        index, nodes = self.store.nodes()
        return self._meta("Catalog.ListNodes", "", opts, index), nodes

    async def list_services(self, opts: QueryOptions, node_meta: dict[str, str]
                            ) -> tuple[QueryMeta, list[tuple[Node, NodeService]]]:
        index, pairs = self.store.services()
        return self._meta("Catalog.ListServices", "", opts, index), pairs


def client_agent(tmp_path: Path, servers: FakeServers, *args: str) -> Any:
    """What a client agent's DNS uses: its config, its (empty) store and its endpoints."""
    config = load_config(["-data-dir", str(tmp_path), *args]).config
    assert not config.server and not config.dev
    return SimpleNamespace(config=config, store=StateStore(), catalog=servers, health=servers,
                           client_hosts=lambda: list(config.client_addr))


def client_frontend(tmp_path: Path, servers: FakeServers, *args: str) -> DNSFrontend:
    return DNSFrontend(client_agent(tmp_path, servers, *args))


def ask(frontend: DNSFrontend, name: str, qtype: str = "A") -> DNSRecord:
    request = DNSRecord.question(name, qtype)
    out = frontend.answer(bytes(request.pack()), False)
    if isinstance(out, Lookup):
        out = asyncio.run(frontend.complete(out, False))
    assert isinstance(out, bytes)
    response = DNSRecord.parse(out)
    assert response.header.id == request.header.id and str(response.q.qname) == str(request.q.qname)
    return response


def shape(response: DNSRecord) -> tuple[Any, ...]:
    """Header flags and each section as a sorted list (orders are shuffled; SOA serials follow the clock)."""

    def section(records: list[Any]) -> list[str]:
        return sorted(f"{rr.rname} {QTYPE[rr.rtype]} {rr.ttl} {'' if rr.rtype == QTYPE.SOA else rr.rdata}"
                      for rr in records)

    h = response.header
    return h.rcode, h.aa, h.ra, h.tc, section(response.rr), section(response.auth), section(response.ar)


@pytest.fixture
def catalog() -> Catalog:
    cat = Catalog()
    cat.register("server1", "10.1.0.1", NodeService(id="consul", service="consul", port=8300), meta={"rack": "r1"})
    cat.web("n1", "10.0.0.1", tags=("v1",))
    cat.web("n2", "10.0.0.2", "warning", port=81)
    cat.web("n3", "10.0.0.3", "critical")
    cat.web("n4", "10.0.0.4", service_address="10.9.0.4", name="api")
    cat.web("n5", "10.0.0.5", service_address="web.service.consul", name="alias")
    cat.web("n6", "10.0.0.6", service_address="db.example.com", name="external")
    return cat


QUESTIONS = [
    ("web.service.consul", "A"), ("web.service.consul", "SRV"), ("_web._tcp.service.consul", "SRV"),
    ("v1.web.service.consul", "A"), ("v2.web.service.consul", "A"), ("web.service.dc1.consul", "ANY"),
    ("web.service.dc2.consul", "A"), ("missing.service.consul", "A"), ("api.service.consul", "SRV"),
    ("alias.service.consul", "A"), ("alias.service.consul", "SRV"), ("external.service.consul", "A"),
    ("n1.node.consul", "A"), ("server1.node.consul", "TXT"), ("server1.node.consul", "ANY"),
    ("missing.node.consul", "A"), ("consul.", "SOA"), ("consul.", "NS"), ("anything.consul.", "SOA"),
    ("1.0.0.10.in-addr.arpa", "PTR"), ("4.0.9.10.in-addr.arpa", "PTR"), ("9.9.9.9.in-addr.arpa", "PTR"),
    ("0a000001.addr.consul", "A"), ("web.service.consul", "AXFR"), ("www.example.com", "A"),
]


def test_a_client_answers_every_question_as_a_server_does_from_its_store(tmp_path: Path, catalog: Catalog) -> None:
    servers = FakeServers(catalog.store)
    client = client_frontend(tmp_path, servers)
    server = DNSFrontend(SimpleNamespace(config=load_config(["-dev"]).config, store=catalog.store))  # type: ignore[arg-type]
    assert client.remote is not None and server.remote is None
    for name, qtype in QUESTIONS:
        assert shape(ask(client, name, qtype)) == shape(ask(server, name, qtype)), (name, qtype)
    assert client.agent.store.last_index == 0


def test_each_question_makes_the_stale_reads_it_needs_and_nothing_is_cached(tmp_path: Path,
                                                                           catalog: Catalog) -> None:
    servers = FakeServers(catalog.store)
    client = client_frontend(tmp_path, servers)
    for _ in range(2):
        assert ask(client, "web.service.consul").header.rcode == RCODE.NOERROR
    assert servers.calls == [("Health.ServiceNodes", "web", "stale")] * 2
    servers.calls.clear()
    ask(client, "alias.service.consul")  # a CNAME to a name of ours, resolved too
    assert servers.calls == [("Health.ServiceNodes", "alias", "stale"), ("Health.ServiceNodes", "web", "stale")]
    servers.calls.clear()
    ask(client, "4.0.9.10.in-addr.arpa", "PTR")
    assert servers.calls == [("Catalog.ListNodes", "", "stale"), ("Catalog.ListServices", "", "stale")]
    servers.calls.clear()
    ask(client, "n1.node.consul")
    ask(client, "0a000001.addr.consul")
    ask(client, "www.example.com")
    assert servers.calls == [("Catalog.NodeServices", "n1", "stale")]

    catalog.web("n1", "10.0.0.1", "critical", tags=("v1",))
    assert sorted(str(rr.rdata) for rr in ask(client, "web.service.consul").rr) == ["10.0.0.2"]


def test_allow_stale_off_and_max_stale_ask_the_leader(tmp_path: Path, catalog: Catalog) -> None:
    servers = FakeServers(catalog.store)
    ask(client_frontend(tmp_path, servers, "-hcl", "dns_config { allow_stale = false }"), "web.service.consul")
    assert servers.calls == [("Health.ServiceNodes", "web", "default")]
    servers.calls.clear()
    servers.last_contact_ms = 6000
    stale_bound = client_frontend(tmp_path, servers, "-hcl", 'dns_config { max_stale = "5s" }')
    assert ask(stale_bound, "web.service.consul").header.rcode == RCODE.NOERROR
    assert servers.calls == [("Health.ServiceNodes", "web", "stale"), ("Health.ServiceNodes", "web", "default")]


def test_use_cache_reuses_service_reads_for_cache_max_age(tmp_path: Path, catalog: Catalog) -> None:
    servers = FakeServers(catalog.store)
    client = client_frontend(tmp_path, servers, "-hcl", 'dns_config { use_cache = true\ncache_max_age = "1h" }')
    for qtype in ("A", "SRV", "A"):
        ask(client, "web.service.consul", qtype)
    ask(client, "n1.node.consul")
    ask(client, "n1.node.consul")
    assert servers.calls == [("Health.ServiceNodes", "web", "stale")] + [("Catalog.NodeServices", "n1", "stale")] * 2
    servers.calls.clear()
    ask(client_frontend(tmp_path, servers, "-hcl", "dns_config { use_cache = true }"), "web.service.consul")
    ask(client_frontend(tmp_path, servers, "-hcl", 'dns_config { cache_max_age = "1h" }'), "web.service.consul")
    assert len(servers.calls) == 2


def test_names_outside_our_zones_go_to_the_recursors_without_a_read(tmp_path: Path, loopback: str,
                                                                   catalog: Catalog) -> None:
    servers = FakeServers(catalog.store)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
        upstream.bind((f"{loopback}.9", 0))
        upstream.settimeout(5)
        host, port = upstream.getsockname()
        client = client_frontend(tmp_path, servers, "-recursor", f"{host}:{port}",
                                 "-hcl", 'dns_config { recursor_timeout = "200ms" }')
        response = ask(client, "www.example.com")
        assert DNSRecord.parse(upstream.recv(512)).q.qname == "www.example.com."
    assert response.header.rcode == RCODE.SERVFAIL and response.header.ra == 1
    assert servers.calls == []


@pytest.mark.parametrize("name,qtype", [("web.service.consul", "A"), ("n1.node.consul", "A"), ("consul.", "NS"),
                                        ("1.0.0.10.in-addr.arpa", "PTR")])
def test_no_leader_answers_servfail(tmp_path: Path, catalog: Catalog, name: str, qtype: str) -> None:
    servers = FakeServers(catalog.store)
    servers.failure = NoLeaderError()
    response = ask(client_frontend(tmp_path, servers), name, qtype)
    assert response.header.rcode == RCODE.SERVFAIL and response.header.aa == 0
    assert response.rr == [] and response.auth == []
    servers.failure = None
    assert ask(client_frontend(tmp_path, servers), name, qtype).header.rcode == RCODE.NOERROR


def test_a_client_agents_dns_port_answers_over_udp_and_tcp(tmp_path: Path, loopback: str, catalog: Catalog) -> None:
    servers = FakeServers(catalog.store)
    address = f"{loopback}.2"
    dns = DNSServer(client_agent(tmp_path, servers, "-client", address))

    async def send(qtype: str, tcp: bool) -> DNSRecord:
        request = DNSRecord.question("web.service.consul", qtype)
        packet = await asyncio.to_thread(request.send, address, DNS_PORT, tcp=tcp, timeout=3)
        return DNSRecord.parse(packet)

    async def scenario() -> list[DNSRecord]:
        await dns.start()
        try:
            out = [await send("SRV", False), await send("SRV", True)]
            servers.failure = NoLeaderError()
            return [*out, await send("A", False)]
        finally:
            await dns.stop()

    udp, tcp, failed = asyncio.run(asyncio.wait_for(scenario(), 15))
    for response in (udp, tcp):
        assert response.header.rcode == RCODE.NOERROR
        assert sorted(str(rr.rdata).split()[2] for rr in response.rr) == ["80", "81"]
    assert failed.header.rcode == RCODE.SERVFAIL
    with pytest.raises(OSError):
        socket.create_connection((address, DNS_PORT), timeout=1).close()


def dig(agent: AgentProcess, name: str, qtype: str = "A") -> DNSRecord:
    request = DNSRecord.question(name, qtype)
    response = DNSRecord.parse(request.send(agent.address, DNS_PORT, timeout=5))
    assert response.header.id == request.header.id
    return response


def records(response: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in response.rr)


def test_a_client_agent_answers_from_the_servers(start_agent, tmp_path: Path) -> None:
    server = start_agent(host=2, args=("-server", "-bootstrap-expect", "1", "-data-dir", str(tmp_path / "d1")))
    client = start_agent(host=3, args=("-data-dir", str(tmp_path / "d2"), "-retry-join", server.address,
                                       "-hcl", 'performance { rpc_hold_timeout = "1s" }'))
    web = {"Name": "web", "Port": 8080, "Address": "10.30.0.7"}
    reply = requests.put(f"{client.http}/v1/agent/service/register", json=web, timeout=10)
    assert reply.status_code == 200, reply.text

    for agent in (client, server):
        wait_until(lambda agent=agent: records(dig(agent, "web.service.consul")) == ["10.30.0.7"], timeout=10)
        assert records(dig(agent, "web.service.consul", "SRV")) == ["1 1 8080 0a1e0007.addr.dc1.consul."]
        assert records(dig(agent, f"{client.node_name}.node.consul")) == [client.address]
        assert records(dig(agent, "consul.service.consul")) == [server.address]
        assert dig(agent, "nope.service.consul").header.rcode == RCODE.NXDOMAIN

    server.kill()
    failed = dig(client, "web.service.consul")
    assert failed.header.rcode == RCODE.SERVFAIL and failed.rr == []
    assert 'agent.dns: rpc error: error="' in client.log()
    assert "Traceback" not in client.log()
