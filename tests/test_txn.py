"""PUT /v1/txn against real dev agents: commit, rollback (409, state unchanged), read-only transactions,
lock-delay, configured limits, and bad input."""

from __future__ import annotations

import base64
import json
import time

import requests

from tests.agentproc import AgentProcess


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def txn(agent: AgentProcess, ops: object, params: str = "") -> requests.Response:
    return requests.put(f"{agent.http}/v1/txn{params}", json=ops, timeout=5)


def kv_op(verb: str, key: str, **fields: object) -> dict:
    return {"KV": {"Verb": verb, "Key": key, **fields}}


def snapshot(agent: AgentProcess) -> tuple[object, ...]:
    kv = requests.get(f"{agent.http}/v1/kv/?recurse", timeout=5)
    sessions = requests.get(f"{agent.http}/v1/session/list", timeout=5)
    return kv.status_code, kv.text, kv.headers["X-Consul-Index"], sessions.text, sessions.headers["X-Consul-Index"]


def test_commit_applies_every_op_at_one_index(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    requests.put(f"{base}/v1/kv/cfg/existing", data=b"old", timeout=5)
    existing = requests.get(f"{base}/v1/kv/cfg/existing", timeout=5).json()[0]
    session = requests.put(f"{base}/v1/session/create", timeout=5).json()["ID"]
    reply = txn(dev_agent, [
        kv_op("set", "cfg/a", Value=b64(b"alpha"), Flags=3),
        kv_op("cas", "cfg/existing", Value=b64(b"new"), Index=existing["ModifyIndex"]),
        kv_op("lock", "cfg/lock", Value=b64(b"me"), Session=session),
        kv_op("get", "cfg/a"),
        kv_op("get-tree", "cfg/"),
        kv_op("delete", "cfg/nothing"),
    ])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["Errors"] is None
    results = [r["KV"] for r in body["Results"]]
    index = results[0]["ModifyIndex"]
    assert {r["ModifyIndex"] for r in results} == {index}
    assert results[0] == {"LockIndex": 0, "Key": "cfg/a", "Flags": 3, "Value": None, "CreateIndex": index,
                          "ModifyIndex": index}
    assert results[1]["Value"] is None and results[1]["CreateIndex"] == existing["CreateIndex"]
    assert results[2]["Session"] == session and results[2]["LockIndex"] == 1 and results[2]["Value"] is None
    assert base64.b64decode(results[3]["Value"]) == b"alpha"  # get returns the value written earlier in the txn
    assert [(r["Key"], r["Value"]) for r in results[4:]] == [
        ("cfg/a", b64(b"alpha")), ("cfg/existing", b64(b"new")), ("cfg/lock", b64(b"me"))]
    assert requests.get(f"{base}/v1/kv/cfg/existing?raw", timeout=5).content == b"new"
    assert requests.get(f"{base}/v1/kv/cfg/lock", timeout=5).json()[0]["Session"] == session


def test_rollback_is_409_and_changes_nothing(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    requests.put(f"{base}/v1/kv/acct/balance", data=b"100", timeout=5)
    current = requests.get(f"{base}/v1/kv/acct/balance", timeout=5).json()[0]["ModifyIndex"]
    before = snapshot(dev_agent)
    reply = txn(dev_agent, [
        kv_op("set", "acct/new", Value=b64(b"x")),
        kv_op("cas", "acct/balance", Value=b64(b"50"), Index=current + 7),
        kv_op("check-not-exists", "acct/balance"),
        kv_op("delete-tree", "acct/"),
        kv_op("frobnicate", "acct/balance"),
    ])
    assert reply.status_code == 409
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"Results": None, "Errors": [
        {"OpIndex": 1, "What": 'failed to set key "acct/balance", index is stale'},
        {"OpIndex": 2, "What": 'key "acct/balance" exists'},
        {"OpIndex": 4, "What": 'unknown KV verb "frobnicate"'},
    ]}
    assert snapshot(dev_agent) == before
    assert requests.get(f"{base}/v1/kv/acct/new", timeout=5).status_code == 404


def test_read_only_txn_reads_without_a_write(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    requests.put(f"{base}/v1/kv/ro/a", data=b"1", timeout=5)
    requests.put(f"{base}/v1/kv/ro/b", data=b"2", timeout=5)
    a_index = requests.get(f"{base}/v1/kv/ro/a", timeout=5).json()[0]["ModifyIndex"]
    before = snapshot(dev_agent)
    ops = [kv_op("get", "ro/a"), kv_op("get-tree", "ro/"), kv_op("check-index", "ro/a", Index=a_index),
           kv_op("get-or-empty", "ro/none"), kv_op("check-not-exists", "ro/none")]
    for params in ("", "?stale", "?consistent"):
        reply = txn(dev_agent, ops, params)
        assert reply.status_code == 200, reply.text
        assert reply.headers["X-Consul-Knownleader"] == "true"
        assert reply.headers["X-Consul-Lastcontact"] == "0"
        assert "X-Consul-Index" not in reply.headers
        results = [r["KV"] for r in reply.json()["Results"]]
        assert [(r["Key"], r["Value"]) for r in results] == [
            ("ro/a", b64(b"1")), ("ro/a", b64(b"1")), ("ro/b", b64(b"2")), ("ro/a", None), ("ro/none", None)]
        assert reply.json()["Errors"] is None
    failed = txn(dev_agent, [kv_op("get", "ro/none"), kv_op("check-session", "ro/a", Session="x")])
    assert (failed.status_code, failed.json()) == (409, {"Results": None, "Errors": [
        {"OpIndex": 0, "What": 'key "ro/none" doesn\'t exist'},
        {"OpIndex": 1, "What": 'failed session check for key "ro/a", current session "" != "x"'}]})
    empty = txn(dev_agent, [])
    assert (empty.status_code, empty.json()) == (200, {"Results": [], "Errors": None})
    assert snapshot(dev_agent) == before


def test_txn_lock_respects_lock_delay(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    first = requests.put(f"{base}/v1/session/create", json={"LockDelay": "1s"}, timeout=5).json()["ID"]
    second = requests.put(f"{base}/v1/session/create", timeout=5).json()["ID"]
    assert txn(dev_agent, [kv_op("lock", "jobs/lock", Session=first)]).status_code == 200
    requests.put(f"{base}/v1/session/destroy/{first}", timeout=5)
    destroyed = time.monotonic()
    refused = txn(dev_agent, [kv_op("set", "jobs/other"), kv_op("lock", "jobs/lock", Session=second),
                              kv_op("get", "")])
    assert refused.status_code == 409
    assert refused.json()["Errors"] == [
        {"OpIndex": 1, "What": 'failed to lock key "jobs/lock" due to lock delay'},
        {"OpIndex": 2, "What": "Must provide key"}]
    assert requests.get(f"{base}/v1/kv/jobs/other", timeout=5).status_code == 404
    time.sleep(max(0.0, 1.05 - (time.monotonic() - destroyed)))
    assert txn(dev_agent, [kv_op("lock", "jobs/lock", Session=second)]).status_code == 200


def test_configured_limits_apply_to_txn_and_kv(start_agent) -> None:
    agent = start_agent(args=("-dev", "-hcl", "limits { kv_max_value_size = 16 }"))
    big = txn(agent, [kv_op("set", "k", Value=b64(b"x" * 17))])
    assert (big.status_code, big.text) == (413, 'Value for key "k" is too large (17 > 16 bytes)')
    assert txn(agent, [kv_op("set", "k", Value=b64(b"x" * 16))]).status_code == 200
    put = requests.put(f"{agent.http}/v1/kv/k", data=b"y" * 17, timeout=5)
    assert put.status_code == 413 and put.text.startswith("Request body(17 bytes) too large, max size: 16 bytes.")
    assert requests.get(f"{agent.http}/v1/kv/k?raw", timeout=5).content == b"x" * 16


BAD_TXN_BODIES: list[tuple[bytes, str, int, str]] = [
    (json.dumps([kv_op("get", f"k{i}") for i in range(65)]).encode(), "", 413,
     "Transaction contains too many operations (65 > 64)"),
    (json.dumps([kv_op("set", "k", Value=b64(b"z" * 400000))]).encode(), "", 413,
     "Request body too large, max size: 524288 bytes"),
    (json.dumps([kv_op("set", "k", Value="a$Gk=")]).encode(), "", 400,
     "Failed to parse body: illegal base64 data at input byte 1"),
    (json.dumps([kv_op("set", "k", Value="abc")]).encode(), "", 400,
     "Failed to parse body: illegal base64 data at input byte 0"),
    (json.dumps([kv_op("set", "k", Value=12)]).encode(), "", 400,
     "Failed to parse body: json: cannot unmarshal number into Go struct field KVTxnOp.KV.Value of type []uint8"),
    (json.dumps([kv_op("set", "k", Flags=-1)]).encode(), "", 400,
     "Failed to parse body: json: cannot unmarshal number into Go struct field KVTxnOp.Flags of type uint64"),
    (json.dumps([kv_op("set", "k", Bogus=1)]).encode(), "", 400, 'Failed to parse body: json: unknown field "Bogus"'),
    (json.dumps({"KV": {"Verb": "set"}}).encode(), "", 400,
     "Failed to parse body: json: cannot unmarshal object into Go value of type api.TxnOps"),
    (json.dumps([{"Node": {"Verb": "set", "Node": {"Node": "n", "Address": "1.2.3.4"}}}]).encode(), "", 400,
     "Failed to parse body: Node, Service and Check operations are not supported; only KV operations are"),
    (b"[{", "", 400, "Failed to parse body: "),
    (b"", "", 400, "Failed to parse body: EOF"),
    (json.dumps([kv_op("get", "k")]).encode(), "?index=-1", 400, "Invalid index"),
    (json.dumps([kv_op("get", "k")]).encode(), "?stale&consistent", 400,
     "Cannot specify ?stale with ?consistent, conflicting semantics."),
    (json.dumps([kv_op("set", "k")]).encode(), "?dc=dc9", 500, "No path to datacenter"),
]


def test_txn_bad_inputs_change_nothing(dev_agent: AgentProcess) -> None:
    base = dev_agent.http
    requests.put(f"{base}/v1/kv/k", data=b"keep", timeout=5)
    for body, params, status, text in BAD_TXN_BODIES:
        before = snapshot(dev_agent)
        reply = requests.put(f"{base}/v1/txn{params}", data=body, timeout=10)
        assert reply.status_code == status, (body[:80], reply.text)
        assert reply.text.startswith(text) if text.endswith(": ") else reply.text == text, (body[:80], reply.text)
        assert reply.headers["Content-Type"].startswith("text/plain")
        assert snapshot(dev_agent) == before, f"{body[:80]!r} changed state"
    wrong_method = requests.get(f"{base}/v1/txn", timeout=5)
    assert (wrong_method.status_code, wrong_method.text) == (405, "method GET not allowed")
    assert wrong_method.headers["Allow"] == "OPTIONS,PUT"
    assert requests.get(f"{base}/v1/kv/k?raw", timeout=5).content == b"keep"
    assert "Traceback" not in dev_agent.log()
