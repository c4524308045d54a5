"""`consul services register|deregister`: add or remove local-agent services from flags or definition files.

Definition files (HCL/JSON) go through the agent's own config loader in dev mode, as in Consul, then to
/v1/agent/service/register with Go's field names. Imports: stdlib, consulpy.cli.base, consulpy.cli.http;
consulpy.agent.config and .definitions only when files are read (they are slow to import).
"""

from __future__ import annotations

from typing import Any

from consulpy.cli.base import Call, Command, Fail, go_int, go_quote, key_value, out
from consulpy.cli.goflags import FlagSet
from consulpy.cli.http import ApiError


def services_from_files(paths: list[str]) -> list[dict[str, Any]]:
    """The service definitions in `paths`, as registration bodies (Consul's services.ServicesFromFiles)."""
    from consulpy.agent.config import ConfigError, load_config
    from consulpy.agent.definitions import config_service

    argv = ["-dev"]
    for path in paths:
        argv += ["-config-file", path]
    try:
        config = load_config(argv).config
    except ConfigError as exc:
        raise Fail(f"Error: {exc}") from None
    return [config_service(raw) for raw in config.services]


def _split_host_port(text: str) -> tuple[str, int]:
    """Go's net.SplitHostPort followed by strconv.Atoi on the port, with their error wording."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"address {text}: missing ']' in address")
        host, tail = text[1:end], text[end + 1:]
        if not tail.startswith(":"):
            raise ValueError(f"address {text}: missing port in address")
        port = tail[1:]
    else:
        if ":" not in text:
            raise ValueError(f"address {text}: missing port in address")
        host, port = text.rsplit(":", 1)
        if ":" in host:
            raise ValueError(f"address {text}: too many colons in address")
    if not port.lstrip("+-").isdigit():
        raise ValueError(f'strconv.Atoi: parsing "{port}": invalid syntax')
    return host, int(port)


# --------------------------------------------------------------------------- services register


def _register_flags(flags: FlagSet) -> None:
    flags.add("id", "Service ID for a registration from flags; defaults to -name.", default="")
    flags.add("name", "Service name for a registration from flags.", default="")
    flags.add("address", "Service address for a registration from flags.", default="")
    flags.add("port", "Service port for a registration from flags.", kind="int", default=0, convert=go_int)
    flags.add("socket", "Unix socket path of the service, instead of an address and port.", default="")
    flags.add("meta", "Service metadata as key=value; may be given more than once.", kind="list", convert=key_value)
    flags.add("tag", "A tag for the service; may be given more than once.", kind="list")
    flags.add("tagged-address", "A tagged address as key=host:port; may be given more than once.", kind="list",
              convert=key_value)
    flags.add("kind", "The service kind, e.g. connect-proxy.", default="")


def _from_flags(call: Call) -> dict[str, Any]:
    values = call.values
    tagged: dict[str, dict[str, Any]] = {}
    for name, text in values["tagged-address"]:
        try:
            host, port = _split_host_port(text)
        except ValueError as exc:
            raise Fail(f"Invalid Tagged Address: {exc}") from None
        tagged[name] = {"Address": host, "Port": port}
    body: dict[str, Any] = {"Kind": values["kind"], "ID": values["id"], "Name": values["name"],
                            "Tags": list(values["tag"]), "Port": values["port"], "Address": values["address"],
                            "SocketPath": values["socket"], "TaggedAddresses": tagged, "Meta": dict(values["meta"])}
    return {key: value for key, value in body.items() if value}


def _combine(file_service: dict[str, Any], flag_service: dict[str, Any]) -> dict[str, Any]:
    """Consul's CombineArgs: flag values fill in what the file leaves out; meta and tagged addresses overlay, tags
    append."""
    combined = dict(file_service)
    for key in ("ID", "Name", "Address", "Port", "Kind", "SocketPath"):
        if flag_service.get(key) and not combined.get(key):
            combined[key] = flag_service[key]
    for key in ("Meta", "TaggedAddresses"):
        merged = {**(combined.get(key) or {}), **flag_service.get(key, {})}
        if merged:
            combined[key] = merged
    tags = list(combined.get("Tags") or []) + flag_service.get("Tags", [])
    if tags:
        combined["Tags"] = tags
    return combined


def register(call: Call) -> int:
    flag_service = _from_flags(call)
    if not call.args and not call.values["name"]:
        raise Fail("Service registration requires at least one argument or flags.")
    if call.args and call.values["name"]:
        raise Fail("Service registration requires arguments or -id, not both.")
    from_files = [_combine(s, flag_service) for s in services_from_files(call.args)] if call.args else []
    client = call.client()
    for service in from_files or [flag_service]:
        name = str(service.get("Name", ""))
        try:
            client.put_json("/v1/agent/service/register", service)
        except ApiError as exc:
            raise Fail(f"Error registering service {go_quote(name)}: {exc}") from None
        out(f"Registered service: {name}")
    return 0


# --------------------------------------------------------------------------- services deregister


def _deregister_flags(flags: FlagSet) -> None:
    flags.add("id", "ID of the service to deregister; not allowed together with files.", default="")


def deregister(call: Call) -> int:
    service_id = call.values["id"]
    if not call.args and not service_id:
        raise Fail("Service deregistration requires at least one argument or -id.")
    if call.args and service_id:
        raise Fail("Service deregistration requires arguments or -id, not both.")
    services = services_from_files(call.args) if call.args else [{"ID": service_id}]
    client = call.client()
    for service in services:
        target = str(service.get("ID") or service.get("Name") or "")
        if not target:
            continue
        try:
            client.call("PUT", "/v1/agent/service/deregister/" + target)
        except ApiError as exc:
            raise Fail(f"Error registering service {go_quote(str(service.get('Name', '')))}: {exc}") from None
        out(f"Deregistered service: {target}")
    return 0


COMMANDS = [
    Command("services", "Register or deregister services of the local agent",
            "Usage: consul services <subcommand> [options] [args]\n\n  Adds and removes services on the local "
            "agent. Run a subcommand with -h for\n  its options."),
    Command("services register", "Register services with the local agent",
            "Usage: consul services register [options] [FILE...]\n\n  Registers the services defined in FILEs "
            "(agent configuration in HCL or JSON)\n  or, without files, the one service the flags describe. The "
            "services stay\n  until deregistered.", register, _register_flags, "client+server"),
    Command("services deregister", "Deregister services from the local agent",
            "Usage: consul services deregister [options] [FILE...]\n\n  Removes the services defined in FILEs, or "
            "the service named by -id, from\n  the local agent it was registered with.", deregister,
            _deregister_flags, "client+server"),
]
