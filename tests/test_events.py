"""User events against real dev agents: /v1/event/fire and /v1/event/list shapes, the UUID-derived index,
blocking lists, the receiving-side filters, the ring of 256, Consul's errors, and `consulpy event`; and the
`ingest` entry point the gossip layer will call, exercised directly."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from consulpy.agent.events import SERF_EVENT_WINDOW, SerfUserEvent, UserEvent, UserEvents
from consulpy.state import NodeService
from tests.agentproc import ROOT, AgentProcess

UUID_HEX = frozenset("0123456789abcdef")
BEFORE_ENCODING = "error broadcasting event: user event exceeds configured limit of 512 bytes before encoding"
AFTER_ENCODING = "error broadcasting event: encoded user event exceeds configured limit of 512 bytes after encoding"


def fire(agent: AgentProcess, name: str, payload: bytes | None = None, **filters: str) -> requests.Response:
    return requests.put(f"{agent.http}/v1/event/fire/{name}", params=filters, data=payload, timeout=5)


def listed(agent: AgentProcess, **params: str) -> requests.Response:
    return requests.get(f"{agent.http}/v1/event/list", params=params, timeout=15)


def uuid_index(event_id: str) -> int:
    """Consul's uuidToUint64, written out from its definition: the two 64-bit halves of the UUID XORed."""
    digits = event_id.replace("-", "")
    return int(digits[:16], 16) ^ int(digits[16:], 16)


def names(response: requests.Response) -> list[str]:
    return [event["Name"] for event in response.json()]


def test_fire_and_list_shapes_index_and_name_filter(dev_agent: AgentProcess) -> None:
    empty = listed(dev_agent)
    assert (empty.status_code, empty.json(), empty.headers["X-Consul-Index"]) == (200, [], "1")
    assert "X-Consul-Knownleader" not in empty.headers

    first = fire(dev_agent, "deploy", b"v1.2.3", node=f"^{dev_agent.node_name}$")
    assert first.status_code == 200
    body = first.json()
    event_id = body["ID"]
    assert len(event_id) == 36 and set(event_id.replace("-", "")) <= UUID_HEX
    assert body == {"ID": event_id, "Name": "deploy", "Payload": base64.b64encode(b"v1.2.3").decode(),
                    "NodeFilter": f"^{dev_agent.node_name}$", "ServiceFilter": "", "TagFilter": "", "Version": 1,
                    "LTime": 0}
    second = fire(dev_agent, "restart").json()
    assert second["Payload"] is None
    third = fire(dev_agent, "deploy", b"v2").json()

    every = listed(dev_agent)
    assert [event["ID"] for event in every.json()] == [event_id, second["ID"], third["ID"]]
    assert [event["LTime"] for event in every.json()] == [1, 2, 3]
    assert every.json()[0] == {**body, "LTime": 1}
    assert int(every.headers["X-Consul-Index"]) == uuid_index(third["ID"])

    deploys = listed(dev_agent, name="deploy")
    assert [event["ID"] for event in deploys.json()] == [event_id, third["ID"]]
    restarts = listed(dev_agent, name="restart")
    assert int(restarts.headers["X-Consul-Index"]) == uuid_index(second["ID"])
    nothing = listed(dev_agent, name="nothing")
    assert (nothing.json(), nothing.headers["X-Consul-Index"]) == ([], "1")

    # A body sent without a Content-Length (chunked) is not a payload, as in Consul's handler.
    chunked = requests.put(f"{dev_agent.http}/v1/event/fire/chunked", data=iter([b"abc"]), timeout=5)
    assert chunked.status_code == 200 and chunked.json()["Payload"] is None
    # Remote-exec events are never listed (remote exec is disabled).
    assert fire(dev_agent, "_rexec", b"{}").status_code == 200
    assert names(listed(dev_agent)) == ["deploy", "restart", "deploy", "chunked"]


def test_blocking_list_wakes_on_a_fire_and_not_on_nothing(dev_agent: AgentProcess) -> None:
    fire(dev_agent, "seed")
    index = listed(dev_agent).headers["X-Consul-Index"]

    started = time.monotonic()
    idle = listed(dev_agent, index=index, wait="1s")
    took = time.monotonic() - started
    assert 0.95 <= took < 3.0, took
    assert (idle.headers["X-Consul-Index"], names(idle)) == (index, ["seed"])

    # A different index answers at once: only an exact match blocks (the index is not monotonic).
    started = time.monotonic()
    assert names(listed(dev_agent, index="12345", wait="5s")) == ["seed"]
    assert time.monotonic() - started < 1.0

    with ThreadPoolExecutor(max_workers=1) as pool:
        blocked = pool.submit(listed, dev_agent, index=index, wait="10s")
        time.sleep(0.3)
        assert not blocked.done()
        fired = fire(dev_agent, "wake").json()
        fired_at = time.monotonic()
        woken = blocked.result(timeout=5)
        woke_after = time.monotonic() - fired_at
    assert woke_after < 1.0, woke_after  # woken by the event, not the 10 s wait
    assert int(woken.headers["X-Consul-Index"]) == uuid_index(fired["ID"])
    assert names(woken) == ["seed", "wake"]

    # With ?name, an event of another name leaves the index as it was, so the list keeps waiting.
    named_index = listed(dev_agent, name="seed").headers["X-Consul-Index"]
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        blocked = pool.submit(listed, dev_agent, name="seed", index=named_index, wait="1s")
        time.sleep(0.2)
        fire(dev_agent, "other")
        result = blocked.result(timeout=5)
    assert time.monotonic() - started >= 0.95
    assert (result.headers["X-Consul-Index"], names(result)) == (named_index, ["seed"])


def test_filters_decide_whether_this_agent_keeps_an_event(dev_agent: AgentProcess) -> None:
    service = {"ID": "web-1", "Name": "web", "Tags": ["v1", "primary"], "Port": 80}
    assert requests.put(f"{dev_agent.http}/v1/agent/service/register", json=service, timeout=5).status_code == 200

    kept = {
        "node-exact": {"node": f"^{dev_agent.node_name}$"},
        "node-substring": {"node": "127"},
        "service-id": {"service": "^web-1$"},
        "service-and-tag": {"service": "web", "tag": "^v1$"},
        "service-any-tag": {"service": "web", "tag": "prim"},
        "node-and-service": {"node": "node-", "service": "web"},
    }
    dropped = {
        "other-node": {"node": "^some-other-node$"},
        "other-service": {"service": "^db$"},
        "service-name-not-id": {"service": "^web$"},  # Consul matches the local service's ID, not its name
        "other-tag": {"service": "web", "tag": "^v2$"},
        "node-miss-service-hit": {"node": "^nope$", "service": "web"},
    }
    for name, filters in {**kept, **dropped}.items():
        response = fire(dev_agent, name, **filters)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["NodeFilter"] == filters.get("node", "")
    assert names(listed(dev_agent)) == list(kept)
    assert listed(dev_agent, name="other-node").json() == []


def test_ring_keeps_the_last_256_events(dev_agent: AgentProcess) -> None:
    session = requests.Session()
    ids = []
    for number in range(300):
        reply = session.put(f"{dev_agent.http}/v1/event/fire/e{number}", timeout=5)
        ids.append(reply.json()["ID"])
    events = listed(dev_agent).json()
    assert len(events) == 256
    assert [event["ID"] for event in events] == ids[-256:]
    assert [event["LTime"] for event in events] == list(range(45, 301))
    assert listed(dev_agent, name="e0").json() == []


def test_bad_input_gets_consul_errors_and_changes_nothing(dev_agent: AgentProcess) -> None:
    base = f"{dev_agent.http}/v1/event"
    cases = [
        (requests.put(f"{base}/fire/", timeout=5), 400, "Missing name"),
        (fire(dev_agent, "x", tag="v1"), 500, "Cannot provide tag filter without service filter"),
        (fire(dev_agent, "x", node="[a"), 500, "Invalid node filter: error parsing regexp: missing closing ]: `[a`"),
        (fire(dev_agent, "x", service="(web"), 500,
         "Invalid service filter: error parsing regexp: missing closing ): `(web`"),
        (fire(dev_agent, "x", service="web", tag="*v1"), 500,
         "Invalid tag filter: error parsing regexp: missing argument to repetition operator: `*`"),
        (fire(dev_agent, "x", node="a**"), 500,
         "Invalid node filter: error parsing regexp: invalid nested repetition operator: `**`"),
        (fire(dev_agent, "x", node=r"\q"), 500,
         "Invalid node filter: error parsing regexp: invalid escape sequence: `\\q`"),
        (fire(dev_agent, "x", tag="v1", node="[a"), 500, "Cannot provide tag filter without service filter"),
        (fire(dev_agent, "x", dc="dc2"), 500, "No path to datacenter"),
        (fire(dev_agent, "x", b"p" * 445), 500, BEFORE_ENCODING),
        (fire(dev_agent, "x", b"p" * 415), 500, AFTER_ENCODING),
        (fire(dev_agent, "x", b"p" * 444), 500, AFTER_ENCODING),
        (fire(dev_agent, "x", os.urandom(4 << 20)), 500, BEFORE_ENCODING),
        (fire(dev_agent, "x", b"p" * 445, tag="v1"), 500, "Cannot provide tag filter without service filter"),
        (requests.post(f"{base}/fire/x", timeout=5), 405, "method POST not allowed"),
        (listed(dev_agent, wait="soon"), 400, "Invalid wait time"),
        (listed(dev_agent, index="-1"), 400, "Invalid index"),
        (listed(dev_agent, index="x", wait="bad"), 400, "Invalid wait time"),
        (listed(dev_agent, index="18446744073709551616"), 400, "Invalid index"),
    ]
    for response, status, text in cases:
        assert (response.status_code, response.text) == (status, text), response.request.url
        assert response.headers["Content-Type"].startswith("text/plain")
    assert listed(dev_agent).json() == []

    # The largest payload Serf's limits let through with a one-letter name.
    largest = fire(dev_agent, "x", b"p" * 414)
    assert largest.status_code == 200
    assert base64.b64decode(listed(dev_agent).json()[0]["Payload"]) == b"p" * 414
    assert requests.put(f"{base}/fire/x", params={"dc": "dc1"}, timeout=5).status_code == 200
    assert "Traceback" not in dev_agent.log()


def consul(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
    environ["CONSUL_HTTP_ADDR"] = agent.http
    return subprocess.run([sys.executable, "-m", "consulpy", "event", *args], capture_output=True, text=True,
                          timeout=20, cwd=ROOT, env=environ)


def test_cli_event_output_and_errors(dev_agent: AgentProcess) -> None:
    fired = consul(dev_agent, "-name=deploy", "-node=node-", "payload text")
    assert fired.returncode == 0 and fired.stderr == ""
    assert fired.stdout.startswith("Event ID: ") and fired.stdout.endswith("\n")
    event_id = fired.stdout.removeprefix("Event ID: ").strip()
    [event] = listed(dev_agent).json()
    assert event["ID"] == event_id
    assert (event["Name"], base64.b64decode(event["Payload"]), event["NodeFilter"]) == ("deploy", b"payload text",
                                                                                       "node-")
    bare = consul(dev_agent, "-name", "bare").stdout
    assert listed(dev_agent).json()[-1] == {"ID": bare.split()[-1], "Name": "bare", "Payload": None,
                                            "NodeFilter": "", "ServiceFilter": "", "TagFilter": "", "Version": 1,
                                            "LTime": 2}

    cases = [
        (("-node=x",), "Event name must be specified\n\nUsage: consul event [options] [payload]\n"),
        (("-name=a", "one", "two"), "Too many command line arguments.\n\nUsage: consul event [options] [payload]\n"),
        (("-name=a", "-tag=v1"), "Cannot provide tag filter without service filter.\n"),
        (("-name=a", "-node=[a"), "Failed to compile node filter regexp: error parsing regexp: "
                                  "missing closing ]: `[a`\n"),
        (("-name=a", "-service=(", "-tag=v"), "Failed to compile service filter regexp: error parsing regexp: "
                                              "missing closing ): `(`\n"),
        (("-name=a", "-service=web", "-tag=+"), "Failed to compile tag filter regexp: error parsing regexp: "
                                                "missing argument to repetition operator: `+`\n"),
        (("-name=a", "p" * 445), f"Error firing event: Unexpected response code: 500 ({BEFORE_ENCODING})\n"),
        (("-name=a", "-bogus"), "flag provided but not defined: -bogus\n"),
    ]
    for args, expected in cases:
        result = consul(dev_agent, *args)
        assert (result.returncode, result.stdout) == (1, ""), args
        assert result.stderr.startswith(expected), (args, result.stderr)
    help_text = consul(dev_agent).stderr
    assert "  -name=<string>" in help_text and "  -http-addr=<address>" in help_text

    down = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
    down["CONSUL_HTTP_ADDR"] = f"{dev_agent.address}:1"
    unreachable = subprocess.run([sys.executable, "-m", "consulpy", "event", "-name=x"], capture_output=True,
                                 text=True, timeout=20, cwd=ROOT, env=down)
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(f'Error querying Consul agent: Get "http://{dev_agent.address}:1/v1/agent/'
                                         'self": dial tcp')
    assert len(listed(dev_agent).json()) == 2


def test_concurrent_blocked_lists_all_wake(dev_agent: AgentProcess) -> None:
    """Many parked lists cost futures, not tasks: one fire answers them all."""
    results: list[requests.Response] = []
    lock = threading.Lock()

    def wait() -> None:
        response = listed(dev_agent, index="1", wait="10s")
        with lock:
            results.append(response)

    threads = [threading.Thread(target=wait) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    assert not results
    event = fire(dev_agent, "broadcast").json()
    for thread in threads:
        thread.join(5)
    assert len(results) == 20
    assert {int(r.headers["X-Consul-Index"]) for r in results} == {uuid_index(event["ID"])}


def test_ingest_is_the_gossip_entry_point() -> None:
    """What the Serf layer will call: duplicates and stale times are dropped, the clock follows, filters apply."""
    events = UserEvents("node-a", lambda: {"api-1": NodeService(id="api-1", service="api", tags=("blue",))})
    remote = UserEvent("0f8e2a64-7a7f-4d6a-9f39-3c1b8f0e9a11", "deploy", b"v9", service_filter="api",
                       tag_filter="blue")
    message = SerfUserEvent(40, "consul:event:deploy", remote.encode())
    assert events.ingest(message) is True
    assert events.ingest(message) is False  # gossip delivers the same event more than once
    assert events.clock.time() == 41
    assert events.events() == [UserEvent(remote.id, "deploy", b"v9", "", "api", "blue", 1, 40)]

    other_node = UserEvent("1f8e2a64-7a7f-4d6a-9f39-3c1b8f0e9a12", "deploy", node_filter="^node-b$")
    assert events.ingest(SerfUserEvent(41, "consul:event:deploy", other_node.encode())) is False
    assert events.ingest(SerfUserEvent(42, "not-a-consul-event", remote.encode())) is False
    assert events.ingest(SerfUserEvent(43, "consul:event:junk", b"\xc1")) is False

    events.clock.witness(10 * SERF_EVENT_WINDOW)
    stale = UserEvent("2f8e2a64-7a7f-4d6a-9f39-3c1b8f0e9a13", "late")
    assert events.ingest(SerfUserEvent(44, "consul:event:late", stale.encode())) is False
    fired = events.fire("local")
    assert [event.id for event in events.events()] == [remote.id, fired.id]
    assert events.events("local")[0].ltime == 10 * SERF_EVENT_WINDOW + 1
