"""`consul event -name=NAME [-node=RE] [-service=RE] [-tag=RE] [payload]`: fire a user event, worded as Consul's.

Filters are compiled as Go regular expressions before anything is sent; the agent is asked for its name first,
as Consul's command does, so an unreachable agent reads `Error querying Consul agent`. Imports: stdlib,
consulpy.cli.base, consulpy.cli.http, consulpy.agent.events (Go regexp compilation only).
"""

from __future__ import annotations

from consulpy.agent.events import bad_filter
from consulpy.cli.base import Call, Command, Fail, out, usage_error
from consulpy.cli.goflags import FlagSet
from consulpy.cli.http import ApiError


def _flags(flags: FlagSet) -> None:
    flags.add("name", "Name of the event to fire (required).")
    flags.add("node", "Regular expression: only nodes whose name matches keep the event.")
    flags.add("service", "Regular expression: only nodes with a service whose ID matches keep the event.")
    flags.add("tag", "Regular expression: with -service, the matching service must also have a matching tag.")


def fire(call: Call) -> int:
    values = call.values
    name, node, service, tag = values["name"], values["node"], values["service"], values["tag"]
    if not name:
        return usage_error(call, "Event name must be specified")
    bad = bad_filter(node, service, tag)
    if bad is not None:
        raise Fail(f"Failed to compile {bad[0]} filter regexp: {bad[1]}")
    if tag and not service:
        raise Fail("Cannot provide tag filter without service filter.")
    if len(call.args) > 1:
        return usage_error(call, "Too many command line arguments.")
    payload = call.args[0].encode("utf-8", "surrogateescape") if call.args else None
    client = call.client()
    try:
        client.get_json("/v1/agent/self")
    except ApiError as exc:
        raise Fail(f"Error querying Consul agent: {exc}") from None
    params = [(key, value) for key, value in (("node", node), ("service", service), ("tag", tag)) if value]
    try:
        reply = client.call("PUT", "/v1/event/fire/" + name, params, payload or None, "application/octet-stream")
        event_id = (reply.json() or {}).get("ID", "")
    except ApiError as exc:
        raise Fail(f"Error firing event: {exc}") from None
    out(f"Event ID: {event_id}")
    return 0


COMMANDS = [
    Command("event", "Fire a new event",
            "Usage: consul event [options] [payload]\n\n  Fires a named user event to the agents of the datacenter, "
            "with an optional\n  payload. Each agent keeps the event only if it passes the node, service and\n  "
            "tag filters (regular expressions), and lists it under /v1/event/list.", fire, _flags, "client"),
]
