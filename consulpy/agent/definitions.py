"""Service and check definitions → the records the agent registers, validated in Consul's order and wording.

HTTP bodies arrive decoded with Go's field names (`consulpy.http.decode` schemas); config-file definitions
arrive with Consul's snake_case config keys and are renamed to the same names first, so both paths share
one builder. Imports: stdlib, consulpy.duration, consulpy.state.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from consulpy.duration import DurationError, format_duration, parse_duration_value
from consulpy.gojson import json_type
from consulpy.state import CHECK_STATUSES, CRITICAL, HealthCheck, NodeService, Weights

MISSING_SERVICE_NAME = "Missing service name"
BAD_CHECK_STATUS = "Status for checks must 'passing', 'warning', 'critical'"

_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")
_ANY_ADDRESSES = ("0.0.0.0", "::", "[::]")
_CONNECT_PROXY = "connect-proxy"
_GATEWAY_KINDS = ("mesh-gateway", "terminating-gateway", "ingress-gateway", "api-gateway")


class RegistrationError(Exception):
    """A definition or registration the agent refuses; `status` is the HTTP code Consul answers with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True, frozen=True)
class CheckType:
    """How a check is run (Consul's structs.CheckType); durations in nanoseconds."""

    check_id: str = ""
    name: str = ""
    status: str = ""
    notes: str = ""
    script_args: tuple[str, ...] = ()
    http: str = ""
    header: dict[str, list[str]] = field(default_factory=dict)
    method: str = ""
    body: str = ""
    disable_redirects: bool = False
    tcp: str = ""
    tcp_use_tls: bool = False
    udp: str = ""
    grpc: str = ""
    grpc_use_tls: bool = False
    h2ping: str = ""
    h2ping_use_tls: bool = False
    os_service: str = ""
    alias_node: str = ""
    alias_service: str = ""
    docker_container_id: str = ""
    shell: str = ""
    tls_server_name: str = ""
    tls_skip_verify: bool = False
    interval: int = 0
    timeout: int = 0
    ttl: int = 0
    deregister_critical_service_after: int = 0
    success_before_passing: int = 0
    failures_before_warning: int = 0
    failures_before_critical: int = 0
    output_max_size: int = 0

    def is_empty(self) -> bool:
        return self == _EMPTY_CHECK

    def is_ttl(self) -> bool:
        return self.ttl > 0

    def is_script(self) -> bool:
        return bool(self.script_args)

    def is_alias(self) -> bool:
        return bool(self.alias_node or self.alias_service)

    def is_docker(self) -> bool:
        return bool(self.docker_container_id and self.script_args) and self.interval > 0

    def type_name(self) -> str:
        """Consul's CheckType.Type(): the first kind that matches, in Consul's order."""
        interval = self.interval > 0
        kinds = (
            ("grpc", bool(self.grpc) and interval),
            ("http", bool(self.http) and interval),
            ("ttl", self.is_ttl()),
            ("tcp", bool(self.tcp) and interval),
            ("udp", bool(self.udp) and interval),
            ("alias", self.is_alias()),
            ("docker", self.is_docker()),
            ("script", self.is_script() and interval),
            ("h2ping", bool(self.h2ping) and interval),
            ("os_service", bool(self.os_service) and interval),
        )
        return next((name for name, matches in kinds if matches), "")

    def validate(self) -> str | None:
        """Consul's CheckType.Validate(): the reason the check is invalid, or None."""
        interval_check = self.is_script() or any((self.http, self.tcp, self.udp, self.grpc, self.h2ping,
                                                   self.os_service))
        if self.interval > 0 and self.ttl > 0:
            return "Interval and TTL cannot both be specified"
        if interval_check and self.interval <= 0:
            return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
        if interval_check and self.is_alias():
            return "Interval cannot be set for Alias checks"
        if self.is_alias() and self.ttl > 0:
            return "TTL must be not be set for Alias checks"
        if not interval_check and not self.is_alias() and self.ttl <= 0:
            return "TTL must be > 0 for TTL checks"
        if self.output_max_size < 0:
            return "MaxOutputMaxSize must be positive"
        if self.failures_before_warning > self.failures_before_critical:
            return "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
        return None


_EMPTY_CHECK = CheckType()


@dataclass(slots=True, frozen=True)
class ServiceRegistration:
    """A validated service definition: the service record and the checks to build for it."""

    service: NodeService
    check_types: tuple[CheckType, ...]
    token: str = ""


@dataclass(slots=True, frozen=True)
class CheckRegistration:
    """A validated check definition: its record (status, names, type) and how to run it."""

    check: HealthCheck
    check_type: CheckType
    token: str = ""


# --------------------------------------------------------------------------- field access


def _duration(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if value is None:
        return 0
    try:
        return parse_duration_value(value)
    except DurationError as exc:
        raise RegistrationError(400, f"Request decode failed: {exc}") from None


def _header(raw: dict[str, Any], where: str) -> dict[str, list[str]]:
    value = raw.get("Header")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistrationError(400, f"Request decode failed: json: cannot unmarshal {json_type(value)} into Go "
                                     f"struct field {where}.Header of type map[string][]string")
    out: dict[str, list[str]] = {}
    for key, values in value.items():
        if values is None:
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise RegistrationError(400, f"Request decode failed: json: cannot unmarshal {json_type(values)} "
                                         f"into Go struct field {where}.Header of type []string")
        out[key] = list(values)
    return out


def check_type_from(raw: dict[str, Any], where: str = "CheckType") -> CheckType:
    """A CheckType from a decoded check object (Go field names; `ID` and `CheckID` both name the ID)."""
    return CheckType(
        check_id=raw.get("CheckID") or raw.get("ID") or "",
        name=raw.get("Name", ""),
        status=raw.get("Status", ""),
        notes=raw.get("Notes", ""),
        script_args=tuple(raw.get("ScriptArgs") or ()),
        http=raw.get("HTTP", ""),
        header=_header(raw, where),
        method=raw.get("Method", ""),
        body=raw.get("Body", ""),
        disable_redirects=raw.get("DisableRedirects", False),
        tcp=raw.get("TCP", ""),
        tcp_use_tls=raw.get("TCPUseTLS", False),
        udp=raw.get("UDP", ""),
        grpc=raw.get("GRPC", ""),
        grpc_use_tls=raw.get("GRPCUseTLS", False),
        h2ping=raw.get("H2PING", ""),
        h2ping_use_tls=raw.get("H2PingUseTLS", bool(raw.get("H2PING"))),
        os_service=raw.get("OSService", ""),
        alias_node=raw.get("AliasNode", ""),
        alias_service=raw.get("AliasService", ""),
        docker_container_id=raw.get("DockerContainerID", ""),
        shell=raw.get("Shell", ""),
        tls_server_name=raw.get("TLSServerName", ""),
        tls_skip_verify=raw.get("TLSSkipVerify", False),
        interval=_duration(raw, "Interval"),
        timeout=_duration(raw, "Timeout"),
        ttl=_duration(raw, "TTL"),
        deregister_critical_service_after=_duration(raw, "DeregisterCriticalServiceAfter"),
        success_before_passing=raw.get("SuccessBeforePassing", 0),
        failures_before_warning=raw.get("FailuresBeforeWarning", 0),
        failures_before_critical=raw.get("FailuresBeforeCritical", 0),
        output_max_size=raw.get("OutputMaxSize", 0),
    )


# --------------------------------------------------------------------------- validation helpers


def _validate_weights(weights: dict[str, Any]) -> str | None:
    passing = weights.get("Passing", 0)
    warning = weights.get("Warning", 0)
    if passing < 1:
        return "Passing must be greater than 0"
    if warning < 0:
        return "Warning must be greater or equal than 0"
    if passing > 65535 or warning > 65535:
        return "DNS Weight must be between 0 and 65535"
    return None


def validate_meta(meta: dict[str, str]) -> str | None:
    """Consul's metadata rules (structs.validateMetadata), shared by node and service meta."""
    if len(meta) > 64:
        return "Node metadata cannot contain more than 64 key/value pairs"
    for key, value in meta.items():
        if not key:
            reason = "Key cannot be blank"
        elif not _META_KEY.match(key):
            reason = "Key contains invalid characters"
        elif len(key) > 128:
            reason = "Key is too long (limit: 128 characters)"
        elif key.startswith("consul-"):
            reason = "Key prefix 'consul-' is reserved for internal use"
        elif len(value) > 512:
            reason = "Value is too long (limit: 512 characters)"
        else:
            continue
        return f"Couldn't load metadata pair ('{key}', '{value}'): {reason}"
    return None


def _validate_node_service(kind: str, port: int, socket_path: str, proxy: Any, connect: Any) -> str | None:
    """The subset of NodeService.Validate() that applies without Connect support, as a multierror text."""
    errors: list[str] = []
    native = isinstance(connect, dict) and bool(connect.get("Native") or connect.get("native"))
    if kind == _CONNECT_PROXY:
        destination = ""
        if isinstance(proxy, dict):
            destination = str(proxy.get("DestinationServiceName") or proxy.get("destination_service_name") or "")
        if not destination.strip():
            errors.append("Proxy.DestinationServiceName must be non-empty for Connect proxy services")
        if port == 0 and not socket_path:
            errors.append("Port or SocketPath must be set for a Connect proxy")
        if native:
            errors.append("A Proxy cannot also be Connect Native, only typical services")
    elif kind in _GATEWAY_KINDS and native:
        errors.append("A Gateway cannot also be Connect Native, only typical services")
    if not errors:
        return None
    noun = "error" if len(errors) == 1 else "errors"
    lines = "".join(f"\t* {e}\n" for e in errors)
    return f"{len(errors)} {noun} occurred:\n{lines}\n"


def _tagged_address_error(tagged: dict[str, dict[str, Any]]) -> str | None:
    # Consul checks lan_ipv6 but not wan_ipv6 (agent.validateService); so do we.
    for key, want in (("lan_ipv4", 4), ("wan_ipv4", 4), ("lan_ipv6", 6)):
        if key not in tagged:
            continue
        try:
            ip = ipaddress.ip_address(str(tagged[key].get("Address", "")))
        except ValueError:
            ip = None
        if ip is None or ip.version != want:
            return f'Service tagged address "{key}" must be a valid ipv{want} address'
    return None


def _default_tagged_addresses(address: str, port: int, tagged: dict[str, dict[str, Any]]
                              ) -> dict[str, dict[str, Any]]:
    """The agent adds lan_ipv4/wan_ipv4 (or _ipv6) entries from a literal IP service address."""
    out = dict(tagged)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return out
    suffix = "ipv4" if ip.version == 4 else "ipv6"
    for key in (f"lan_{suffix}", f"wan_{suffix}"):
        out.setdefault(key, {"Address": address, "Port": port})
    return out


# --------------------------------------------------------------------------- builders


def service_registration(raw: dict[str, Any]) -> ServiceRegistration:
    """Validate a decoded service definition in Consul's order and build what the agent registers."""
    name = raw.get("Name", "")
    if not name:
        raise RegistrationError(400, MISSING_SERVICE_NAME)
    address = raw.get("Address", "")
    if address in _ANY_ADDRESSES:
        raise RegistrationError(400, "Invalid service address")
    weights = raw.get("Weights")
    if weights is not None:
        reason = _validate_weights(weights)
        if reason:
            raise RegistrationError(400, f"Invalid Weights: {reason}")
    meta = dict(raw.get("Meta") or {})
    reason = validate_meta(meta)
    if reason:
        raise RegistrationError(400, f"Invalid Service Meta: {reason}")
    kind = raw.get("Kind", "")
    port = raw.get("Port", 0)
    socket_path = raw.get("SocketPath", "")
    reason = _validate_node_service(kind, port, socket_path, raw.get("Proxy"), raw.get("Connect"))
    if reason:
        raise RegistrationError(400, f"Validation failed: {reason}")
    raw_checks = ([raw["Check"]] if raw.get("Check") is not None else []) + list(raw.get("Checks") or [])
    check_types = [ct for ct in (check_type_from(c) for c in raw_checks) if not ct.is_empty()]
    for ct in check_types:
        reason = ct.validate()
        if reason:
            raise RegistrationError(400, f"Invalid check: {reason}")
    for ct in check_types:
        if ct.status and ct.status not in CHECK_STATUSES:
            raise RegistrationError(400, BAD_CHECK_STATUS)
    connect = raw.get("Connect")
    if isinstance(connect, dict) and any(k.lower().replace("_", "") == "sidecarservice" and v is not None
                                         for k, v in connect.items()):
        raise RegistrationError(400, "Invalid SidecarService: sidecar service registration is not supported "
                                     "by consulpy")
    tagged = {k: dict(v) for k, v in (raw.get("TaggedAddresses") or {}).items()}
    reason = _tagged_address_error(tagged)
    if reason:
        raise RegistrationError(500, reason)
    service_weights = Weights(weights.get("Passing", 0), weights.get("Warning", 0)) if weights else Weights()
    service = NodeService(
        id=raw.get("ID") or name,
        service=name,
        tags=tuple(raw.get("Tags") or ()),
        address=address,
        port=port,
        meta=meta,
        tagged_addresses=_default_tagged_addresses(address, port, tagged),
        weights=service_weights,
        enable_tag_override=raw.get("EnableTagOverride", False),
        kind=kind,
        socket_path=socket_path,
        proxy=raw.get("Proxy"),
        connect=connect,
        locality=raw.get("Locality"),
    )
    return ServiceRegistration(service, tuple(check_types), raw.get("Token", ""))


def check_registration(raw: dict[str, Any], node_name: str) -> CheckRegistration:
    """Validate a decoded /v1/agent/check/register body (CheckDefinition) and build its record."""
    name = raw.get("Name", "")
    if not name:
        raise RegistrationError(400, "Missing check name")
    status = raw.get("Status", "")
    if status and status not in CHECK_STATUSES:
        raise RegistrationError(400, "Bad check status")
    ct = check_type_from(raw, "CheckDefinition")
    reason = ct.validate()
    if reason:
        raise RegistrationError(400, f"Invalid check: {reason}")
    check = HealthCheck(
        node=node_name,
        check_id=raw.get("ID") or name,
        name=name,
        status=status or CRITICAL,
        notes=raw.get("Notes", ""),
        service_id=raw.get("ServiceID", ""),
        type=ct.type_name(),
        interval=format_duration(ct.interval),
        timeout=format_duration(ct.timeout),
    )
    return CheckRegistration(check, ct, raw.get("Token", ""))


def service_check(service: NodeService, ct: CheckType, position: int, count: int, node_name: str) -> HealthCheck:
    """The check record for a service's n-th check (1-based), with Consul's default ID and name."""
    check_id = ct.check_id or (f"service:{service.id}" if count == 1 else f"service:{service.id}:{position}")
    return HealthCheck(
        node=node_name,
        check_id=check_id,
        name=ct.name or f"Service '{service.service}' check",
        status=ct.status or CRITICAL,
        notes=ct.notes,
        service_id=service.id,
        service_name=service.service,
        service_tags=service.tags,
        type=ct.type_name(),
        interval=format_duration(ct.interval) if ct.interval else "",
        timeout=format_duration(ct.timeout) if ct.timeout else "",
    )


# --------------------------------------------------------------------------- config files

_CONFIG_CHECK_KEYS = {
    "id": "ID", "name": "Name", "notes": "Notes", "service_id": "ServiceID", "token": "Token", "status": "Status",
    "args": "ScriptArgs", "http": "HTTP", "header": "Header", "method": "Method", "body": "Body",
    "disable_redirects": "DisableRedirects", "output_max_size": "OutputMaxSize", "tcp": "TCP",
    "tcp_use_tls": "TCPUseTLS", "udp": "UDP", "interval": "Interval", "docker_container_id": "DockerContainerID",
    "shell": "Shell", "grpc": "GRPC", "grpc_use_tls": "GRPCUseTLS", "tls_server_name": "TLSServerName",
    "tls_skip_verify": "TLSSkipVerify", "alias_node": "AliasNode", "alias_service": "AliasService",
    "timeout": "Timeout", "ttl": "TTL", "h2ping": "H2PING", "h2ping_use_tls": "H2PingUseTLS",
    "os_service": "OSService", "success_before_passing": "SuccessBeforePassing",
    "failures_before_warning": "FailuresBeforeWarning", "failures_before_critical": "FailuresBeforeCritical",
    "deregister_critical_service_after": "DeregisterCriticalServiceAfter", "namespace": "Namespace",
    "partition": "Partition",
}
_CONFIG_SERVICE_KEYS = {
    "kind": "Kind", "id": "ID", "name": "Name", "tags": "Tags", "address": "Address", "meta": "Meta",
    "port": "Port", "socket_path": "SocketPath", "token": "Token", "enable_tag_override": "EnableTagOverride",
    "proxy": "Proxy", "connect": "Connect", "namespace": "Namespace", "partition": "Partition",
}


def _config_check(raw: dict[str, Any]) -> dict[str, Any]:
    return {_CONFIG_CHECK_KEYS.get(k, k): v for k, v in raw.items()}


def config_service(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "check":
            out["Check"] = _config_check(value)
        elif key == "checks":
            out["Checks"] = [_config_check(c) for c in value]
        elif key == "weights":
            out["Weights"] = {k.capitalize(): v for k, v in value.items()}
        elif key == "tagged_addresses":
            out["TaggedAddresses"] = {name: {k.capitalize(): v for k, v in addr.items()}
                                      for name, addr in value.items()}
        elif key == "locality":
            out["Locality"] = {k.capitalize(): v for k, v in value.items()}
        else:
            out[_CONFIG_SERVICE_KEYS.get(key, key)] = value
    return out


def config_service_registration(raw: dict[str, Any]) -> ServiceRegistration:
    """A service from a config file (`service`/`services`); errors name the service as Consul's loader does."""
    fields = config_service(raw)
    try:
        return service_registration(fields)
    except RegistrationError as exc:
        raise RegistrationError(500, f'Failed to register service "{fields.get("Name", "")}": {exc.reason}'
                                ) from None


def config_check_registration(raw: dict[str, Any], node_name: str) -> CheckRegistration:
    """A check from a config file (`check`/`checks`)."""
    fields = _config_check(raw)
    try:
        return check_registration(fields, node_name)
    except RegistrationError as exc:
        raise RegistrationError(500, f'Failed to register check "{fields.get("Name", "")}": {exc.reason}'
                                ) from None
