"""The rendered-body cache of hot reads: keyed by everything but index/wait, valid for one index, bounded;
and through a real dev agent, every variant of a read still gets its own, current body and headers."""

from __future__ import annotations

import base64
import json
import threading

import requests
from aiohttp.test_utils import make_mocked_request

from consulpy.http.cache import ENTRY_OVERHEAD, RenderCache, cache_key
from consulpy.http.params import get_token
from tests.agentproc import AgentProcess


def test_a_body_is_rendered_once_per_key_and_index() -> None:
    cache = RenderCache()
    calls: list[int] = []

    def render(n: int) -> bytes:
        calls.append(n)
        return f"body{n}".encode()

    assert cache.body("k", 5, lambda: render(5)) == b"body5"
    assert cache.body("k", 5, lambda: render(0)) == b"body5"
    assert cache.body("k", 6, lambda: render(6)) == b"body6"
    assert cache.body("k", 5, lambda: render(5)) == b"body5"
    assert cache.body("other", 5, lambda: render(7)) == b"body7"
    assert calls == [5, 6, 5, 7]
    assert len(cache) == 2


def test_the_cache_is_bounded_in_bytes_and_skips_huge_bodies() -> None:
    cache = RenderCache(max_bytes=10 + 2 * ENTRY_OVERHEAD, max_body=6)
    cache.body("a", 1, lambda: b"aaaa")
    cache.body("b", 1, lambda: b"bbbb")
    cache.body("c", 1, lambda: b"cccc")
    assert len(cache) == 2
    assert cache.body("a", 1, lambda: b"new!") == b"new!"
    cache.body("huge", 1, lambda: b"x" * 7)
    assert cache.body("huge", 1, lambda: b"again") == b"again"


def test_the_key_ignores_only_index_and_wait() -> None:
    def key(target: str, headers: dict[str, str] | None = None) -> object:
        request = make_mocked_request("GET", target, headers=headers or {})
        return cache_key(request, get_token(request))

    base = key("/v1/health/service/web?passing&index=1")
    assert base == key("/v1/health/service/web?passing&index=9&wait=5s")
    assert base == key("/v1/health/service/web?wait=1m&passing")
    assert base != key("/v1/health/service/web?index=9")
    assert base != key("/v1/health/service/web?passing&index=9&stale")
    assert base != key("/v1/health/service/web?passing&index=9&pretty")
    assert base != key("/v1/health/service/web?passing&index=9&filter=a")
    assert base != key("/v1/health/service/web?passing&index=1", {"X-Consul-Token": "t"})
    assert key("/v1/health/service/web?tag=a") != key("/v1/health/service/web?tag=b")
    assert key("/v1/kv/a") != key("/v1/kv/a?pretty")
    assert key("/v1/kv/a?x=1%262") != key("/v1/kv/a?x=1&2&index=1")


def _register(agent: AgentProcess, node: str, status: str, tag: str) -> None:
    body = {"Node": node, "Address": "10.0.0.1", "Service": {"Service": "web", "Tags": [tag], "Port": 80},
            "Checks": [{"CheckID": "web", "Name": "web", "Status": status, "ServiceID": "web"}]}
    assert requests.put(f"{agent.http}/v1/catalog/register", data=json.dumps(body), timeout=5).json() is True


def test_every_variant_of_a_read_gets_its_own_current_body(dev_agent: AgentProcess) -> None:
    health = f"{dev_agent.http}/v1/health/service/web"
    _register(dev_agent, "n1", "passing", "a")
    _register(dev_agent, "n2", "critical", "b")
    for _ in range(2):
        assert len(requests.get(health, timeout=5).json()) == 2
        assert [e["Node"]["Node"] for e in requests.get(f"{health}?passing", timeout=5).json()] == ["n1"]
        assert [e["Node"]["Node"] for e in requests.get(f"{health}?tag=b", timeout=5).json()] == ["n2"]
        filtered = requests.get(health, params={"filter": 'Node.Node == "n2"'}, timeout=5).json()
        assert [e["Node"]["Node"] for e in filtered] == ["n2"]
        assert requests.get(f"{health}?stale", timeout=5).headers["X-Consul-Effective-Consistency"] == "stale"
    first = requests.get(f"{health}?passing", timeout=5)
    index = int(first.headers["X-Consul-Index"])

    woken: list[requests.Response] = []
    waiter = threading.Thread(target=lambda: woken.append(
        requests.get(f"{health}?passing&index={index}&wait=10s", timeout=15)))
    waiter.start()
    _register(dev_agent, "n2", "passing", "b")
    waiter.join(15)
    [blocked] = woken
    assert int(blocked.headers["X-Consul-Index"]) > index
    assert [e["Node"]["Node"] for e in blocked.json()] == ["n1", "n2"]
    again = requests.get(f"{health}?passing", timeout=5)
    assert again.content == blocked.content
    assert again.headers["X-Consul-Index"] == blocked.headers["X-Consul-Index"]


def test_a_kv_read_follows_every_write(dev_agent: AgentProcess) -> None:
    url = f"{dev_agent.http}/v1/kv/cached"
    for value in (b"one", b"two", b"three"):
        requests.put(url, data=value, timeout=5)
        for _ in range(2):
            got = requests.get(url, timeout=5)
            assert got.json()[0]["Value"] == base64.b64encode(value).decode()
            assert int(got.headers["X-Consul-Index"]) == got.json()[0]["ModifyIndex"]
    requests.delete(url, timeout=5)
    assert requests.get(url, timeout=5).status_code == 404
    requests.put(url, data=b"back", timeout=5)
    assert requests.get(url, timeout=5).json()[0]["Value"] == "YmFjaw=="
