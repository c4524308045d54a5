"""Gossip keyring operations: `KeyringOps` over simulated Serf pools (several members, a member lacking a key,
a crashed member, a bad key), then /v1/operator/keyring and `consul keyring`/`consul keygen` against real
agents started with -encrypt."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from consulpy.agent.keyring import KeyringOps, keyring_errors
from consulpy.gossip.keyring import decode_key
from consulpy.serf import Member, QueryDone, QueryResponse
from tests.agentproc import AgentProcess, wait_until
from tests.serf.sim import SerfSim
from tests.test_cli import consul, failed, ok

KEY_1 = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="
KEY_2 = "yQEVXjOtQkwSd8ziJRqbGBvlWtYcD8WG4ra1dsbhuJ8="
KEY_3 = "aXLrEJfRYtPqKgIxmRIjsQ=="


class SimPool:
    """A gossip pool whose Serf runs in the simulator: a query runs the simulation until its QueryDone."""

    def __init__(self, sim: SerfSim, member: str, wan: bool = False) -> None:
        self.sim = sim
        self.member = member
        self.wan = wan
        self.datacenter = "dc1"

    async def query(self, name: str, payload: bytes, timeout: float | None = None,
                    relay_factor: int = 0) -> list[tuple[str, bytes]]:
        ids: list[int] = []
        self.sim.act(self.member, lambda serf: ids.append(serf.query(name, payload, self.sim.now, timeout,
                                                                     relay_factor=relay_factor)))
        events = self.sim.member(self.member).serf_events

        def done() -> bool:
            return any(isinstance(e, QueryDone) and e.query_id == ids[0] for _, e in events)

        assert self.sim.run_until_true(done, self.sim.now + 30.0, step=0.05)
        return [(e.node, e.payload) for _, e in events if isinstance(e, QueryResponse) and e.query_id == ids[0]]

    def members(self) -> list[Member]:
        return self.sim.member(self.member).serf.members()


def _cluster(n: int = 4, seed: int = 1) -> SerfSim:
    sim = SerfSim(seed, n, keys=[decode_key(KEY_1)])
    sim.join_all()
    assert sim.run_until_true(sim.all_alive, 60.0)
    return sim


def _run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 60.0))


def test_list_install_and_use_across_four_members() -> None:
    sim = _cluster()
    ops = KeyringOps([SimPool(sim, "node-0")])
    [listed] = _run(ops.list_keys())
    assert listed == {"WAN": False, "Datacenter": "dc1", "Segment": "", "Keys": {KEY_1: 4}, "PrimaryKeys": {KEY_1: 4},
                      "NumNodes": 4}
    [installed] = _run(ops.install(KEY_2))
    assert installed == {"WAN": False, "Datacenter": "dc1", "Segment": "", "Keys": {}, "PrimaryKeys": {"": 4},
                         "NumNodes": 4}
    assert all(keyring.keys() == [decode_key(KEY_1), decode_key(KEY_2)] for keyring in sim.keyrings.values())
    assert keyring_errors([installed]) == ""
    _run(ops.use(KEY_2))
    [listed] = _run(ops.list_keys())
    assert (listed["Keys"], listed["PrimaryKeys"]) == ({KEY_1: 4, KEY_2: 4}, {KEY_2: 4})
    [removed] = _run(ops.remove(KEY_1))
    assert "Error" not in removed
    assert all(keyring.keys() == [decode_key(KEY_2)] for keyring in sim.keyrings.values())


def test_a_member_lacking_the_key_is_reported_by_name() -> None:
    sim = _cluster()
    for name, keyring in sim.keyrings.items():
        if name != "node-2":
            keyring.install(decode_key(KEY_3))
    [used] = _run(KeyringOps([SimPool(sim, "node-0")]).use(KEY_3))
    assert used["Error"] == "1/4 nodes reported failure"
    assert used["Messages"] == {"node-2": "Requested key is not in the keyring"}
    assert keyring_errors([used]) == ("2 errors occurred:\n\t* dc1 (LAN) error: 1/4 nodes reported failure\n\t"
                                      "* node-2: Requested key is not in the keyring\n\n")
    assert [sim.keyrings[f"node-{i}"].primary for i in range(4)] == [decode_key(KEY_3)] * 2 + [
        decode_key(KEY_1), decode_key(KEY_3)]


def test_a_silent_member_a_bad_key_and_a_wrong_size_key() -> None:
    sim = _cluster()
    sim.crash("node-3")  # still alive to the others: expected, never answers
    ops = KeyringOps([SimPool(sim, "node-0")])
    [listed] = _run(ops.list_keys())
    assert (listed["NumNodes"], listed["Error"], listed["Keys"]) == (4, "3/4 nodes reported success", {KEY_1: 3})
    [bad] = _run(ops.install("not base64!"))
    assert bad == {"WAN": False, "Datacenter": "dc1", "Segment": "", "Keys": {}, "PrimaryKeys": {}, "NumNodes": 0,
                   "Error": "illegal base64 data at input byte 3"}
    [short] = _run(ops.install(base64.b64encode(b"short").decode()))
    # By now node-3 may have been found failed, and no longer counts.
    assert short["Error"] == f"3/{short['NumNodes']} nodes reported failure"
    assert short["Messages"] == {f"node-{i}": "key size must be 16, 24 or 32 bytes" for i in range(3)}


def test_wan_answers_first_and_local_only_lists_the_lan_alone() -> None:
    lan, wan = _cluster(3, seed=2), _cluster(2, seed=3)
    ops = KeyringOps([SimPool(lan, "node-1"), SimPool(wan, "node-0", wan=True)])
    answers = _run(ops.list_keys())
    assert [(a["WAN"], a["NumNodes"]) for a in answers] == [(True, 2), (False, 3)]
    assert [(a["WAN"], a["NumNodes"]) for a in _run(ops.list_keys(local_only=True))] == [(False, 3)]


# ---- real agents --------------------------------------------------------------------------------------


def _keyring(agent: AgentProcess, method: str = "GET", body: Any = None, **params: str) -> requests.Response:
    data = json.dumps(body) if body is not None else None
    return requests.request(method, f"{agent.http}/v1/operator/keyring", params=params, data=data, timeout=30)


@pytest.fixture
def encrypted(start_agent: Callable[..., AgentProcess]) -> AgentProcess:
    return start_agent(args=("-dev", "-encrypt", KEY_1))


def test_http_list_install_use_remove_on_a_dev_agent(encrypted: AgentProcess) -> None:
    a, node = encrypted, encrypted.node_name
    reply = _keyring(a)
    assert reply.status_code == 200, reply.text
    assert reply.json() == [
        {"WAN": True, "Datacenter": "dc1", "Segment": "", "Keys": {KEY_1: 1}, "PrimaryKeys": {KEY_1: 1}, "NumNodes": 1},
        {"WAN": False, "Datacenter": "dc1", "Segment": "", "Keys": {KEY_1: 1}, "PrimaryKeys": {KEY_1: 1},
         "NumNodes": 1}]
    assert [r["WAN"] for r in _keyring(a, **{"local-only": "true"}).json()] == [False]
    for method, key in (("POST", KEY_2), ("PUT", KEY_2), ("DELETE", KEY_1)):
        reply = _keyring(a, method, {"Key": key})
        assert (reply.status_code, reply.text) == (200, ""), (method, reply.text)
    assert [(r["Keys"], r["PrimaryKeys"]) for r in _keyring(a).json()] == [({KEY_2: 1}, {KEY_2: 1})] * 2

    reply = _keyring(a, "DELETE", {"Key": KEY_2})
    assert (reply.status_code, reply.text) == (500, (
        "4 errors occurred:\n\t* WAN error: 1/1 nodes reported failure\n\t"
        f"* {node}.dc1: Removing the primary key is not allowed\n\t* dc1 (LAN) error: 1/1 nodes reported failure\n\t"
        f"* {node}: Removing the primary key is not allowed\n\n"))
    reply = _keyring(a, "POST", {"Key": "a$b"})
    assert (reply.status_code, reply.text) == (500, (
        "2 errors occurred:\n\t* WAN error: illegal base64 data at input byte 1\n\t"
        "* dc1 (LAN) error: illegal base64 data at input byte 1\n\n"))


def test_http_argument_errors(encrypted: AgentProcess) -> None:
    a = encrypted
    for method, body, params, status, text in (
            ("GET", None, {"relay-factor": "6"}, 400, "Invalid relay-factor: Relay factor must be in range: [0, 5]"),
            ("GET", None, {"relay-factor": "x"}, 400,
             'Error parsing relay factor: strconv.Atoi: parsing "x": invalid syntax'),
            ("GET", None, {"local-only": "maybe"}, 400,
             'Error parsing local-only: strconv.ParseBool: parsing "maybe": invalid syntax'),
            ("POST", {"Key": KEY_2}, {"local-only": "true"}, 400,
             "Invalid use of local-only: local-only can only be set for list requests"),
            ("POST", {"Key": KEY_2, "LocalOnly": True}, {}, 500,
             "argument error: LocalOnly can only be used for List operations"),
            ("PUT", {"Key": KEY_2, "Bogus": 1}, {}, 400, 'Request decode failed: json: unknown field "Bogus"'),
            ("PATCH", None, {}, 405, "method PATCH not allowed")):
        reply = _keyring(a, method, body, **params)
        assert (reply.status_code, reply.text.strip()) == (status, text), (method, params)
    reply = requests.post(f"{a.http}/v1/operator/keyring", timeout=10)
    assert (reply.status_code, reply.text) == (400, "Request decode failed: EOF")
    reply = _keyring(a, **{"relay-factor": "2"})
    assert reply.status_code == 200, reply.text


def test_without_encryption_every_pool_reports_its_member(start_agent: Callable[..., AgentProcess]) -> None:
    a = start_agent()
    reply = _keyring(a)
    assert reply.status_code == 500
    assert reply.text == (
        "4 errors occurred:\n\t* WAN error: 1/1 nodes reported failure\n\t"
        f"* {a.node_name}.dc1: Keyring is empty (encryption not enabled)\n\t"
        "* dc1 (LAN) error: 1/1 nodes reported failure\n\t"
        f"* {a.node_name}: Keyring is empty (encryption not enabled)\n\n")


def test_cli_keyring_and_keygen(encrypted: AgentProcess) -> None:
    a = encrypted
    assert ok("keyring", "-list", agent=a) == (
        f"==> Gathering installed encryption keys...\n\nWAN:\n  {KEY_1} [1/1]\n\ndc1 (LAN):\n  {KEY_1} [1/1]\n")
    assert ok("keyring", "-install", KEY_2, agent=a) == "==> Installing new gossip encryption key...\n"
    assert ok("keyring", "-list", "-local-only", agent=a) == (
        f"==> Gathering installed encryption keys...\n\ndc1 (LAN):\n  {KEY_1} [1/1]\n  {KEY_2} [1/1]\n")
    assert ok("keyring", "-use", KEY_2, agent=a) == "==> Changing primary gossip encryption key...\n"
    assert ok("keyring", "-list-primary", "-relay-factor", "1", agent=a) == (
        f"==> Gathering installed primary encryption keys...\n\nWAN:\n  {KEY_2} [1/1]\n\ndc1 (LAN):\n  {KEY_2} [1/1]\n")
    result = consul("keyring", "-remove", KEY_2, agent=a)
    assert (result.returncode, result.stdout) == (1, "==> Removing gossip encryption key...\n")
    assert result.stderr.startswith("error: Unexpected response code: 500 (4 errors occurred:\n\t* WAN error: 1/1 "
                                     "nodes reported failure\n\t")
    assert result.stderr.endswith(f"* {a.node_name}: Removing the primary key is not allowed)\n")
    assert ok("keyring", "-remove", KEY_1, agent=a) == "==> Removing gossip encryption key...\n"

    assert failed("keyring", "-list", "-use", KEY_1) == "Only a single action is allowed\n"
    assert failed("keyring", "-list", "-relay-factor", "9") == (
        "Error parsing relay factor: Relay factor must be in range: [0, 5]\n")
    assert failed("keyring", "-list-primary", "-local-only") == (
        "Error validating local-only: local-only can only be set for list requests\n")
    assert failed("keyring").startswith("Usage: consul keyring [options]\n")
    key = ok("keygen").strip()
    assert len(decode_key(key)) == 32 and key not in (KEY_1, KEY_2)


def test_a_key_rotation_reaches_a_client_agent_and_gossip_goes_on_under_the_new_key(
        start_agent: Callable[..., AgentProcess], tmp_path: Path) -> None:
    server = start_agent(args=("-server", "-bootstrap", "-data-dir", str(tmp_path / "s"), "-encrypt", KEY_1,
                               "-hcl", "performance { raft_multiplier = 1 }"))
    # A client agent is ready once it is in the server's member list (its HTTP side is not what this tests).
    client = AgentProcess(server.address.rsplit(".", 1)[0] + ".3", ("-retry-join", server.address, "-data-dir",
                                                                      str(tmp_path / "c"), "-encrypt", KEY_1))

    def lan_statuses() -> dict[str, int]:
        reply = requests.get(f"{server.http}/v1/agent/members", timeout=10).json()
        return {m["Name"]: m["Status"] for m in reply}

    try:
        client.launch()
        wait_until(lambda: lan_statuses() == {server.node_name: 1, client.node_name: 1}, 20)
        for method, key in (("POST", KEY_2), ("PUT", KEY_2), ("DELETE", KEY_1)):
            started = time.monotonic()
            reply = _keyring(server, method, {"Key": key})
            assert (reply.status_code, reply.text) == (200, ""), (method, reply.text)
            # Both members answer within a round trip, long before the 3.2 s query timeout.
            assert time.monotonic() - started < 1.5, method
        assert [(r["WAN"], r["Keys"], r["PrimaryKeys"], r["NumNodes"]) for r in _keyring(server).json()] == [
            (True, {KEY_2: 1}, {KEY_2: 1}, 1), (False, {KEY_2: 2}, {KEY_2: 2}, 2)]
        for keyring_file in ("c/serf/local.keyring", "s/serf/local.keyring", "s/serf/remote.keyring"):
            assert json.loads((tmp_path / keyring_file).read_text()) == [KEY_2], keyring_file
        # Several probe rounds later, each still hears the other, now under the new key alone.
        time.sleep(3.0)
        assert lan_statuses() == {server.node_name: 1, client.node_name: 1}
    finally:
        client.cleanup()
