"""`consul operator raft list-peers|remove-peer|transfer-leader`: the Raft configuration from the command line.

Output, error prefixes and exit codes are Consul 1.20's: list-peers prints its columnar table (with the
Commit Index and Trails Leader By columns), failures go to stderr with status 1, and a flag error is
reported a second time as `Failed to parse args: …`. Imports: stdlib, consulpy.cli.base, consulpy.cli.goflags,
consulpy.cli.http.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from consulpy.cli.base import Call, Command, Fail, columnize, err, go_quote, out
from consulpy.cli.goflags import FlagError, FlagSet
from consulpy.cli.http import ApiError, Client, client_from_flags

_UINT64 = 1 << 64


@dataclass
class RaftCommand(Command):
    """An operator raft command: after Go's own flag error and usage, Consul's UI repeats the error."""

    def run(self, args: list[str]) -> int:
        try:
            self.flagset().parse(args)
        except FlagError as exc:
            code = super().run(args)
            err(f"Failed to parse args: {exc}")
            return code
        return super().run(args)


def _client(call: Call) -> Client:
    try:
        return client_from_flags(call.values, call.explicit, os.environ)
    except ApiError as exc:
        raise Fail(f"Error initializing client: {exc}") from None


def _stale(call: Call) -> list[tuple[str, str]]:
    return [("stale", "")] if call.values["stale"] else []


# --------------------------------------------------------------------------- list-peers


def peers_table(servers: list[dict[str, Any]]) -> str:
    """The list-peers table; a follower trails the leader by the difference of their last log indexes."""
    leader_index = next((s.get("LastIndex", 0) for s in servers if s.get("Leader")), 0)
    rows = [["Node", "ID", "Address", "State", "Voter", "RaftProtocol", "Commit Index", "Trails Leader By"]]
    for server in servers:
        last_index = server.get("LastIndex", 0)
        if server.get("Leader"):
            trails = "-"
        else:
            # Go subtracts uint64s: a follower ahead of a stale leader figure wraps around, as Consul prints it.
            behind = (leader_index - last_index) % _UINT64
            trails = f"{behind} commit" if behind == 1 else f"{behind} commits"
        rows.append([server.get("Node", ""), server.get("ID", ""), server.get("Address", ""),
                     "leader" if server.get("Leader") else "follower",
                     "true" if server.get("Voter") else "false", server.get("ProtocolVersion") or "<=1",
                     str(last_index), trails])
    return columnize(rows)


def list_peers(call: Call) -> int:
    client = _client(call)
    try:
        reply = client.get_json("/v1/operator/raft/configuration", _stale(call)) or {}
    except ApiError as exc:
        raise Fail(f"Error getting peers: Failed to retrieve raft configuration: {exc}") from None
    out(peers_table(reply.get("Servers") or []))
    return 0


# --------------------------------------------------------------------------- remove-peer


def _remove_flags(flags: FlagSet) -> None:
    flags.add("address", "The address (`IP:port`) of the server to remove from the Raft configuration.", default="")
    flags.add("id", "The ID of the server to remove from the Raft configuration.", default="")


def remove_peer(call: Call) -> int:
    client = _client(call)
    address, peer_id = call.values["address"], call.values["id"]
    if not address and not peer_id:
        raise Fail("Error removing peer: an address or id is required for the peer to remove")
    if address and peer_id:
        raise Fail("Error removing peer: cannot give both an address and id")
    param = ("address", address) if address else ("id", peer_id)
    try:
        client.call("DELETE", "/v1/operator/raft/peer", [param])
    except ApiError as exc:
        raise Fail(f"Error removing peer: {exc}") from None
    out(f"Removed peer with {param[0]} {go_quote(param[1])}")
    return 0


# --------------------------------------------------------------------------- transfer-leader


def _transfer_flags(flags: FlagSet) -> None:
    flags.add("id", "The ID of the server to hand leadership to; any up-to-date voter when not given.", default="")


def transfer_leader(call: Call) -> int:
    client = _client(call)
    params = _stale(call)
    if call.values["id"]:
        params.append(("id", call.values["id"]))
    try:
        reply = client.call("POST", "/v1/operator/raft/transfer-leader", params).json() or {}
    except ApiError as exc:
        raise Fail(f"Error transfering leadership: Failed to transfer leadership {exc}") from None
    if not reply.get("Success"):
        raise Fail("Error transfering leadership: Failed to transfer leadership")
    out("Success")
    return 0


COMMANDS = [
    Command("operator", "Cluster-level tools for operators",
            "Usage: consul operator <subcommand> [options]\n\n"
            "  Tools that act on the whole cluster, such as the Raft configuration.\n"
            "  Use them with care: a wrong step can cost the cluster its quorum."),
    Command("operator raft", "Inspect and change the Raft configuration",
            "Usage: consul operator raft <subcommand> [options]\n\n"
            "  Shows the servers of the Raft configuration, removes a server that is gone,\n"
            "  or hands leadership to another server."),
    RaftCommand("operator raft list-peers", "Show the servers of the Raft configuration",
                "Usage: consul operator raft list-peers [options]\n\n"
                "  Prints each server of the Raft configuration: its node, ID, address,\n"
                "  whether it leads or votes, and how far it trails the leader.",
                list_peers, None, "client+server"),
    RaftCommand("operator raft remove-peer", "Remove a server from the Raft configuration",
                "Usage: consul operator raft remove-peer [options]\n\n"
                "  Removes the server given by -id or -address from the Raft configuration:\n"
                "  for a server that is gone for good but still counts towards the quorum.",
                remove_peer, _remove_flags, "client+server"),
    RaftCommand("operator raft transfer-leader", "Hand Raft leadership to another server",
                "Usage: consul operator raft transfer-leader [options]\n\n"
                "  Asks the leader to hand leadership to the server given by -id, or to any\n"
                "  up-to-date voter.",
                transfer_leader, _transfer_flags, "client+server"),
]
