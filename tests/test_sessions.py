"""/v1/session and locks over HTTP against real dev agents: shapes, invalidation (destroy, TTL, checks,
node deregistration), lock-delay, the Go api.Lock flow, and bad input."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable

import requests

from tests.agentproc import AgentProcess

LOCK_FLAGS = 3304740253564472344  # api.Lock's magic flag value


def create(agent: AgentProcess, body: dict | None = None, **kwargs: object) -> str:
    reply = requests.put(f"{agent.http}/v1/session/create", json=body, timeout=5, **kwargs)
    assert reply.status_code == 200, reply.text
    return reply.json()["ID"]


def info(agent: AgentProcess, session_id: str) -> list[dict]:
    return requests.get(f"{agent.http}/v1/session/info/{session_id}", timeout=5).json()


def kv_entry(agent: AgentProcess, key: str) -> dict | None:
    reply = requests.get(f"{agent.http}/v1/kv/{key}", timeout=5)
    return reply.json()[0] if reply.status_code == 200 else None


def acquire(agent: AgentProcess, key: str, session_id: str, value: bytes = b"v", flags: int = 0) -> bool:
    reply = requests.put(f"{agent.http}/v1/kv/{key}?acquire={session_id}&flags={flags}", data=value, timeout=5)
    assert reply.status_code == 200, reply.text
    return reply.json()


def wait_for(predicate: Callable[[], object], timeout: float) -> float:
    """Poll until predicate() is true; returns the seconds it took (fails the test on timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def test_session_lifecycle_and_shapes(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    plain = requests.put(f"{base}/v1/session/create", timeout=5)
    assert plain.status_code == 200 and list(plain.json()) == ["ID"]
    sid = plain.json()["ID"]
    assert str(uuid.UUID(sid)) == sid
    [session] = info(dev_agent, sid)
    assert session == {"ID": sid, "Name": "", "Node": dev_agent.node_name, "LockDelay": 15_000_000_000,
                       "Behavior": "release", "TTL": "", "NodeChecks": ["serfHealth"], "ServiceChecks": None,
                       "CreateIndex": session["CreateIndex"], "ModifyIndex": session["CreateIndex"]}

    custom = create(dev_agent, {"name": "job", "ttl": "30s", "BEHAVIOR": "delete", "LockDelay": "20s",
                                "Checks": [], "SomethingElse": 1})
    [custom_session] = info(dev_agent, custom)
    assert (custom_session["Name"], custom_session["TTL"], custom_session["Behavior"]) == ("job", "30s", "delete")
    assert custom_session["LockDelay"] == 20_000_000_000
    assert custom_session["NodeChecks"] == []
    for lock_delay, expected in ((5, 5_000_000_000), ("20ns", 20_000_000_000), (1_500_000_000, 1_500_000_000),
                                 ("1m30s", 90_000_000_000), (None, 15_000_000_000)):
        made = create(dev_agent, {"LockDelay": lock_delay})
        assert info(dev_agent, made)[0]["LockDelay"] == expected, lock_delay
        requests.put(f"{base}/v1/session/destroy/{made}", timeout=5)
    assert info(dev_agent, create(dev_agent, {"NodeChecks": []}))[0]["NodeChecks"] == []

    listed = requests.get(f"{base}/v1/session/list", timeout=5)
    ids = [s["ID"] for s in listed.json()]
    assert ids == sorted(ids) and {sid, custom} <= set(ids)
    assert int(listed.headers["X-Consul-Index"]) >= session["CreateIndex"]
    assert {s["ID"] for s in requests.get(f"{base}/v1/session/node/{dev_agent.node_name}", timeout=5).json()} \
        == set(ids)
    assert requests.get(f"{base}/v1/session/node/ghost", timeout=5).json() == []

    renewed = requests.put(f"{base}/v1/session/renew/{custom}", timeout=5)
    assert renewed.status_code == 200 and renewed.json() == [custom_session]
    unknown = str(uuid.uuid4())
    assert requests.get(f"{base}/v1/session/info/{unknown}", timeout=5).json() == []
    gone = requests.put(f"{base}/v1/session/renew/{unknown}", timeout=5)
    assert (gone.status_code, gone.text) == (404, f"Session id '{unknown}' not found")

    index = int(listed.headers["X-Consul-Index"])
    result: dict[str, requests.Response] = {}
    watcher = threading.Thread(target=lambda: result.setdefault(
        "r", requests.get(f"{base}/v1/session/info/{sid}?index={index}&wait=20s", timeout=30)))
    watcher.start()
    time.sleep(0.3)
    assert watcher.is_alive()
    destroyed = requests.put(f"{base}/v1/session/destroy/{sid}", timeout=5)
    assert (destroyed.status_code, destroyed.json()) == (200, True)
    watcher.join(5)
    assert result["r"].json() == [] and int(result["r"].headers["X-Consul-Index"]) > index
    assert requests.put(f"{base}/v1/session/destroy/{unknown}", timeout=5).json() is True


def test_destroy_releases_lock_and_lock_delay_blocks_reacquire(dev_agent: AgentProcess) -> None:
    first = create(dev_agent, {"LockDelay": "1s"})
    second = create(dev_agent)
    assert acquire(dev_agent, "service/leader", first, b"one") is True
    assert acquire(dev_agent, "service/leader", second, b"two") is False
    held = kv_entry(dev_agent, "service/leader")
    assert held is not None and held["Session"] == first and held["LockIndex"] == 1
    assert requests.put(f"{dev_agent.http}/v1/session/destroy/{first}", timeout=5).json() is True
    destroyed_at = time.monotonic()
    released = kv_entry(dev_agent, "service/leader")
    assert released is not None and "Session" not in released and released["LockIndex"] == 1
    assert base64.b64decode(released["Value"]) == b"one"
    assert acquire(dev_agent, "service/leader", second, b"two") is False  # lock-delay
    assert kv_entry(dev_agent, "service/leader") == released  # a refused acquire changes nothing
    wait_for(lambda: acquire(dev_agent, "service/leader", second, b"two"), 3)
    taken = kv_entry(dev_agent, "service/leader")
    assert taken is not None and taken["Session"] == second and taken["LockIndex"] == 2
    assert time.monotonic() - destroyed_at >= 1.0


def test_ttl_expiry_releases_locks_and_renew_keeps_alive(start_agent) -> None:
    agent = start_agent(args=("-dev", "-hcl", 'session_ttl_min = "1s"'))
    base = agent.http
    too_short = requests.put(f"{base}/v1/session/create", json={"TTL": "500ms"}, timeout=5)
    assert (too_short.status_code, too_short.text) == (
        500, "Invalid Session TTL '500000000', must be between [1s=24h0m0s]")
    expiring = create(agent, {"TTL": "1s", "LockDelay": 0})
    renewed = create(agent, {"TTL": "1s"})
    created = time.monotonic()
    assert acquire(agent, "ttl/lock", expiring) is True
    assert acquire(agent, "ttl/kept", renewed) is True
    lock_index = int(requests.get(f"{base}/v1/kv/ttl/lock", timeout=5).headers["X-Consul-Index"])

    stop = threading.Event()
    renewals: list[int] = []

    def renewer() -> None:
        while not stop.wait(0.4):
            renewals.append(requests.put(f"{base}/v1/session/renew/{renewed}", timeout=5).status_code)

    keeper = threading.Thread(target=renewer)
    keeper.start()
    try:
        time.sleep(1.3)
        assert info(agent, expiring) != []  # the TTL is a lower bound: Consul waits 2 x TTL
        woken = requests.get(f"{base}/v1/kv/ttl/lock?index={lock_index}&wait=5s", timeout=10)
        expired_after = time.monotonic() - created
        assert 1.9 <= expired_after < 4.0, expired_after  # 2 x TTL, and not much later even on a loaded machine
        assert "Session" not in woken.json()[0]
        assert info(agent, expiring) == []
        assert acquire(agent, "ttl/lock", renewed) is True  # lock-delay 0: free at once
        time.sleep(1.0)
        assert info(agent, renewed) != []  # renewed every 0.4 s for over 3 s in all
        assert kv_entry(agent, "ttl/kept")["Session"] == renewed
    finally:
        stop.set()
        keeper.join(5)
    assert len(renewals) >= 6 and set(renewals) == {200}
    wait_for(lambda: info(agent, renewed) == [], 3)
    assert "Session" not in kv_entry(agent, "ttl/kept")
    assert "Traceback" not in agent.log()


def register(agent: AgentProcess, body: dict) -> None:
    reply = requests.put(f"{agent.http}/v1/catalog/register", json=body, timeout=5)
    assert reply.status_code == 200, reply.text


def test_checks_and_node_deregistration_invalidate_sessions(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    register(dev_agent, {"Node": "worker", "Address": "10.1.1.1", "Checks": [
        {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing"},
        {"CheckID": "app", "Name": "app", "Status": "passing"},
        {"CheckID": "cron", "Name": "cron", "Status": "warning"}]})
    guarded = create(dev_agent, {"Node": "worker", "NodeChecks": ["serfHealth", "app"]})
    on_cron = create(dev_agent, {"Node": "worker", "NodeChecks": ["cron"]})
    assert acquire(dev_agent, "jobs/cron", on_cron) is True
    deregistered = requests.put(f"{base}/v1/catalog/deregister", json={"Node": "worker", "CheckID": "cron"},
                                timeout=5)
    assert deregistered.json() is True
    assert info(dev_agent, on_cron) == []
    assert "Session" not in kv_entry(dev_agent, "jobs/cron")
    unchecked = create(dev_agent, {"Node": "worker", "Checks": [], "Behavior": "delete"})
    assert info(dev_agent, guarded)[0]["NodeChecks"] == ["serfHealth", "app"]
    assert acquire(dev_agent, "jobs/guarded", guarded) is True
    assert acquire(dev_agent, "jobs/unchecked", unchecked) is True

    register(dev_agent, {"Node": "worker", "Address": "10.1.1.1", "SkipNodeUpdate": True,
                         "Check": {"CheckID": "app", "Name": "app", "Status": "critical"}})
    assert info(dev_agent, guarded) == []
    assert "Session" not in kv_entry(dev_agent, "jobs/guarded")
    assert info(dev_agent, unchecked) != []  # a session without checks survives check failures
    refused = requests.put(f"{base}/v1/session/create", json={"Node": "worker", "NodeChecks": ["app"]}, timeout=5)
    assert (refused.status_code, refused.text) == (500, "apply failed: Check 'app' is in critical state")

    assert requests.put(f"{base}/v1/catalog/deregister", json={"Node": "worker"}, timeout=5).json() is True
    assert info(dev_agent, unchecked) == []
    assert kv_entry(dev_agent, "jobs/unchecked") is None  # Behavior "delete" removes the key
    assert requests.get(f"{base}/v1/session/node/worker", timeout=5).json() == []


def test_api_lock_flow(dev_agent: AgentProcess) -> None:
    """What hashicorp/consul/api's Lock does: session `Consul API Lock`, flagged acquire, blocking monitor."""
    base = dev_agent.http
    key = "service/db/leader"
    holder = create(dev_agent, {"Name": "Consul API Lock", "TTL": "15s"})
    contender = create(dev_agent, {"Name": "Consul API Lock", "TTL": "15s"})
    assert requests.get(f"{base}/v1/kv/{key}?wait=15000ms", timeout=5).status_code == 404
    assert acquire(dev_agent, key, holder, b"", LOCK_FLAGS) is True
    pair = kv_entry(dev_agent, key)
    assert pair is not None and (pair["Flags"], pair["Session"], pair["LockIndex"]) == (LOCK_FLAGS, holder, 1)

    assert acquire(dev_agent, key, contender, b"", LOCK_FLAGS) is False
    result: dict[str, requests.Response] = {}
    monitor = threading.Thread(target=lambda: result.setdefault(
        "r", requests.get(f"{base}/v1/kv/{key}?index={pair['ModifyIndex']}&wait=15000ms", timeout=30)))
    monitor.start()
    time.sleep(0.3)
    assert monitor.is_alive()
    released = requests.put(f"{base}/v1/kv/{key}?release={holder}&flags={LOCK_FLAGS}", timeout=5)
    assert released.json() is True
    monitor.join(5)
    seen = result["r"].json()[0]
    assert "Session" not in seen and seen["Flags"] == LOCK_FLAGS
    assert acquire(dev_agent, key, contender, b"", LOCK_FLAGS) is True  # release (not invalidation): no delay
    assert kv_entry(dev_agent, key)["LockIndex"] == 2
    renewed = requests.put(f"{base}/v1/session/renew/{contender}", timeout=5).json()
    assert renewed[0]["Name"] == "Consul API Lock" and renewed[0]["TTL"] == "15s"


def snapshot(agent: AgentProcess) -> tuple[object, ...]:
    kv = requests.get(f"{agent.http}/v1/kv/?recurse", timeout=5)
    sessions = requests.get(f"{agent.http}/v1/session/list", timeout=5)
    return kv.status_code, kv.text, kv.headers["X-Consul-Index"], sessions.text, sessions.headers["X-Consul-Index"]


BAD_SESSION_REQUESTS: list[tuple[str, str, bytes | None, int, str]] = [
    ("PUT", "/v1/session/create", b"{not json", 400, "Request decode failed: "),
    ("PUT", "/v1/session/create", b" ", 400, "Request decode failed: EOF"),
    ("PUT", "/v1/session/create", b"[1]", 400,
     "Request decode failed: json: cannot unmarshal array into Go value of type structs.Session"),
    ("PUT", "/v1/session/create", b'{"TTL": 10}', 400,
     "Request decode failed: json: cannot unmarshal number into Go struct field Session.TTL of type string"),
    ("PUT", "/v1/session/create", b'{"LockDelay": "soon"}', 400,
     'Request decode failed: time: invalid duration "soon"'),
    ("PUT", "/v1/session/create", b'{"TTL": "5s"}', 500,
     "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"),
    ("PUT", "/v1/session/create", b'{"TTL": "25h"}', 500,
     "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]"),
    ("PUT", "/v1/session/create", b'{"TTL": "ten"}', 500, "Session TTL 'ten' invalid: time: invalid duration \"ten\""),
    ("PUT", "/v1/session/create", b'{"Behavior": "keep"}', 500, "Invalid Behavior setting 'keep'"),
    ("PUT", "/v1/session/create", b'{"Node": "ghost"}', 500, "apply failed: Missing node registration"),
    ("PUT", "/v1/session/create", b'{"Node": ""}', 500, "Must provide Node"),
    ("PUT", "/v1/session/create", b'{"NodeChecks": ["nope"]}', 500, "apply failed: Missing check 'nope' registration"),
    ("PUT", "/v1/session/create?dc=dc9", None, 500, "No path to datacenter"),
    ("PUT", "/v1/session/destroy/", None, 400, "Missing session"),
    ("PUT", "/v1/session/renew/", None, 400, "Missing session"),
    ("GET", "/v1/session/info/", None, 400, "Missing session"),
    ("GET", "/v1/session/node/", None, 400, "Missing node name"),
    ("PUT", "/v1/session/renew/not-a-session", None, 404, "Session id 'not-a-session' not found"),
    ("GET", "/v1/session/list?index=abc", None, 400, "Invalid index"),
    ("GET", "/v1/session/list?wait=10", None, 400, "Invalid wait time"),
    ("POST", "/v1/session/create", b"{}", 405, "method POST not allowed"),
    ("GET", "/v1/session/create", None, 405, "method GET not allowed"),
]


def test_session_bad_inputs_change_nothing(dev_agent: AgentProcess) -> None:
    holder = create(dev_agent, {"Name": "holder"})
    assert acquire(dev_agent, "locked", holder) is True
    for method, target, body, status, text in BAD_SESSION_REQUESTS:
        before = snapshot(dev_agent)
        reply = requests.request(method, f"{dev_agent.http}{target}", data=body, timeout=5)
        assert reply.status_code == status, (target, body, reply.text)
        assert reply.text.startswith(text) if text.endswith(": ") else reply.text == text, (target, body, reply.text)
        assert reply.headers["Content-Type"].startswith("text/plain"), (target, body)
        assert snapshot(dev_agent) == before, f"{method} {target} {body!r} changed state"
    assert "Traceback" not in dev_agent.log()
    assert requests.get(f"{dev_agent.http}/v1/status/leader", timeout=5).json()
