"""The Raft operator surface against a real dev agent: /v1/operator/raft/* and `consulpy operator raft …`."""

from __future__ import annotations

import requests

from consulpy.cli.operator import peers_table
from tests.agentproc import AgentProcess
from tests.test_cli import consul

HEADER = ["Node", "ID", "Address", "State", "Voter", "RaftProtocol", "Commit Index", "Trails Leader By"]


def _node_id(agent: AgentProcess) -> str:
    node_id: str = requests.get(f"{agent.http}/v1/agent/self", timeout=5).json()["Config"]["NodeID"]
    return node_id


def test_configuration_shape_and_consistency_modes(dev_agent: AgentProcess) -> None:
    url = f"{dev_agent.http}/v1/operator/raft/configuration"
    reply = requests.get(url, timeout=5)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json"
    assert "X-Consul-Index" not in reply.headers
    body = reply.json()
    assert list(body) == ["Servers", "Index"] and body["Index"] >= 1
    (server,) = body["Servers"]
    assert list(server) == ["ID", "Node", "Address", "Leader", "ProtocolVersion", "Voter", "LastIndex"]
    assert server == {"ID": _node_id(dev_agent), "Node": dev_agent.node_name,
                      "Address": f"{dev_agent.address}:8300", "Leader": True, "ProtocolVersion": "3",
                      "Voter": True, "LastIndex": server["LastIndex"]}
    assert server["LastIndex"] >= 1
    assert requests.get(url, params={"stale": ""}, timeout=5).json() == body

    for params, status, text in (({"stale": "", "consistent": ""}, 400,
                                   "Cannot specify ?stale with ?consistent, conflicting semantics."),
                                  ({"dc": "elsewhere"}, 500, "No path to datacenter"),
                                  ({"index": "x"}, 400, "Invalid index")):
        bad = requests.get(url, params=params, timeout=5)
        assert (bad.status_code, bad.text) == (status, text), params
    wrong = requests.post(url, timeout=5)
    assert (wrong.status_code, wrong.headers["Allow"]) == (405, "OPTIONS,GET")
    assert "Traceback" not in dev_agent.log()


def test_remove_peer_and_transfer_leader_refusals(dev_agent: AgentProcess) -> None:
    peer_url = f"{dev_agent.http}/v1/operator/raft/peer"
    own_id, own_address = _node_id(dev_agent), f"{dev_agent.address}:8300"
    cases = [
        ({}, 400, "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove"),
        ({"id": own_id, "address": own_address}, 400, "Must specify only one of ?id or ?address"),
        ({"id": ""}, 500, 'id "" was not found in the Raft configuration'),
        ({"id": "no-such-id"}, 500, 'id "no-such-id" was not found in the Raft configuration'),
        ({"address": "junk"}, 500, 'address "junk" was not found in the Raft configuration'),
        ({"address": "10.0.0.1:8300"}, 500, 'address "10.0.0.1:8300" was not found in the Raft configuration'),
        ({"id": own_id}, 500, "need at least one voter in configuration: {[]}"),
        ({"address": own_address}, 500, "need at least one voter in configuration: {[]}"),
        ({"id": own_id, "dc": "elsewhere"}, 500, "No path to datacenter"),
    ]
    for params, status, text in cases:
        reply = requests.delete(peer_url, params=params, timeout=5)
        assert (reply.status_code, reply.text) == (status, text), params
    assert requests.get(peer_url, timeout=5).headers["Allow"] == "OPTIONS,DELETE"

    transfer_url = f"{dev_agent.http}/v1/operator/raft/transfer-leader"
    grpc = "rpc error: code = Unknown desc = "
    for params, text in (({}, "cannot find peer"), ({"id": ""}, "cannot find peer"),
                         ({"id": own_id}, "cannot transfer leadership to itself"),
                         ({"id": "junk"}, "Could not find address for server id junk")):
        reply = requests.post(transfer_url, params=params, timeout=5)
        assert (reply.status_code, reply.text) == (500, grpc + text), params
    assert requests.put(transfer_url, timeout=5).status_code == 405

    after = requests.get(f"{dev_agent.http}/v1/operator/raft/configuration", timeout=5).json()
    assert [(s["ID"], s["Leader"], s["Voter"]) for s in after["Servers"]] == [(own_id, True, True)]
    assert "Traceback" not in dev_agent.log()


def test_cli_list_peers_remove_peer_transfer_leader(dev_agent: AgentProcess) -> None:
    own_id, own_address = _node_id(dev_agent), f"{dev_agent.address}:8300"
    node = dev_agent.node_name

    for args in ((), ("-stale",)):
        listed = consul("operator", "raft", "list-peers", *args, agent=dev_agent)
        assert (listed.returncode, listed.stderr) == (0, ""), listed
        last_index = requests.get(f"{dev_agent.http}/v1/operator/raft/configuration",
                                  timeout=5).json()["Servers"][0]["LastIndex"]
        rows = [HEADER, [node, own_id, own_address, "leader", "true", "3", str(last_index), "-"]]
        widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
        expected = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)) + "  "
                             + row[-1] for row in rows) + "\n"
        assert listed.stdout == expected

    refusals = [
        (("remove-peer",), "Error removing peer: an address or id is required for the peer to remove\n"),
        (("remove-peer", "-id=a", "-address=b"), "Error removing peer: cannot give both an address and id\n"),
        (("remove-peer", "-id=nope"), 'Error removing peer: Unexpected response code: 500 (id "nope" was not '
                                      'found in the Raft configuration)\n'),
        (("remove-peer", f"-address={own_address}"), "Error removing peer: Unexpected response code: 500 (need at "
                                                     "least one voter in configuration: {[]})\n"),
        (("transfer-leader",), "Error transfering leadership: Failed to transfer leadership Unexpected response "
                               "code: 500 (rpc error: code = Unknown desc = cannot find peer)\n"),
        (("transfer-leader", "-id=junk", "-stale"), "Error transfering leadership: Failed to transfer leadership "
                                                    "Unexpected response code: 500 (rpc error: code = Unknown desc = "
                                                    "Could not find address for server id junk)\n"),
    ]
    for words, stderr in refusals:
        result = consul("operator", "raft", *words, agent=dev_agent)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", stderr), words
    assert "Traceback" not in dev_agent.log()


def test_cli_flags_help_and_unreachable_agent(loopback: str) -> None:
    bad_flag = consul("operator", "raft", "remove-peer", "-bogus")
    assert (bad_flag.returncode, bad_flag.stdout) == (1, "")
    assert bad_flag.stderr.startswith("flag provided but not defined: -bogus\nUsage:\n  -address IP:port\n")
    assert bad_flag.stderr.endswith("\nFailed to parse args: flag provided but not defined: -bogus\n")

    helped = consul("operator", "raft", "list-peers", "-h")
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: consul operator raft list-peers [options]")
    assert "\n  -stale\n" in helped.stdout
    parent = consul("operator", "raft")
    assert parent.returncode == 1 and parent.stderr.startswith("Usage: consul operator raft <subcommand>")
    assert "\n    list-peers         " in parent.stderr and "\n    transfer-leader    " in parent.stderr

    addr = f"{loopback}.9:8500"
    down = consul("operator", "raft", "list-peers", f"-http-addr={addr}")
    assert (down.returncode, down.stdout) == (1, "")
    assert down.stderr == (f"Error getting peers: Failed to retrieve raft configuration: Get "
                           f'"http://{addr}/v1/operator/raft/configuration": dial tcp {addr}: connect: '
                           f"connection refused\n")
    scheme = consul("operator", "raft", "transfer-leader", "-http-addr=ftp://x")
    assert (scheme.returncode, scheme.stderr) == (1, "Error initializing client: Unknown protocol scheme: ftp\n")


def test_list_peers_table_for_a_cluster() -> None:
    servers = [
        {"ID": "a1", "Node": "alice", "Address": "127.0.0.2:8300", "Leader": False, "ProtocolVersion": "3",
         "Voter": True, "LastIndex": 1167},
        {"ID": "b2", "Node": "bob", "Address": "127.0.0.3:8300", "Leader": True, "ProtocolVersion": "3",
         "Voter": True, "LastIndex": 1168},
        {"ID": "c3", "Node": "carol", "Address": "127.0.0.4:8300", "Leader": False, "ProtocolVersion": "",
         "Voter": False, "LastIndex": 1159},
        {"ID": "d4", "Node": "(unknown)", "Address": "127.0.0.5:8300", "Leader": False, "ProtocolVersion": "3",
         "Voter": True, "LastIndex": 1170},
    ]
    assert peers_table(servers).split("\n") == [
        "Node       ID  Address         State     Voter  RaftProtocol  Commit Index  Trails Leader By",
        "alice      a1  127.0.0.2:8300  follower  true   3             1167          1 commit",
        "bob        b2  127.0.0.3:8300  leader    true   3             1168          -",
        "carol      c3  127.0.0.4:8300  follower  false  <=1           1159          9 commits",
        "(unknown)  d4  127.0.0.5:8300  follower  true   3             1170          18446744073709551614 commits",
    ]
