"""`consul catalog datacenters|nodes|services`: read the catalog, printed as Consul's CLI prints it.

Imports: stdlib, consulpy.cli.base, consulpy.cli.http.
"""

from __future__ import annotations

from typing import Any

from consulpy.cli.base import Call, Command, Fail, columnize, err, key_value, out, read_data_arg, tabwrite
from consulpy.cli.goflags import FlagSet
from consulpy.cli.http import ApiError


def _no_args(call: Call) -> None:
    if call.args:
        raise Fail(f"Too many arguments (expected 0, got {len(call.args)})")


def _node_meta(call: Call) -> list[tuple[str, str]]:
    meta: dict[str, str] = dict(call.values["node-meta"])
    return [("node-meta", f"{k}:{v}") for k, v in meta.items()]


def _filter(call: Call) -> list[tuple[str, str]]:
    expression = call.values["filter"]
    if not expression:
        return []
    try:
        text = read_data_arg(expression).decode("utf-8", "surrogateescape")
    except Fail as exc:
        raise Fail(f"Could not process filter argument: {exc.message.removeprefix('Error! ')}") from None
    return [("filter", text)]


# --------------------------------------------------------------------------- catalog datacenters


def catalog_datacenters(call: Call) -> int:
    _no_args(call)
    client = call.client()
    try:
        datacenters = client.get_json("/v1/catalog/datacenters") or []
    except ApiError as exc:
        err(f"Error listing datacenters: {exc}")
        datacenters = []
    for name in datacenters:
        out(name)
    return 0


# --------------------------------------------------------------------------- catalog nodes


def _nodes_flags(flags: FlagSet) -> None:
    flags.add("detailed", "Also print full node IDs, tagged addresses and node metadata.", kind="bool",
              default=False)
    flags.add("filter", "Filter expression for the request; @FILE or - reads it from a file or stdin.", default="")
    flags.add("near", "Sort the nodes by estimated round-trip time from this node; \"_agent\" means this agent.",
              default="")
    flags.add("node-meta", "Only nodes with this `key=value` metadata; may be given more than once.", kind="list",
              convert=key_value)
    flags.add("service", "Only nodes that provide this service (`id or name`).", default="")


def _pairs(mapping: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((mapping or {}).items()))


def catalog_nodes(call: Call) -> int:
    _no_args(call)
    client = call.client()
    values = call.values
    params = _filter(call) + _node_meta(call)
    if values["near"]:
        params.append(("near", values["near"]))
    try:
        if values["service"]:
            services = client.get_json("/v1/catalog/service/" + values["service"], params) or []
            nodes = [{"ID": s.get("ID", ""), "Node": s.get("Node", ""), "Address": s.get("Address", ""),
                      "Datacenter": s.get("Datacenter", ""), "TaggedAddresses": s.get("TaggedAddresses"),
                      "Meta": s.get("NodeMeta")} for s in services]
        else:
            nodes = client.get_json("/v1/catalog/nodes", params) or []
    except ApiError as exc:
        what = "nodes for service" if values["service"] else "nodes"
        raise Fail(f"Error listing {what}: {exc}") from None
    if not nodes:
        err("No nodes match the given query - try expanding your search.")
        return 0
    detailed = values["detailed"]
    header = ["Node", "ID", "Address", "DC"]
    rows = [[*header, "TaggedAddresses", "Meta"] if detailed else header]
    for node in nodes:
        node_id = node.get("ID") or ""
        if detailed:
            rows.append([node.get("Node", ""), node_id, node.get("Address", ""), node.get("Datacenter", ""),
                         _pairs(node.get("TaggedAddresses")), _pairs(node.get("Meta"))])
        else:
            short = node_id.split("-", 1)[0] if node_id.find("-") > 0 else node_id
            rows.append([node.get("Node", ""), short, node.get("Address", ""), node.get("Datacenter", "")])
    out(columnize(rows))
    return 0


# --------------------------------------------------------------------------- catalog services


def _services_flags(flags: FlagSet) -> None:
    flags.add("filter", "Filter expression for the request; @FILE or - reads it from a file or stdin.", default="")
    flags.add("node", "List the services of this node (`id or name`).", default="")
    flags.add("node-meta", "Only services on nodes with this `key=value` metadata; may be given more than once.",
              kind="list", convert=key_value)
    flags.add("tags", "Print each service's tags, comma-separated, beside its name.", kind="bool", default=False)


def catalog_services(call: Call) -> int:
    _no_args(call)
    client = call.client()
    values = call.values
    params = _filter(call) + _node_meta(call)
    services: dict[str, list[str]] = {}
    if values["node"]:
        try:
            reply = client.find("/v1/catalog/node/" + values["node"], params)
        except ApiError as exc:
            raise Fail(f"Error listing services for node: {exc}") from None
        node = reply.json() if reply is not None else None
        for service in ((node or {}).get("Services") or {}).values():
            services.setdefault(service["Service"], []).extend(service.get("Tags") or [])
    else:
        try:
            services = client.get_json("/v1/catalog/services", params) or {}
        except ApiError as exc:
            raise Fail(f"Error listing services: {exc}") from None
    if not services:
        err("No services match the given query - try expanding your search.")
        return 0
    names = sorted(services)
    if values["tags"]:
        table = "".join(f"{name}\t{','.join(sorted(services[name] or []))}\n" for name in names)
        out(tabwrite(table).strip())
    else:
        for name in names:
            out(name)
    return 0


COMMANDS = [
    Command("catalog", "Read the catalog of nodes and services",
            "Usage: consul catalog <subcommand> [options] [args]\n\n  Lists what the catalog holds: datacenters, "
            "nodes and services. Run a\n  subcommand with -h for its options."),
    Command("catalog datacenters", "List the known datacenters",
            "Usage: consul catalog datacenters [options]\n\n  Prints every known datacenter, nearest first.",
            catalog_datacenters, None, "client+server"),
    Command("catalog nodes", "List the nodes of a datacenter",
            "Usage: consul catalog nodes [options]\n\n  Prints the nodes registered in the datacenter (the agent's "
            "own unless\n  -datacenter names another).", catalog_nodes, _nodes_flags, "client+server"),
    Command("catalog services", "List the services of a datacenter",
            "Usage: consul catalog services [options]\n\n  Prints the names of the services registered in the "
            "datacenter, sorted.", catalog_services, _services_flags, "client+server"),
]
