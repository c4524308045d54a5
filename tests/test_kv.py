"""/v1/kv over HTTP against a real dev agent: shapes, index rules, blocking, CAS races, bad input."""

from __future__ import annotations

import base64
import http.client
import os
import threading
import time

import requests

from tests.agentproc import AgentProcess

MAX_VALUE = 524288
DOCS = "https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size"


def raw_request(agent: AgentProcess, method: str, target: str, body: bytes | None = None
                ) -> tuple[int, dict[str, str], bytes]:
    """Send `target` byte for byte (requests would normalise dot segments and escapes)."""
    conn = http.client.HTTPConnection(agent.address, 8500, timeout=10)
    try:
        conn.request(method, target, body=body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def snapshot(agent: AgentProcess) -> tuple[object, ...]:
    """Everything a bad request must leave alone: the KV dump, the session list, and their indexes."""
    kv = requests.get(f"{agent.http}/v1/kv/?recurse", timeout=5)
    sessions = requests.get(f"{agent.http}/v1/session/list", timeout=5)
    return kv.status_code, kv.text, kv.headers["X-Consul-Index"], sessions.text, sessions.headers["X-Consul-Index"]


def index_of(response: requests.Response) -> int:
    return int(response.headers["X-Consul-Index"])


def test_put_get_delete_shapes(dev_agent: AgentProcess) -> None:
    kv = f"{dev_agent.http}/v1/kv"
    put = requests.put(f"{kv}/app/config", data=b"hello", headers={"Content-Type": "text/plain"}, timeout=5)
    assert (put.status_code, put.json()) == (200, True)
    got = requests.get(f"{kv}/app/config", timeout=5)
    assert got.status_code == 200
    [entry] = got.json()
    assert entry == {"LockIndex": 0, "Key": "app/config", "Flags": 0, "Value": base64.b64encode(b"hello").decode(),
                     "CreateIndex": entry["ModifyIndex"], "ModifyIndex": index_of(got)}
    assert got.headers["X-Consul-Knownleader"] == "true"
    assert got.headers["X-Consul-Lastcontact"] == "0"

    raw = requests.get(f"{kv}/app/config?raw", timeout=5)
    assert raw.content == b"hello"
    assert raw.headers["Content-Type"] == "text/plain"
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    assert raw.headers["Content-Security-Policy"] == "sandbox"
    assert raw.headers["Content-Length"] == "5"

    missing = requests.get(f"{kv}/app/missing", timeout=5)
    assert (missing.status_code, missing.content) == (404, b"")
    assert index_of(missing) >= index_of(got)
    assert missing.headers["X-Consul-Knownleader"] == "true"
    assert missing.headers["X-Consul-Lastcontact"] == "0"

    assert requests.put(f"{kv}/app/empty", timeout=5).json() is True
    assert requests.get(f"{kv}/app/empty", timeout=5).json()[0]["Value"] is None
    assert requests.put(f"{kv}/app/flags?flags=18446744073709551615", data=b"f", timeout=5).json() is True
    assert requests.get(f"{kv}/app/flags", timeout=5).json()[0]["Flags"] == 18446744073709551615
    assert requests.put(f"{kv}/app%2Fencoded%20key", data=b"e", timeout=5).json() is True
    assert requests.get(f"{kv}/app/encoded key?raw", timeout=5).content == b"e"
    requests.put(f"{kv}/app/sub/deep", data=b"d", timeout=5)
    largest = os.urandom(MAX_VALUE)
    assert requests.put(f"{kv}/big", data=largest, timeout=10).json() is True
    assert requests.get(f"{kv}/big?raw", timeout=10).content == largest
    assert requests.delete(f"{kv}/big", timeout=5).json() is True

    for flag in ("recurse", "recurse=", "recurse=1", "recurse=false"):
        listed = requests.get(f"{kv}/app/?{flag}", timeout=5)
        assert [e["Key"] for e in listed.json()] == [
            "app/config", "app/empty", "app/encoded key", "app/flags", "app/sub/deep"], flag
    assert requests.get(f"{kv}/app/?keys", timeout=5).json() == [
        "app/config", "app/empty", "app/encoded key", "app/flags", "app/sub/deep"]
    assert requests.get(f"{kv}/app/?keys&separator=/", timeout=5).json() == [
        "app/config", "app/empty", "app/encoded key", "app/flags", "app/sub/"]
    assert requests.get(f"{kv}/app/?keys&seperator=/", timeout=5).json()[-1] == "app/sub/"
    assert requests.get(f"{kv}/?keys&separator=/", timeout=5).json() == ["app/"]
    assert requests.get(f"{kv}/nothing/?keys", timeout=5).status_code == 404
    assert requests.get(f"{kv}/nothing/?recurse", timeout=5).status_code == 404

    config = requests.get(f"{kv}/app/config", timeout=5).json()[0]
    assert requests.put(f"{kv}/app/config?cas=0", data=b"x", timeout=5).json() is False
    assert requests.put(f"{kv}/app/config?cas={config['ModifyIndex'] + 1}", data=b"x", timeout=5).json() is False
    assert requests.put(f"{kv}/app/config?cas={config['ModifyIndex']}", data=b"v2", timeout=5).json() is True
    assert requests.put(f"{kv}/app/new?cas=0", data=b"n", timeout=5).json() is True

    assert requests.delete(f"{kv}/app/config?cas=0", timeout=5).json() is False
    assert requests.delete(f"{kv}/app/config", timeout=5).json() is True
    assert requests.get(f"{kv}/app/config", timeout=5).status_code == 404
    flags_entry = requests.get(f"{kv}/app/flags", timeout=5).json()[0]
    assert requests.delete(f"{kv}/app/flags?cas={flags_entry['ModifyIndex']}", timeout=5).json() is True
    assert requests.delete(f"{kv}/app/sub?recurse", timeout=5).json() is True
    assert requests.get(f"{kv}/app/?keys", timeout=5).json() == ["app/empty", "app/encoded key", "app/new"]
    assert requests.delete(f"{kv}/?recurse", timeout=5).json() is True
    empty = requests.get(f"{kv}/?keys", timeout=5)
    assert (empty.status_code, empty.json()) == (200, [])


def test_index_rules(dev_agent: AgentProcess) -> None:
    kv = f"{dev_agent.http}/v1/kv"
    requests.put(f"{kv}/p/a", data=b"1", timeout=5)
    requests.put(f"{kv}/p/b", data=b"2", timeout=5)
    requests.put(f"{kv}/q/c", data=b"3", timeout=5)
    a = requests.get(f"{kv}/p/a", timeout=5)
    assert index_of(a) == a.json()[0]["ModifyIndex"]
    b_index = requests.get(f"{kv}/p/b", timeout=5).json()[0]["ModifyIndex"]
    assert index_of(requests.get(f"{kv}/p/?recurse", timeout=5)) == b_index
    assert index_of(requests.get(f"{kv}/p/?keys", timeout=5)) == b_index
    requests.delete(f"{kv}/p/b", timeout=5)
    after_delete = requests.get(f"{kv}/p/?recurse", timeout=5)
    assert index_of(after_delete) > b_index  # the tombstone counts
    assert [e["Key"] for e in after_delete.json()] == ["p/a"]
    missing = requests.get(f"{kv}/p/zzz", timeout=5)
    assert index_of(missing) == index_of(after_delete)  # a missing key reports the KV table index
    assert index_of(requests.get(f"{kv}/p/a", timeout=5)) == a.json()[0]["ModifyIndex"]
    assert index_of(requests.get(f"{kv}/q/?recurse", timeout=5)) < index_of(after_delete)


def test_blocking_get_wakes_on_its_key_only(dev_agent: AgentProcess) -> None:
    kv = f"{dev_agent.http}/v1/kv"
    requests.put(f"{kv}/app/config", data=b"v1", timeout=5)
    index = index_of(requests.get(f"{kv}/app/config", timeout=5))
    result: dict[str, object] = {}

    def watch() -> None:
        response = requests.get(f"{kv}/app/config?index={index}&wait=30s", timeout=40)
        result["at"] = time.monotonic()
        result["response"] = response

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.3)
    assert requests.put(f"{kv}/app/other", data=b"noise", timeout=5).json() is True
    watcher.join(1.0)
    assert watcher.is_alive(), "a write to another key ended the blocking query"
    assert requests.put(f"{kv}/app/config", data=b"v2", timeout=5).json() is True
    put_done = time.monotonic()
    watcher.join(5)
    assert not watcher.is_alive()
    response = result["response"]
    assert isinstance(response, requests.Response) and response.status_code == 200
    assert float(result["at"]) - put_done < 1.0  # type: ignore[arg-type]  # woken by the write, not the 30 s wait
    assert index_of(response) > index
    assert base64.b64decode(response.json()[0]["Value"]) == b"v2"


def test_recurse_blocking_wakes_on_delete(dev_agent: AgentProcess) -> None:
    kv = f"{dev_agent.http}/v1/kv"
    requests.put(f"{kv}/config/app/a", data=b"1", timeout=5)
    requests.put(f"{kv}/config/app/b", data=b"2", timeout=5)
    index = index_of(requests.get(f"{kv}/config/app/?recurse", timeout=5))
    result: dict[str, requests.Response] = {}
    watcher = threading.Thread(target=lambda: result.setdefault(
        "r", requests.get(f"{kv}/config/app/?recurse&index={index}&wait=30s", timeout=40)))
    started = time.monotonic()
    watcher.start()
    time.sleep(0.3)
    assert requests.delete(f"{kv}/config/app/a", timeout=5).json() is True
    watcher.join(5)
    assert not watcher.is_alive() and time.monotonic() - started < 2
    assert index_of(result["r"]) > index
    assert [e["Key"] for e in result["r"].json()] == ["config/app/b"]
    timed_out = requests.get(f"{kv}/config/app/?recurse&index={index_of(result['r'])}&wait=200ms", timeout=5)
    assert timed_out.status_code == 200 and index_of(timed_out) == index_of(result["r"])


def test_blocking_read_of_nothing_wakes_on_a_write_next_to_it(dev_agent: AgentProcess) -> None:
    """An empty prefix or missing key answers the KV table index, and a nearby write ends its wait.

    Spring Cloud Consul's config watch blocks on each context in turn, most of them empty
    (`config/application/`); with a 55 s wait a change to `config/<app>/` would otherwise wait behind them.
    """
    kv = f"{dev_agent.http}/v1/kv"
    requests.put(f"{kv}/config/app/greeting", data=b"hello", timeout=5)
    for path in ("config/application/?recurse&", "config/application.yml?"):
        empty = requests.get(f"{kv}/{path}", timeout=5)
        assert empty.status_code == 404 and empty.content == b""
        index = index_of(empty)
        result: dict[str, requests.Response] = {}
        watcher = threading.Thread(target=lambda path=path, index=index, result=result: result.setdefault(
            "r", requests.get(f"{kv}/{path}index={index}&wait=30s", timeout=40)))
        watcher.start()
        time.sleep(0.3)
        put_done = time.monotonic()
        requests.put(f"{kv}/config/app/greeting", data=path.encode(), timeout=5)
        watcher.join(5)
        assert not watcher.is_alive() and time.monotonic() - put_done < 2, path
        assert result["r"].status_code == 404 and result["r"].content == b""
        assert index_of(result["r"]) > index


def test_cas_race_has_exactly_one_winner_per_round(dev_agent: AgentProcess) -> None:
    url = f"{dev_agent.http}/v1/kv/race"
    requests.put(url, data=b"start", timeout=5)
    sessions = [requests.Session(), requests.Session()]
    for round_no in range(40):
        index = requests.get(url, timeout=5).json()[0]["ModifyIndex"]
        barrier = threading.Barrier(2)
        outcome: list[object] = [None, None]

        def writer(n: int, index: int = index, barrier: threading.Barrier = barrier,
                    outcome: list[object] = outcome, round_no: int = round_no) -> None:
            barrier.wait()
            outcome[n] = sessions[n].put(f"{url}?cas={index}", data=f"w{n}-{round_no}", timeout=5).json()

        threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(outcome, key=str) == [False, True], (round_no, outcome)
        winner = outcome.index(True)
        assert requests.get(f"{url}?raw", timeout=5).text == f"w{winner}-{round_no}"


BAD_KV_REQUESTS: list[tuple[str, str, bytes | None, int, str]] = [
    ("PUT", "/v1/kv/big", b"x" * (MAX_VALUE + 1), 413,
     f"Request body({MAX_VALUE + 1} bytes) too large, max size: {MAX_VALUE} bytes. See {DOCS}."),
    ("PUT", "/v1/kv/", b"v", 400, "Missing key name"),
    ("GET", "/v1/kv/", None, 400, "Missing key name"),
    ("DELETE", "/v1/kv/", None, 400, "Missing key name"),
    ("PUT", "/v1/kv/held?cas=1&acquire=x", b"v", 400, "Conflicting flags: acquire=x&cas=1\n"),
    ("PUT", "/v1/kv/held?release=a+b&acquire", b"v", 400, "Conflicting flags: acquire=&release=a+b\n"),
    ("DELETE", "/v1/kv/held?recurse&cas=0", None, 400, "Conflicting flags: cas=0&recurse=\n"),
    ("PUT", "/v1/kv/held?flags=abc", b"v", 500, 'strconv.ParseUint: parsing "abc": invalid syntax'),
    ("PUT", "/v1/kv/held?cas=-1", b"v", 500, 'strconv.ParseUint: parsing "-1": invalid syntax'),
    ("PUT", "/v1/kv/held?flags=18446744073709551616", b"v", 500,
     'strconv.ParseUint: parsing "18446744073709551616": value out of range'),
    ("DELETE", "/v1/kv/held?cas=", None, 500, 'strconv.ParseUint: parsing "": invalid syntax'),
    ("GET", "/v1/kv/config/app/?recurse&index=-1&wait=55s", None, 400, "Invalid index"),
    ("GET", "/v1/kv/held?index=abc", None, 400, "Invalid index"),
    ("GET", "/v1/kv/held?index=18446744073709551616", None, 400, "Invalid index"),
    ("GET", "/v1/kv/held?wait=abc", None, 400, "Invalid wait time"),
    ("PUT", "/v1/kv/held?index=x", b"v", 400, "Invalid index"),
    ("GET", "/v1/kv/held?stale&consistent", None, 400,
     "Cannot specify ?stale with ?consistent, conflicting semantics."),
    ("GET", "/v1/kv/%FF", None, 400, "Invalid key: key is not valid UTF-8"),
    ("PUT", "/v1/kv/a%C3", b"v", 400, "Invalid key: key is not valid UTF-8"),
    ("GET", "/v1/kv/a/../held", None, 400, "URL path contains invalid traversal sequence"),
    ("PUT", "/v1/kv/./x", b"v", 400, "URL path contains invalid traversal sequence"),
    ("PUT", "/v1/kv/a/..", b"v", 400, "URL path contains invalid traversal sequence"),
    ("PUT", "/v1/kv/a/%2e%2e/b", b"v", 400, "URL path contains encoded traversal sequence"),
    ("PUT", "/v1/kv/a%2F..%2Fb", b"v", 400, "URL path contains encoded traversal sequence"),
    ("DELETE", "/v1/kv/%252e%252e%252fetc", None, 400, "URL path contains encoded traversal sequence"),
    ("PUT", "/v1/kv/%20lead", b"v", 400, "Invalid key: key must not begin or end with whitespace"),
    ("PUT", "/v1/kv/trail%20", b"v", 400, "Invalid key: key must not begin or end with whitespace"),
    ("PUT", "/v1/kv/tab%09key", b"v", 400, "Invalid key: key contains non-printable characters"),
    ("PUT", "/v1/kv/a%zz", b"v", 400, 'invalid URL escape "%zz"'),
    ("PUT", "/v1/kv/held?acquire=no-such-session", b"v", 500, 'raft apply failed: invalid session "no-such-session"'),
    ("PUT", "/v1/kv/held?release=", b"v", 500, "raft apply failed: missing session"),
    ("PUT", "/v1/kv/held?dc=elsewhere", b"v", 500, "No path to datacenter"),
    ("POST", "/v1/kv/held", b"v", 405, "method POST not allowed"),
]


def test_kv_bad_inputs_change_nothing(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    session = requests.put(f"{base}/v1/session/create", json={"Name": "holder"}, timeout=5).json()["ID"]
    assert requests.put(f"{base}/v1/kv/held?acquire={session}", data=b"mine", timeout=5).json() is True
    requests.put(f"{base}/v1/kv/config/app/data", data=b"spring", timeout=5)
    for method, target, body, status, text in BAD_KV_REQUESTS:
        before = snapshot(dev_agent)
        got_status, headers, got_body = raw_request(dev_agent, method, target, body)
        assert (got_status, got_body.decode()) == (status, text), f"{method} {target}"
        assert headers["Content-Type"].startswith("text/plain"), f"{method} {target}"
        assert snapshot(dev_agent) == before, f"{method} {target} changed state"

    def chunks() -> object:
        for _ in range(10):
            yield b"y" * 60000

    before = snapshot(dev_agent)
    chunked = requests.put(f"{base}/v1/kv/chunked", data=chunks(), timeout=10)
    assert (chunked.status_code, chunked.text) == (
        413, f"Request body(600000 bytes) too large, max size: {MAX_VALUE} bytes. See {DOCS}.")
    assert snapshot(dev_agent) == before
    redirect = requests.put(f"{base}/v1/kv/a//b?flags=1&x=a+b%2B", data=b"v", timeout=5, allow_redirects=False)
    assert (redirect.status_code, redirect.headers["Location"]) == (301, "/v1/kv/a/b?flags=1&x=a+b%2B")
    assert snapshot(dev_agent) == before
    assert requests.get(f"{base}/v1/kv/held?raw", timeout=5).content == b"mine"
    assert "Traceback" not in dev_agent.log()
    assert requests.get(f"{base}/v1/status/leader", timeout=5).json()
