"""Request-body decoding with Go encoding/json's rules as Consul applies them.

Keys match case-insensitively and through snake_case aliases, `null` means absent, unknown keys are
refused (`json: unknown field "x"`), and type mismatches read like Go's unmarshal errors. A schema maps
canonical field names to kinds; decoding returns a dict keyed by canonical names.
Imports: stdlib, orjson, consulpy.duration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from consulpy.duration import DurationError, parse_duration_value
from consulpy.gojson import json_type


class DecodeError(ValueError):
    """A body Go's decoder would refuse; str() is Go's message (the HTTP layer adds the prefix)."""


@dataclass(slots=True, frozen=True)
class Kind:
    """A field's type: a scalar name, or an object/list/map of a nested schema."""

    name: str  # str | int | uint | bool | duration | strmap | strlist | any | object | list | map
    schema: Schema | None = None
    go: str = ""


@dataclass(slots=True)
class Schema:
    """A Go struct: canonical field names with their kinds, plus extra accepted spellings."""

    go_name: str
    fields: dict[str, Kind]
    aliases: dict[str, str] = field(default_factory=dict)
    _lookup: dict[str, str] = field(default_factory=dict)

    def canonical(self, key: str) -> str | None:
        if not self._lookup:
            for name in self.fields:
                self._lookup[name.lower()] = name
            for alias, name in self.aliases.items():
                self._lookup[alias.lower()] = name
        return self._lookup.get(key.lower())


STR = Kind("str", go="string")
INT = Kind("int", go="int")
UINT = Kind("uint", go="uint64")
BOOL = Kind("bool", go="bool")
DURATION = Kind("duration", go="time.Duration")
STRMAP = Kind("strmap", go="map[string]string")
STRLIST = Kind("strlist", go="[]string")
ANY = Kind("any", go="interface {}")


def obj(schema: Schema) -> Kind:
    return Kind("object", schema, go=schema.go_name)


def listof(schema: Schema) -> Kind:
    return Kind("list", schema, go=f"[]{schema.go_name}")


def mapof(schema: Schema) -> Kind:
    return Kind("map", schema, go=f"map[string]{schema.go_name}")


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise DecodeError("EOF")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(str(exc)) from None


def _mismatch(value: Any, kind: Kind, where: str) -> DecodeError:
    return DecodeError(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type {kind.go}")


def _convert(value: Any, kind: Kind, where: str) -> Any:
    name = kind.name
    if name == "any":
        return value
    if name == "str":
        if not isinstance(value, str):
            raise _mismatch(value, kind, where)
        return value
    if name in ("int", "uint"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise _mismatch(value, kind, where)
        if name == "uint" and value < 0:
            raise _mismatch(value, kind, where)
        return int(value)
    if name == "bool":
        if not isinstance(value, bool):
            raise _mismatch(value, kind, where)
        return value
    if name == "duration":
        try:
            return parse_duration_value(value)
        except DurationError as exc:
            raise DecodeError(str(exc)) from None
    if name == "strmap":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _mismatch(value, kind, where)
        return dict(value)
    if name == "strlist":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _mismatch(value, kind, where)
        return list(value)
    assert kind.schema is not None
    if name == "object":
        return decode_object(value, kind.schema)
    if name == "list":
        if not isinstance(value, list):
            raise _mismatch(value, kind, where)
        return [decode_object(item, kind.schema) for item in value if item is not None]
    if name == "map":
        if not isinstance(value, dict):
            raise _mismatch(value, kind, where)
        return {k: decode_object(v, kind.schema) for k, v in value.items() if v is not None}
    raise DecodeError(f"unsupported kind {name}")


def decode_object(data: Any, schema: Schema) -> dict[str, Any]:
    """Decode one JSON object against `schema`; returns only the fields present and non-null."""
    if not isinstance(data, dict):
        raise DecodeError(f"json: cannot unmarshal {json_type(data)} into Go value of type {schema.go_name}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = schema.canonical(key)
        if name is None:
            raise DecodeError(f'json: unknown field "{key}"')
        if value is None:
            continue
        out[name] = _convert(value, schema.fields[name], f"{schema.go_name}.{name}")
    return out


def decode_body(body: bytes, schema: Schema) -> dict[str, Any]:
    return decode_object(parse_json(body), schema)


# --------------------------------------------------------------------------- Consul's request schemas

_CHECK_FIELDS = {
    "Name": STR, "Status": STR, "Notes": STR, "ServiceID": STR,
    "ScriptArgs": STRLIST, "HTTP": STR, "Header": Kind("any", go="map[string][]string"), "Method": STR,
    "Body": STR, "DisableRedirects": BOOL, "TCP": STR, "TCPUseTLS": BOOL, "UDP": STR, "GRPC": STR,
    "GRPCUseTLS": BOOL, "H2PING": STR, "H2PingUseTLS": BOOL, "OSService": STR, "AliasNode": STR,
    "AliasService": STR, "DockerContainerID": STR, "Shell": STR, "TLSServerName": STR,
    "TLSSkipVerify": BOOL, "Interval": DURATION, "Timeout": DURATION, "TTL": DURATION,
    "DeregisterCriticalServiceAfter": DURATION, "SuccessBeforePassing": INT,
    "FailuresBeforeWarning": INT, "FailuresBeforeCritical": INT, "OutputMaxSize": INT,
    "ProxyHTTP": STR, "ProxyGRPC": STR,
}
_CHECK_ALIASES = {
    "args": "ScriptArgs", "script_args": "ScriptArgs",
    "deregister_critical_service_after": "DeregisterCriticalServiceAfter",
    "docker_container_id": "DockerContainerID", "tls_server_name": "TLSServerName",
    "tls_skip_verify": "TLSSkipVerify", "grpc_use_tls": "GRPCUseTLS", "h2ping_use_tls": "H2PingUseTLS",
    "service_id": "ServiceID", "disable_redirects": "DisableRedirects", "tcp_use_tls": "TCPUseTLS",
    "success_before_passing": "SuccessBeforePassing", "failures_before_warning": "FailuresBeforeWarning",
    "failures_before_critical": "FailuresBeforeCritical", "output_max_size": "OutputMaxSize",
    "os_service": "OSService", "alias_node": "AliasNode", "alias_service": "AliasService",
}

# A check inside a service definition (structs.CheckType).
CHECK_TYPE = Schema("CheckType", {"CheckID": STR, **_CHECK_FIELDS}, aliases={"ID": "CheckID", **_CHECK_ALIASES})

# The body of /v1/agent/check/register (structs.CheckDefinition).
CHECK_DEFINITION = Schema("CheckDefinition", {"ID": STR, "Token": STR, "Namespace": STR, "Partition": STR,
                                              **_CHECK_FIELDS},
                          aliases={"CheckID": "ID", **_CHECK_ALIASES})

WEIGHTS = Schema("Weights", {"Passing": INT, "Warning": INT})
SERVICE_ADDRESS = Schema("ServiceAddress", {"Address": STR, "Port": INT})

# Canonicalised like the top level (py-consul passes e.g. {"native": true} through), so it renders as Consul's.
SERVICE_CONNECT = Schema("ServiceConnect", {"Native": BOOL, "SidecarService": ANY},
                         aliases={"sidecar_service": "SidecarService"})

SERVICE_DEFINITION = Schema("ServiceDefinition", {
    "Kind": STR, "ID": STR, "Name": STR, "Tags": STRLIST, "Address": STR,
    "TaggedAddresses": mapof(SERVICE_ADDRESS), "Meta": STRMAP, "Port": INT, "SocketPath": STR,
    "Check": obj(CHECK_TYPE), "Checks": listof(CHECK_TYPE), "Weights": obj(WEIGHTS), "Token": STR,
    "EnableTagOverride": BOOL, "Proxy": ANY, "Connect": obj(SERVICE_CONNECT), "Locality": ANY, "Namespace": STR,
    "Partition": STR,
}, aliases={"tagged_addresses": "TaggedAddresses", "enable_tag_override": "EnableTagOverride",
            "socket_path": "SocketPath"})

AGENT_SERVICE = Schema("AgentService", {
    "Kind": STR, "ID": STR, "Service": STR, "Tags": STRLIST, "Meta": STRMAP, "Port": INT, "Address": STR,
    "SocketPath": STR, "TaggedAddresses": mapof(SERVICE_ADDRESS), "Weights": obj(WEIGHTS),
    "EnableTagOverride": BOOL, "CreateIndex": UINT, "ModifyIndex": UINT, "ContentHash": STR, "Proxy": ANY,
    "Connect": obj(SERVICE_CONNECT), "Locality": ANY, "PeerName": STR, "Namespace": STR, "Partition": STR,
    "Datacenter": STR,
}, aliases={"tagged_addresses": "TaggedAddresses", "enable_tag_override": "EnableTagOverride"})

HEALTH_CHECK = Schema("HealthCheck", {
    "Node": STR, "CheckID": STR, "Name": STR, "Status": STR, "Notes": STR, "Output": STR,
    "ServiceID": STR, "ServiceName": STR, "ServiceTags": STRLIST, "Type": STR, "Interval": STR,
    "Timeout": STR, "ExposedPort": INT, "Definition": ANY, "CreateIndex": UINT, "ModifyIndex": UINT,
    "Namespace": STR, "Partition": STR, "PeerName": STR,
}, aliases={"ID": "CheckID"})

WRITE_REQUEST = Schema("WriteRequest", {"Token": STR})

CATALOG_REGISTER = Schema("RegisterRequest", {
    "ID": STR, "Node": STR, "Address": STR, "Datacenter": STR, "TaggedAddresses": STRMAP,
    "NodeMeta": STRMAP, "Service": obj(AGENT_SERVICE), "Check": obj(HEALTH_CHECK),
    "Checks": listof(HEALTH_CHECK), "SkipNodeUpdate": BOOL, "Token": STR, "WriteRequest": obj(WRITE_REQUEST),
    "Namespace": STR, "Partition": STR, "PeerName": STR, "Locality": ANY,
}, aliases={"tagged_addresses": "TaggedAddresses", "node_meta": "NodeMeta",
            "skip_node_update": "SkipNodeUpdate"})

CATALOG_DEREGISTER = Schema("DeregisterRequest", {
    "Node": STR, "Datacenter": STR, "ServiceID": STR, "CheckID": STR, "Token": STR,
    "WriteRequest": obj(WRITE_REQUEST), "Namespace": STR, "Partition": STR, "PeerName": STR,
})
