"""The dev agent's headline flow: a service with a TTL check, seen through HTTP `?passing` and DNS.

Registered through /v1/agent/service/register, the service is absent until its check passes, present
after `check/pass`, and absent again once the TTL runs out; DNS A and SRV follow the same three states.
"""

from __future__ import annotations

import time

import requests
from dnslib import QTYPE, RCODE

from tests.agentproc import AgentProcess
from tests.test_dns import query

TTL_SECONDS = 2


def passing_ids(agent: AgentProcess) -> list[str]:
    reply = requests.get(f"{agent.http}/v1/health/service/web?passing", timeout=5)
    assert reply.status_code == 200
    return [entry["Service"]["ID"] for entry in reply.json()]


def dns_state(agent: AgentProcess) -> tuple[int, list[str], list[str]]:
    a = query(agent, "web.service.consul", "A")
    srv = query(agent, "web.service.consul", "SRV")
    assert a.header.rcode == srv.header.rcode
    a_records = [str(rr.rdata) for rr in a.rr if rr.rtype == QTYPE.A]
    srv_records = [str(rr.rdata) for rr in srv.rr if rr.rtype == QTYPE.SRV]
    return a.header.rcode, a_records, srv_records


def test_ttl_service_through_http_and_dns(dev_agent: AgentProcess) -> None:
    body = {"Name": "web", "ID": "web-1", "Address": "10.9.8.7", "Port": 8080,
            "Check": {"TTL": f"{TTL_SECONDS}s"}}
    reply = requests.put(f"{dev_agent.http}/v1/agent/service/register", json=body, timeout=5)
    assert (reply.status_code, reply.text) == (200, "")

    assert passing_ids(dev_agent) == []
    assert dns_state(dev_agent) == (RCODE.NXDOMAIN, [], [])

    reply = requests.put(f"{dev_agent.http}/v1/agent/check/pass/service:web-1", timeout=5)
    assert reply.status_code == 200
    passed_at = time.monotonic()
    assert passing_ids(dev_agent) == ["web-1"]
    rcode, a_records, srv_records = dns_state(dev_agent)
    assert (rcode, a_records) == (RCODE.NOERROR, ["10.9.8.7"])
    assert len(srv_records) == 1 and srv_records[0].startswith("1 1 8080 ")

    deadline = passed_at + TTL_SECONDS + 3
    while passing_ids(dev_agent) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert time.monotonic() - passed_at >= TTL_SECONDS * 0.9, "the check expired before its TTL"
    assert passing_ids(dev_agent) == []
    assert dns_state(dev_agent) == (RCODE.NXDOMAIN, [], [])
    checks = requests.get(f"{dev_agent.http}/v1/health/checks/web", timeout=5).json()
    assert [(c["CheckID"], c["Status"], c["Output"]) for c in checks] == [
        ("service:web-1", "critical", "TTL expired")]
