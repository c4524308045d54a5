"""Commands that ask the local agent about itself: `members`, `info`, `leave`, `reload`, `maint`.

Output and exit codes follow Consul's CLI (members exits 2 when nothing matches). Imports: stdlib,
consulpy.cli.base, consulpy.cli.http.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from consulpy.cli.base import Call, Command, Fail, columnize, command_help, err, out
from consulpy.cli.goflags import FlagSet
from consulpy.cli.http import ApiError, Client

ALL_SEGMENTS = "_all"
_SERF_STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}
_SERVER_ROLE = "consul"
_CLIENT_ROLE = "node"


# --------------------------------------------------------------------------- members


def _members_flags(flags: FlagSet) -> None:
    flags.add("detailed", "Print every member's full tag set.", kind="bool", default=False)
    flags.add("wan", "List the servers of the WAN pool instead of the LAN members.", kind="bool", default=False)
    flags.add("status", "Only members whose status matches this regular expression.", default=".*")
    flags.add("segment", "(Enterprise-only) Only members of this network segment.", default=ALL_SEGMENTS)
    flags.add("filter", "Filter expression for the request.", default="")


def _member_address(member: dict[str, Any]) -> str:
    port = member.get("Port", 0)
    try:
        ip = ipaddress.ip_address(member.get("Addr", ""))
    except ValueError:
        return f":{port}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is None:
            return f"[{ip}]:{port}"
        ip = ip.ipv4_mapped
    return f"{ip}:{port}"


def _is_default(partition: str) -> bool:
    return partition in ("", "default")


def members(call: Call) -> int:
    values = call.values
    try:
        status_re = re.compile(values["status"])
    except re.error as exc:
        raise Fail(f"Failed to compile status regexp: {exc}") from None
    client = call.client()
    params = []
    if values["segment"]:
        params.append(("segment", values["segment"]))
    if values["wan"]:
        params.append(("wan", "1"))
    if values["filter"]:
        params.append(("filter", values["filter"]))
    try:
        found = client.get_json("/v1/agent/members", params) or []
    except ApiError as exc:
        raise Fail(f"Error retrieving members: {exc}") from None
    shown = []
    for member in found:
        tags: dict[str, str] = member.setdefault("Tags", {}) or {}
        member["Tags"] = tags
        if not tags.get("ap"):
            tags["ap"] = "default"
        if _is_default(tags["ap"]):
            if values["segment"] == ALL_SEGMENTS and tags.get("role") == _SERVER_ROLE:
                tags["segment"] = "<all>"
            elif not tags.get("segment"):
                tags["segment"] = "<default>"
        else:
            tags["segment"] = ""
        member["status_text"] = _SERF_STATUS.get(member.get("Status", -1), "unknown")
        if status_re.search(member["status_text"]):
            shown.append(member)
    if not shown:
        return 2

    def order(member: dict[str, Any]) -> tuple[bool, bool, str, str, str]:
        tags = member["Tags"]
        return (tags.get("role") != _SERVER_ROLE, not _is_default(tags.get("ap", "")), tags.get("segment", ""),
                tags.get("ap", ""), member.get("Name", ""))

    shown.sort(key=order)
    if values["detailed"]:
        rows = [["Node", "Address", "Status", "Tags"]]
        for member in shown:
            joined = ",".join(f"{k}={v}" for k, v in sorted(member["Tags"].items()))
            rows.append([member.get("Name", ""), _member_address(member), member["status_text"], joined])
    else:
        rows = [["Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Partition", "Segment"]]
        for member in shown:
            tags = member["Tags"]
            role = tags.get("role")
            head = [member.get("Name", ""), _member_address(member), member["status_text"]]
            if role in (_SERVER_ROLE, _CLIENT_ROLE):
                build = tags.get("build", "") or "< 0.3"
                rows.append([*head, "server" if role == _SERVER_ROLE else "client", build.split(":", 1)[0],
                             tags.get("vsn", ""), tags.get("dc", ""), tags.get("ap", ""), tags.get("segment", "")])
            else:
                rows.append([*head, "unknown", "", "", "", "", ""])
    out(columnize(rows))
    return 0


# --------------------------------------------------------------------------- info


def info(call: Call) -> int:
    client = call.client()
    try:
        self_info = client.get_json("/v1/agent/self") or {}
    except ApiError as exc:
        raise Fail(f"Error querying agent: {exc}") from None
    if "Stats" not in self_info:
        raise Fail(f"Agent response did not contain 'Stats' key: {self_info}")
    stats = self_info["Stats"] or {}
    for section in sorted(stats):
        out(f"{section}:")
        entries = stats[section]
        if not isinstance(entries, dict):
            raise Fail(f"Got invalid subkey in stats: {entries}")
        for key in sorted(entries):
            out(f"\t{key} = {entries[key]}")
    return 0


# --------------------------------------------------------------------------- leave / reload


def leave(call: Call) -> int:
    if call.args:
        err(f"Error found unexpected args: [{' '.join(call.args)}]")
        out(command_help(call.command))
        return 1
    client = call.client()
    try:
        client.call("PUT", "/v1/agent/leave")
    except ApiError as exc:
        raise Fail(f"Error leaving: {exc}") from None
    out("Graceful leave complete")
    return 0


def reload(call: Call) -> int:
    client = call.client()
    try:
        client.call("PUT", "/v1/agent/reload")
    except ApiError as exc:
        raise Fail(f"Error reloading: {exc}") from None
    out("Configuration reload triggered")
    return 0


# --------------------------------------------------------------------------- maint


def _maint_flags(flags: FlagSet) -> None:
    flags.add("enable", "Put the node (or the -service) into maintenance mode.", kind="bool", default=False)
    flags.add("disable", "Take the node (or the -service) out of maintenance mode.", kind="bool", default=False)
    flags.add("reason", "Why maintenance is enabled; shown in the maintenance check's notes.", default="")
    flags.add("service", "Act on this service ID instead of the whole node.", default="")


def _node_name(client: Client) -> str:
    try:
        self_info = client.get_json("/v1/agent/self") or {}
    except ApiError as exc:
        raise Fail(f"Error querying Consul agent: {exc}") from None
    return str((self_info.get("Config") or {}).get("NodeName", ""))


def maint(call: Call) -> int:
    values = call.values
    enable, disable, reason, service = values["enable"], values["disable"], values["reason"], values["service"]
    if enable and disable:
        raise Fail("Only one of -enable or -disable may be provided")
    if not enable and reason:
        raise Fail("Reason may only be provided with -enable")
    if not enable and not disable and service:
        raise Fail("Service requires either -enable or -disable")
    client = call.client()
    node_name = _node_name(client)
    if not enable and not disable:
        try:
            checks = client.get_json("/v1/agent/checks") or {}
        except ApiError as exc:
            raise Fail(f"Error getting checks: {exc}") from None
        for check_id in sorted(checks):
            check = checks[check_id]
            if check.get("CheckID") == "_node_maintenance":
                out("Node:")
                out("  Name:   " + node_name)
            elif str(check.get("CheckID", "")).startswith("_service_maintenance:"):
                out("Service:")
                out("  ID:     " + check.get("ServiceID", ""))
            else:
                continue
            out("  Reason: " + check.get("Notes", ""))
            out()
        return 0
    params = [("enable", "true"), ("reason", reason)] if enable else [("enable", "false")]
    what = "enabl" if enable else "disabl"
    if not service:
        try:
            client.call("PUT", "/v1/agent/maintenance", params)
        except ApiError as exc:
            raise Fail(f"Error {what}ing node maintenance: {exc}") from None
        out(f"Node maintenance is now {what}ed")
        return 0
    try:
        client.call("PUT", "/v1/agent/service/maintenance/" + service, params)
    except ApiError as exc:
        raise Fail(f"Error {what}ing service maintenance: {exc}") from None
    out(f'Service maintenance is now {what}ed for "{service}"')
    return 0


COMMANDS = [
    Command("members", "List the members of the cluster",
            "Usage: consul members [options]\n\n  Prints the cluster members the agent knows, servers first.",
            members, _members_flags, "client"),
    Command("info", "Print the agent's debugging statistics",
            "Usage: consul info [options]\n\n  Prints the agent's statistics, section by section, for operators.",
            info, None, "client"),
    Command("leave", "Leave the cluster gracefully and shut the agent down",
            "Usage: consul leave [options]\n\n  Asks the agent to leave the cluster gracefully and then shut down.",
            leave, None, "client"),
    Command("reload", "Make the agent reload its configuration files",
            "Usage: consul reload [options]\n\n  Makes the agent reload its configuration, as SIGHUP does.",
            reload, None, "client"),
    Command("maint", "Turn node or service maintenance mode on or off",
            "Usage: consul maint [options]\n\n  Without -enable or -disable, lists what is in maintenance mode. With "
            "them,\n  switches maintenance mode for the node, or for one service with -service.\n  Maintenance "
            "registers a critical check, which hides the node or service\n  from DNS and health queries until it "
            "is disabled.", maint, _maint_flags, "client"),
]
