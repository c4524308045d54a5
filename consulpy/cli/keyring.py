"""`consul keyring -list|-list-primary|-install KEY|-use KEY|-remove KEY` and `consul keygen`: the gossip
encryption keys of the cluster, worded as Consul's commands.

Exactly one action; `-relay-factor` (0-5) and `-local-only` (with -list only) are checked before the agent is
called. The list prints, per pool (WAN first), its members' messages and each key with how many of the pool's
members hold it. Imports: stdlib, consulpy.cli.base, consulpy.cli.goflags, consulpy.cli.http,
consulpy.agent.keyring (argument checks), consulpy.gossip.keyring (keygen).
"""

from __future__ import annotations

import json
from typing import Any

from consulpy.agent.keyring import LOCAL_ONLY_LIST, KeyringArgumentError, parse_relay_factor
from consulpy.cli.base import Call, Command, Fail, command_help, go_int, out
from consulpy.cli.goflags import FlagSet
from consulpy.cli.http import ApiError
from consulpy.gossip.keyring import keygen

WRITES = (("install", "POST", "Installing new gossip encryption key..."),
          ("use", "PUT", "Changing primary gossip encryption key..."),
          ("remove", "DELETE", "Removing gossip encryption key..."))


def _flags(flags: FlagSet) -> None:
    flags.add("install", "Install a new encryption key. This will broadcast the new key to all members in the "
                         "cluster.", default="")
    flags.add("use", "Change the primary encryption key, which is used to encrypt messages. The key must already "
                     "be installed before this operation can succeed.", default="")
    flags.add("remove", "Remove the given key from the cluster. This operation may only be performed on keys "
                        "which are not currently the primary key.", default="")
    flags.add("list", "List all keys currently in use within the cluster.", kind="bool", default=False)
    flags.add("list-primary", "List all primary keys currently in use within the cluster.", kind="bool",
              default=False)
    flags.add("relay-factor", "Setting this to a non-zero value will cause nodes to relay their response to the "
                              "operation through this many randomly-chosen other nodes in the cluster. The maximum "
                              "allowed value is 5.", kind="int", default=0, convert=go_int)
    flags.add("local-only", "Setting this to true will force the keyring query to only hit local servers (no WAN "
                            "traffic). This flag can only be set for list queries.", kind="bool", default=False)


def pool_listing(response: dict[str, Any], keys: dict[str, int]) -> str:
    """One pool's block: a blank line, its name, its members' messages, then `  key [held/members]`."""
    pool = "WAN" if response.get("WAN") else f"{response.get('Datacenter', '')} (LAN)"
    if response.get("Segment"):
        pool += f" [{response['Segment']}]"
    elif response.get("Partition") not in (None, "", "default"):
        pool += f" [partition: {response['Partition']}]"
    lines = ["", pool + ":"]
    lines += [f"  ===> {node}: {message}" for node, message in sorted((response.get("Messages") or {}).items())]
    total = response.get("NumNodes", 0)
    lines += [f"  {key} [{count}/{total}]" for key, count in sorted((keys or {}).items())]
    return "\n".join(lines)


def keyring(call: Call) -> int:
    values = call.values
    listing = values["list"] or values["list-primary"]
    actions = int(values["list"]) + int(values["list-primary"]) + sum(bool(values[name]) for name, _, _ in WRITES)
    if actions == 0:
        raise Fail(command_help(call.command))
    if actions > 1:
        raise Fail("Only a single action is allowed")
    try:
        relay_factor = parse_relay_factor(values["relay-factor"])
    except KeyringArgumentError as exc:
        raise Fail(f"Error parsing relay factor: {exc}") from None
    if values["local-only"] and not values["list"]:
        raise Fail(f"Error validating local-only: {LOCAL_ONLY_LIST}")
    client = call.client()
    params = [("relay-factor", str(relay_factor))] if relay_factor else []
    if listing:
        primary = values["list-primary"]
        out("==> " + ("Gathering installed primary encryption keys..." if primary
                      else "Gathering installed encryption keys..."))
        if values["local-only"]:
            params.append(("local-only", "true"))
        try:
            responses = client.get_json("/v1/operator/keyring", params) or []
        except ApiError as exc:
            raise Fail(f"error: {exc}") from None
        for response in responses:
            out(pool_listing(response, response.get("PrimaryKeys" if primary else "Keys") or {}))
        return 0
    for name, method, announcement in WRITES:
        if values[name]:
            out("==> " + announcement)
            body = json.dumps({"Key": values[name]}).encode()
            try:
                client.call(method, "/v1/operator/keyring", params, body, "application/json")
            except ApiError as exc:
                raise Fail(f"error: {exc}") from None
    return 0


def generate(call: Call) -> int:
    out(keygen())
    return 0


COMMANDS = [
    Command("keyring", "Manages gossip layer encryption keys",
            "Usage: consul keyring [options]\n\n  Manages the encryption keys of the gossip pools. With gossip "
            "encryption on, it lists the\n  keys installed across the cluster, installs new ones, changes the "
            "primary key and\n  removes old ones: together, a cluster-wide key rotation without downtime.\n\n  "
            "Operations go through a server agent and act on the LAN and WAN keyrings together.\n\n  Every form "
            "exits 0 when all members answered without error, 1 when any member\n  failed or did not answer.",
            keyring, _flags, "client"),
    Command("keygen", "Generates a new encryption key",
            "Usage: consul keygen\n\n  Generates a new encryption key for the agents' gossip encryption "
            "(-encrypt):\n  32 random bytes, base64 encoded, in the form the agent expects.", generate),
]
