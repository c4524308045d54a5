"""Agent configuration: Consul's agent flags, JSON/HCL config files (YAML too, a consulpy extension), merged
in Consul's order (defaults < -dev < files/dirs < command-line flags < -hcl) and validated into a RuntimeConfig.
Imports: stdlib, pyhcl (`hcl`), PyYAML (`yaml`), consulpy.cli.goflags, consulpy.duration.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import ipaddress
import itertools
import json
import math
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from hcl.parser import HclParser

from consulpy.agent.definitions import validate_meta
from consulpy.cli.goflags import FlagError, FlagSet
from consulpy.duration import DurationError, parse_duration


class ConfigError(Exception):
    """A configuration the agent refuses; str() is a one-line reason in Consul's wording."""


# ---------------------------------------------------------------------------------------------------------------
# The config-file schema: every key Consul's `Config` struct accepts (agent/config/config.go, deprecated.go).
# Leaf kinds: str, int, bool, float, dur (a Go duration string), strlist, strmap (map[string]string),
# strlistmap (map[string][]string), anymap (opaque object), maplist (list of opaque objects), any.


@dataclass(frozen=True)
class Struct:
    """A config object with a fixed key set; `aliases` maps extra (lower-case) spellings to canonical keys."""

    fields: dict[str, Any]
    aliases: dict[str, str] = field(default_factory=dict)
    top: bool = False


@dataclass(frozen=True)
class ListOf:
    """A list of objects; a lone object (one HCL block) is taken as a one-element list."""

    elem: Struct


@dataclass(frozen=True)
class Ptr:
    """A pointer-to-struct in Go: merged as a whole (the later source replaces it), not key by key."""

    elem: Struct


@dataclass(frozen=True)
class MapOf:
    """An object whose keys are user names and whose values are `elem` objects."""

    elem: Struct


@dataclass(frozen=True)
class OneOrMany:
    """`service` / `check`: one object, or (consulpy extension, repeated HCL blocks) several."""

    elem: Struct


_MAP_KINDS = ("strmap", "strlistmap", "anymap")

_CHECK = Struct({
    "id": "str", "name": "str", "notes": "str", "service_id": "str", "token": "str", "status": "str",
    "args": "strlist", "http": "str", "header": "strlistmap", "method": "str", "body": "str",
    "disable_redirects": "bool", "output_max_size": "int", "tcp": "str", "tcp_use_tls": "bool", "udp": "str",
    "interval": "dur", "docker_container_id": "str", "shell": "str", "grpc": "str", "grpc_use_tls": "bool",
    "tls_server_name": "str", "tls_skip_verify": "bool", "alias_node": "str", "alias_service": "str",
    "timeout": "dur", "ttl": "dur", "h2ping": "str", "h2ping_use_tls": "bool", "os_service": "str",
    "success_before_passing": "int", "failures_before_warning": "int", "failures_before_critical": "int",
    "deregister_critical_service_after": "dur", "namespace": "str", "partition": "str",
}, aliases={"scriptargs": "args"})
_MESH_GATEWAY = Struct({"mode": "str"})
_UPSTREAM = Struct({
    "destination_type": "str", "destination_namespace": "str", "destination_partition": "str",
    "destination_peer": "str", "destination_name": "str", "datacenter": "str", "local_bind_address": "str",
    "local_bind_port": "int", "local_bind_socket_path": "str", "local_bind_socket_mode": "str",
    "config": "anymap", "mesh_gateway": Ptr(_MESH_GATEWAY),
})
_PROXY = Struct({
    "destination_service_name": "str", "destination_service_id": "str", "local_service_address": "str",
    "local_service_port": "int", "local_service_socket_path": "str", "mode": "str", "config": "anymap",
    "transparent_proxy": Ptr(Struct({"outbound_listener_port": "int", "dialed_directly": "bool"})),
    "upstreams": ListOf(_UPSTREAM), "mesh_gateway": Ptr(_MESH_GATEWAY),
    "expose": Ptr(Struct({"checks": "bool", "port": "int", "paths": ListOf(Struct({
        "listener_port": "int", "path": "str", "protocol": "str", "local_path_port": "int"}))})),
})
_SERVICE = Struct({
    "kind": "str", "id": "str", "name": "str", "tags": "strlist", "address": "str",
    "tagged_addresses": MapOf(Struct({"address": "str", "port": "int"})), "meta": "strmap", "port": "int",
    "socket_path": "str", "check": Ptr(_CHECK), "checks": ListOf(_CHECK), "token": "str",
    "weights": Ptr(Struct({"passing": "int", "warning": "int"})), "enable_tag_override": "bool",
    "proxy": Ptr(_PROXY), "namespace": "str", "partition": "str",
    "locality": Ptr(Struct({"region": "str", "zone": "str"})),
})
_SERVICE.fields["connect"] = Ptr(Struct({"native": "bool", "sidecar_service": Ptr(_SERVICE)}))

_GOSSIP = Struct({"gossip_nodes": "int", "gossip_interval": "dur", "probe_interval": "dur", "probe_timeout": "dur",
                  "suspicion_mult": "int", "retransmit_mult": "int"})
_TLS_PROTOCOL = Struct({
    "ca_file": "str", "ca_path": "str", "cert_file": "str", "key_file": "str", "tls_min_version": "str",
    "tls_cipher_suites": "str", "verify_incoming": "bool", "verify_outgoing": "bool",
    "verify_server_hostname": "bool", "use_auto_cert": "bool",
})
_TELEMETRY_STR = (
    "circonus_api_app circonus_api_token circonus_api_url circonus_broker_id circonus_broker_select_tag "
    "circonus_check_display_name circonus_check_force_metric_activation circonus_check_id "
    "circonus_check_instance_id circonus_check_search_tag circonus_check_tags circonus_submission_interval "
    "circonus_submission_url dogstatsd_addr metrics_prefix statsd_address statsite_address"
)

_SCHEMA = Struct(top=True, aliases={"non_voting_server": "read_replica"}, fields={
    "acl": Struct({
        "enabled": "bool", "enable_token_replication": "bool", "policy_ttl": "dur", "role_ttl": "dur",
        "token_ttl": "dur", "down_policy": "str", "default_policy": "str", "enable_key_list_policy": "bool",
        "enable_token_persistence": "bool", "msp_disable_bootstrap": "bool",
        "tokens": Struct({
            "initial_management": "str", "replication": "str", "agent_recovery": "str", "default": "str",
            "agent": "str", "config_file_service_registration": "str", "dns": "str", "master": "str",
            "agent_master": "str",
            "managed_service_provider": ListOf(Struct({"accessor_id": "str", "secret_id": "str"})),
        }),
    }),
    "addresses": Struct({"dns": "str", "http": "str", "https": "str", "grpc": "str", "grpc_tls": "str"}),
    "advertise_addr": "str", "advertise_addr_ipv4": "str", "advertise_addr_ipv6": "str",
    "advertise_addr_wan": "str", "advertise_addr_wan_ipv4": "str", "advertise_addr_wan_ipv6": "str",
    "advertise_reconnect_timeout": "dur",
    "auto_config": Struct({
        "enabled": "bool", "intro_token": "str", "intro_token_file": "str", "server_addresses": "strlist",
        "dns_sans": "strlist", "ip_sans": "strlist",
        "authorization": Struct({"enabled": "bool", "static": Struct({
            "claim_assertions": "strlist", "allow_reuse": "bool", "jwt_supported_algs": "strlist",
            "bound_audiences": "strlist", "claim_mappings": "strmap", "list_claim_mappings": "strmap",
            "oidc_discovery_url": "str", "oidc_discovery_ca_cert": "str", "jwks_url": "str", "jwks_ca_cert": "str",
            "jwt_validation_pub_keys": "strlist", "bound_issuer": "str", "expiration_leeway": "dur",
            "not_before_leeway": "dur", "clock_skew_leeway": "dur",
        })}),
    }),
    "auto_encrypt": Struct({"tls": "bool", "dns_san": "strlist", "ip_san": "strlist", "allow_tls": "bool"}),
    "autopilot": Struct({
        "cleanup_dead_servers": "bool", "last_contact_threshold": "dur", "max_trailing_logs": "int",
        "min_quorum": "int", "server_stabilization_time": "dur", "disable_upgrade_migration": "bool",
        "redundancy_zone_tag": "str", "upgrade_version_tag": "str",
    }),
    "bind_addr": "str", "bootstrap": "bool", "bootstrap_expect": "int",
    "cache": Struct({"entry_fetch_max_burst": "int", "entry_fetch_rate": "float"}),
    "check": OneOrMany(_CHECK), "checks": ListOf(_CHECK), "check_output_max_size": "int",
    "check_update_interval": "dur", "client_addr": "str",
    "cloud": Ptr(Struct({"resource_id": "str", "client_id": "str", "client_secret": "str", "hostname": "str",
                         "auth_url": "str", "scada_address": "str"})),
    "config_entries": Struct({"bootstrap": "maplist"}),
    "connect": Struct({"enabled": "bool", "ca_provider": "str", "ca_config": "anymap",
                       "enable_mesh_gateway_wan_federation": "bool", "test_ca_leaf_root_change_spread": "dur"}),
    "data_dir": "str", "datacenter": "str", "default_query_time": "dur",
    "disable_anonymous_signature": "bool", "disable_coordinates": "bool", "disable_host_node_id": "bool",
    "disable_http_unprintable_char_filter": "bool", "disable_keyring_file": "bool", "disable_remote_exec": "bool",
    "disable_update_check": "bool", "discard_check_output": "bool", "discovery_max_stale": "dur",
    "dns_config": Struct({
        "allow_stale": "bool", "a_record_limit": "int", "disable_compression": "bool", "enable_truncate": "bool",
        "max_stale": "dur", "node_ttl": "dur", "only_passing": "bool", "recursor_strategy": "str",
        "recursor_timeout": "dur", "service_ttl": "strmap", "udp_answer_limit": "int",
        "enable_additional_node_meta_txt": "bool", "use_cache": "bool", "cache_max_age": "dur",
        "prefer_namespace": "bool",
        "soa": Ptr(Struct({"refresh": "int", "retry": "int", "expire": "int", "min_ttl": "int"})),
    }),
    "domain": "str", "alt_domain": "str", "recursors": "strlist",
    "enable_agent_tls_for_checks": "bool", "enable_central_service_config": "bool", "enable_debug": "bool",
    "enable_script_checks": "bool", "enable_local_script_checks": "bool", "enable_syslog": "bool",
    "encrypt": "str", "encrypt_verify_incoming": "bool", "encrypt_verify_outgoing": "bool",
    "experiments": "strlist", "gossip_lan": _GOSSIP, "gossip_wan": _GOSSIP,
    "http_config": Struct({"block_endpoints": "strlist", "allow_write_http_from": "strlist",
                           "response_headers": "strmap", "use_cache": "bool", "max_header_bytes": "int"}),
    "leave_on_terminate": "bool", "license_path": "str",
    "limits": Struct({
        "http_max_conns_per_client": "int", "https_handshake_timeout": "dur",
        "request_limits": Struct({"mode": "str", "read_rate": "float", "write_rate": "float"}),
        "rpc_client_timeout": "dur", "rpc_handshake_timeout": "dur", "rpc_max_burst": "int",
        "rpc_max_conns_per_client": "int", "rpc_rate": "float", "kv_max_value_size": "int",
        "txn_max_req_len": "int",
    }),
    "locality": Ptr(Struct({"region": "str", "zone": "str"})),
    "log_level": "str", "log_sublevels": "strmap", "log_json": "bool", "log_file": "str",
    "log_rotate_duration": "dur", "log_rotate_bytes": "int", "log_rotate_max_files": "int",
    "max_query_time": "dur", "node_id": "str", "node_meta": "strmap", "node_name": "str",
    "peering": Struct({"enabled": "bool", "test_allow_peer_registrations": "bool"}),
    "performance": Struct({"leave_drain_time": "dur", "raft_multiplier": "int", "rpc_hold_timeout": "dur"}),
    "pid_file": "str",
    "ports": Struct({name: "int" for name in (
        "dns", "http", "https", "serf_lan", "serf_wan", "server", "grpc", "grpc_tls", "proxy_min_port",
        "proxy_max_port", "sidecar_min_port", "sidecar_max_port", "expose_min_port", "expose_max_port")}),
    "primary_datacenter": "str", "primary_gateways": "strlist", "primary_gateways_interval": "dur",
    "protocol": "int", "raft_protocol": "int", "raft_snapshot_threshold": "int", "raft_snapshot_interval": "dur",
    "raft_trailing_logs": "int", "reconnect_timeout": "dur", "reconnect_timeout_wan": "dur",
    "rejoin_after_leave": "bool", "auto_reload_config": "bool", "retry_interval": "dur",
    "retry_interval_wan": "dur", "retry_join": "strlist", "retry_max": "int", "retry_max_wan": "int",
    "retry_join_wan": "strlist", "serf_lan_allowed_cidrs": "strlist", "serf_wan_allowed_cidrs": "strlist",
    "serf_lan": "str", "serf_wan": "str", "server": "bool", "server_name": "str", "server_rejoin_age_max": "dur",
    "service": OneOrMany(_SERVICE), "services": ListOf(_SERVICE), "session_ttl_min": "dur",
    "skip_leave_on_interrupt": "bool", "syslog_facility": "str",
    "tls": Struct({"defaults": _TLS_PROTOCOL, "internal_rpc": _TLS_PROTOCOL, "https": _TLS_PROTOCOL,
                   "grpc": _TLS_PROTOCOL}),
    "tagged_addresses": "strmap",
    "telemetry": Struct({
        **{name: "str" for name in _TELEMETRY_STR.split()},
        "disable_hostname": "bool", "dogstatsd_tags": "strlist", "retry_failed_connection": "bool",
        "filter_default": "bool", "prefix_filter": "strlist", "prometheus_retention_time": "dur",
        "enable_host_metrics": "bool",
    }),
    "translate_wan_addrs": "bool", "xds": Struct({"update_max_per_second": "float"}),
    "ui": "bool", "ui_content_path": "str", "ui_dir": "str",
    "ui_config": Struct({
        "enabled": "bool", "dir": "str", "content_path": "str", "metrics_provider": "str",
        "metrics_provider_files": "strlist", "metrics_provider_options_json": "str",
        "metrics_proxy": Struct({"base_url": "str", "add_headers": ListOf(Struct({"name": "str", "value": "str"})),
                                 "path_allowlist": "strlist"}),
        "dashboard_url_templates": "strmap",
    }),
    "unix_sockets": Struct({"group": "str", "mode": "str", "user": "str"}),
    "watches": "maplist", "rpc": Struct({"enable_streaming": "bool"}),
    "raft_logstore": Struct({
        "backend": "str", "disable_log_cache": "bool",
        "verification": Struct({"enabled": "bool", "interval": "dur"}),
        "boltdb": Struct({"no_freelist_sync": "bool"}), "wal": Struct({"segment_size_mb": "int"}),
    }),
    "use_streaming_backend": "bool", "snapshot_agent": "anymap",
    # Values Consul sets itself (its later sources override them) but still accepts in files.
    "ae_interval": "dur", "check_deregister_interval_min": "dur", "check_reap_interval": "dur",
    "consul": Struct({
        "coordinate": Struct({"update_batch_size": "int", "update_max_batches": "int", "update_period": "dur"}),
        "raft": Struct({"election_timeout": "dur", "heartbeat_timeout": "dur", "leader_lease_timeout": "dur"}),
        "server": Struct({"health_interval": "dur"}),
    }),
    "revision": "str", "segment_limit": "int", "segment_name_limit": "int", "sync_coordinate_interval_min": "dur",
    "sync_coordinate_rate_target": "float", "version": "str", "version_prerelease": "str",
    "version_metadata": "str", "build_date": "any",
    # Enterprise-only keys (accepted, ignored).
    "audit": Struct({"enabled": "bool", "sink": MapOf(Struct({
        "type": "str", "format": "str", "path": "str", "delivery_guarantee": "str", "mode": "str",
        "rotate_bytes": "int", "rotate_duration": "dur", "rotate_max_files": "int"}))}),
    "read_replica": "bool", "segment": "str", "partition": "str",
    "segments": ListOf(Struct({"advertise": "str", "bind": "str", "name": "str", "port": "int",
                               "rpc_listener": "bool"})),
    "license_poll_base_time": "dur", "license_poll_max_time": "dur", "license_update_base_time": "dur",
    "license_update_max_time": "dur", "reporting": Struct({"license": Struct({"enabled": "bool"})}),
    # Deprecated keys, moved to their new place per source (see _DEPRECATED).
    "acl_agent_master_token": "str", "acl_agent_token": "str", "acl_token": "str",
    "acl_enable_key_list_policy": "bool", "acl_master_token": "str", "acl_replication_token": "str",
    "enable_acl_replication": "bool", "acl_datacenter": "str", "acl_default_policy": "str",
    "acl_down_policy": "str", "acl_ttl": "dur", "ca_file": "str", "ca_path": "str", "cert_file": "str",
    "key_file": "str", "tls_cipher_suites": "str", "tls_min_version": "str", "verify_incoming": "bool",
    "verify_incoming_https": "bool", "verify_incoming_rpc": "bool", "verify_outgoing": "bool",
    "verify_server_hostname": "bool", "tls_prefer_server_cipher_suites": "bool", "start_join": "strlist",
    "start_join_wan": "strlist", "raft_boltdb": Struct({"no_freelist_sync": "bool"}),
})

# (old top-level key, new dotted path); Consul's applyDeprecatedConfig order.
_DEPRECATED = (
    ("acl_agent_master_token", "acl.tokens.agent_recovery"), ("acl_agent_token", "acl.tokens.agent"),
    ("acl_token", "acl.tokens.default"), ("acl_master_token", "acl.tokens.initial_management"),
    ("acl_replication_token", "acl.tokens.replication"), ("enable_acl_replication", "acl.enable_token_replication"),
    ("acl_datacenter", "primary_datacenter"), ("acl_default_policy", "acl.default_policy"),
    ("acl_down_policy", "acl.down_policy"), ("acl_ttl", "acl.token_ttl"),
    ("acl_enable_key_list_policy", "acl.enable_key_list_policy"), ("start_join", "retry_join"),
    ("start_join_wan", "retry_join_wan"), ("raft_boltdb", "raft_logstore.boltdb"),
    ("ca_file", "tls.defaults.ca_file"), ("ca_path", "tls.defaults.ca_path"),
    ("cert_file", "tls.defaults.cert_file"), ("key_file", "tls.defaults.key_file"),
    ("tls_cipher_suites", "tls.defaults.tls_cipher_suites"), ("tls_min_version", "tls.defaults.tls_min_version"),
    ("verify_incoming", "tls.defaults.verify_incoming"), ("verify_incoming_https", "tls.https.verify_incoming"),
    ("verify_incoming_rpc", "tls.internal_rpc.verify_incoming"), ("verify_outgoing", "tls.defaults.verify_outgoing"),
    ("verify_server_hostname", "tls.internal_rpc.verify_server_hostname"),
)
_OLD_TLS_VERSIONS = {"tls10": "TLSv1_0", "tls11": "TLSv1_1", "tls12": "TLSv1_2", "tls13": "TLSv1_3"}

# Consul's DefaultSource and DevSource (agent/config/default.go), for the keys consulpy reads.
_DEFAULT_SOURCE: dict[str, Any] = {
    "acl": {"token_ttl": "30s", "policy_ttl": "30s", "default_policy": "allow", "down_policy": "extend-cache"},
    "bind_addr": "0.0.0.0", "bootstrap": False, "bootstrap_expect": 0, "check_output_max_size": 4096,
    "check_update_interval": "5m", "client_addr": "127.0.0.1", "datacenter": "dc1", "default_query_time": "300s",
    "disable_host_node_id": True, "disable_remote_exec": True, "domain": "consul.",
    "enable_central_service_config": True, "encrypt_verify_incoming": True, "encrypt_verify_outgoing": True,
    "log_level": "INFO", "max_query_time": "600s", "protocol": 2, "retry_interval": "30s",
    "retry_interval_wan": "30s", "server": False, "syslog_facility": "LOCAL0", "session_ttl_min": "10s",
    "dns_config": {"allow_stale": True, "a_record_limit": 0, "udp_answer_limit": 3, "max_stale": "87600h",
                   "recursor_timeout": "2s"},
    "limits": {"http_max_conns_per_client": 200, "https_handshake_timeout": "5s", "rpc_handshake_timeout": "5s",
               "rpc_client_timeout": "60s", "rpc_rate": -1.0, "rpc_max_burst": 1000, "rpc_max_conns_per_client": 100,
               "kv_max_value_size": 524288, "txn_max_req_len": 524288,
               "request_limits": {"mode": "disabled", "read_rate": -1.0, "write_rate": -1.0}},
    "performance": {"leave_drain_time": "5s", "raft_multiplier": 5, "rpc_hold_timeout": "7s"},
    "ports": {"dns": 8600, "http": 8500, "https": -1, "grpc": -1, "serf_lan": 8301, "serf_wan": 8302,
              "server": 8300},
    "raft_protocol": 3, "connect": {"enabled": True}, "peering": {"enabled": True},
}
_DEV_SOURCE: dict[str, Any] = {
    "bind_addr": "127.0.0.1", "disable_anonymous_signature": True, "disable_keyring_file": True,
    "enable_debug": True, "ui_config": {"enabled": True}, "log_level": "DEBUG", "server": True,
    "connect": {"enabled": True}, "performance": {"raft_multiplier": 1}, "ports": {"grpc": 8502},
}

_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERR", "ERROR")
_BASIC_NAME = re.compile(r"^[a-z0-9_-]+$")
_DNS_INVALID = re.compile(r"[^A-Za-z0-9\-]+")
_CONTENT_PATH = re.compile(r"^[A-Za-z0-9/_-]+$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_FORMATS = {".json": "json", ".hcl": "hcl", ".yaml": "yaml", ".yml": "yaml"}


# ---------------------------------------------------------------------------------------------------------------
# Runtime configuration


@dataclass
class Ports:
    """Listener ports; -1 disables a listener."""

    http: int = 8500
    https: int = -1
    dns: int = 8600
    server: int = 8300
    serf_lan: int = 8301
    serf_wan: int = 8302
    grpc: int = -1
    grpc_tls: int = -1


@dataclass
class Addresses:
    """Per-listener bind overrides (`addresses.*`); empty means use client_addr. May hold `unix://path`."""

    http: list[str] = field(default_factory=list)
    https: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    grpc: list[str] = field(default_factory=list)
    grpc_tls: list[str] = field(default_factory=list)


@dataclass
class SOAConfig:
    refresh: int = 3600
    retry: int = 600
    expire: int = 86400
    min_ttl: int = 0


@dataclass
class DNSConfig:
    """`dns_config`; durations in nanoseconds."""

    allow_stale: bool = True
    max_stale: int = 87600 * 3600 * 10**9
    node_ttl: int = 0
    service_ttl: dict[str, int] = field(default_factory=dict)
    udp_answer_limit: int = 3
    a_record_limit: int = 0
    enable_truncate: bool = False
    only_passing: bool = False
    disable_compression: bool = False
    enable_additional_node_meta_txt: bool = True
    recursor_timeout: int = 2 * 10**9
    recursor_strategy: str = "sequential"
    soa: SOAConfig = field(default_factory=SOAConfig)


@dataclass
class Limits:
    kv_max_value_size: int = 524288
    txn_max_req_len: int = 524288
    http_max_conns_per_client: int = 200
    rpc_max_conns_per_client: int = 100


@dataclass
class HTTPConfig:
    response_headers: dict[str, str] = field(default_factory=dict)
    allow_write_http_from: list[str] = field(default_factory=list)
    block_endpoints: list[str] = field(default_factory=list)
    use_cache: bool = True


@dataclass
class RuntimeConfig:
    """The merged, validated agent configuration. Field names are Consul's config keys; durations are int ns.

    domain/alt_domain carry no trailing dot. advertise_addr is "" unless configured (the agent derives it from
    bind_addr); advertise_addr_wan falls back to advertise_addr. services/checks are the definitions as parsed
    (keys in Consul's canonical snake_case, values untouched). `raw` is the whole merged config tree.
    """

    dev: bool = False
    server: bool = False
    bootstrap: bool = False
    bootstrap_expect: int = 0
    node_name: str = field(default_factory=lambda: socket.gethostname().strip())
    node_id: str = ""
    node_meta: dict[str, str] = field(default_factory=dict)
    datacenter: str = "dc1"
    primary_datacenter: str = "dc1"
    domain: str = "consul"
    alt_domain: str = ""
    bind_addr: str = "0.0.0.0"
    advertise_addr: str = ""
    advertise_addr_wan: str = ""
    client_addr: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    data_dir: str | None = None
    ports: Ports = field(default_factory=Ports)
    addresses: Addresses = field(default_factory=Addresses)
    ui: bool = False
    ui_dir: str = ""
    ui_content_path: str = "/ui/"
    log_level: str = "INFO"
    log_json: bool = False
    log_file: str = ""
    log_rotate_bytes: int = 0
    log_rotate_duration: int = 0
    log_rotate_max_files: int = 0
    enable_syslog: bool = False
    pid_file: str = ""
    enable_script_checks: bool = False
    enable_local_script_checks: bool = False
    enable_debug: bool = False
    retry_join: list[str] = field(default_factory=list)
    retry_interval: int = 30 * 10**9
    retry_max: int = 0
    retry_join_wan: list[str] = field(default_factory=list)
    retry_interval_wan: int = 30 * 10**9
    retry_max_wan: int = 0
    rejoin_after_leave: bool = False
    reconnect_timeout: int = 72 * 3600 * 10**9
    serf_lan_bind: str = ""
    serf_wan_bind: str = ""
    encrypt: str = ""
    encrypt_verify_incoming: bool = True
    encrypt_verify_outgoing: bool = True
    recursors: list[str] = field(default_factory=list)
    dns_config: DNSConfig = field(default_factory=DNSConfig)
    default_query_time: int = 300 * 10**9
    max_query_time: int = 600 * 10**9
    services: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    raft_multiplier: int = 5
    raft_protocol: int = 3
    raft_snapshot_threshold: int = 16384
    rpc_hold_timeout: int = 7 * 10**9
    protocol: int = 2
    leave_on_terminate: bool = True
    skip_leave_on_interrupt: bool = False
    session_ttl_min: int = 10 * 10**9
    acl: dict[str, Any] = field(default_factory=lambda: {"enabled": False, "default_policy": "allow", "tokens": {}})
    http_config: HTTPConfig = field(default_factory=HTTPConfig)
    check_output_max_size: int = 4096
    disable_update_check: bool = False
    disable_keyring_file: bool = False
    disable_host_node_id: bool = True
    disable_remote_exec: bool = True
    disable_anonymous_signature: bool = False
    translate_wan_addrs: bool = False
    tagged_addresses: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    config: RuntimeConfig
    warnings: list[str]


# ---------------------------------------------------------------------------------------------------------------
# Flags (agent/config/flags.go)

_ORDER = itertools.count()


def _atoi(text: str) -> int:
    """Go's strconv.Atoi."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _ordered(text: str) -> tuple[int, str]:
    """-config-file and -config-dir share one ordered list in Consul; tag each value with its position."""
    return next(_ORDER), text


# flag name -> (kind, dotted config key, help); kind "list" appends, "map" is `key:value` into a map.
_FLAG_KEYS: dict[str, tuple[str, str, str]] = {
    "advertise": ("string", "advertise_addr", "Sets the advertise address to use."),
    "advertise-wan": ("string", "advertise_addr_wan", "Sets the address to advertise on the WAN instead of "
                      "-advertise."),
    "allow-write-http-from": ("list", "http_config.allow_write_http_from", "Only allow write endpoint calls from "
                              "this network (CIDR). Can be specified multiple times."),
    "alt-domain": ("string", "alt_domain", "Alternate domain for the DNS interface."),
    "auto-reload-config": ("bool", "auto_reload_config", "Reloads the config files when they change."),
    "bind": ("string", "bind_addr", "Sets the bind address for cluster communication."),
    "bootstrap": ("bool", "bootstrap", "Sets server to bootstrap mode."),
    "bootstrap-expect": ("int", "bootstrap_expect", "Sets the number of servers to wait for before bootstrapping."),
    "check_output_max_size": ("int", "check_output_max_size", "Sets the maximum output size for checks."),
    "client": ("string", "client_addr", "Sets the address(es) to bind for client access (HTTP, HTTPS, DNS, gRPC)."),
    "data-dir": ("string", "data_dir", "Path to a data directory to store agent state."),
    "datacenter": ("string", "datacenter", "Datacenter of the agent (alias: -dc)."),
    "default-query-time": ("string", "default_query_time", "How long a blocking query waits when no 'wait' is "
                           "given."),
    "disable-host-node-id": ("bool", "disable_host_node_id", "Generate a random node ID instead of one derived "
                             "from the host."),
    "disable-keyring-file": ("bool", "disable_keyring_file", "Disables the backing up of the keyring to a file."),
    "dns-port": ("int", "ports.dns", "DNS port to use."),
    "domain": ("string", "domain", "Domain to use for the DNS interface."),
    "enable-local-script-checks": ("bool", "enable_local_script_checks", "Enables health check scripts from "
                                   "configuration files."),
    "enable-script-checks": ("bool", "enable_script_checks", "Enables health check scripts."),
    "encrypt": ("string", "encrypt", "Provides the gossip encryption key."),
    "grpc-port": ("int", "ports.grpc", "Sets the gRPC API port to listen on."),
    "grpc-tls-port": ("int", "ports.grpc_tls", "Sets the gRPC-TLS API port to listen on."),
    "http-port": ("int", "ports.http", "Sets the HTTP API port to listen on."),
    "https-port": ("int", "ports.https", "Sets the HTTPS API port to listen on."),
    "join": ("list", "start_join", "Address of an agent to join at start time (deprecated alias of -retry-join). "
             "Can be specified multiple times."),
    "join-wan": ("list", "start_join_wan", "Address of an agent to join -wan at start time (deprecated alias of "
                 "-retry-join-wan). Can be specified multiple times."),
    "log-file": ("string", "log_file", "Path to the file the logs get written to."),
    "log-json": ("bool", "log_json", "Output logs in JSON format."),
    "log-level": ("string", "log_level", "Log level of the agent."),
    "log-rotate-bytes": ("int", "log_rotate_bytes", "Maximum number of bytes that should be written to a log file."),
    "log-rotate-duration": ("string", "log_rotate_duration", "Time after which log rotation needs to be performed."),
    "log-rotate-max-files": ("int", "log_rotate_max_files", "Maximum number of log file archives to keep."),
    "max-query-time": ("string", "max_query_time", "The maximum time a blocking query can wait."),
    "node": ("string", "node_name", "Name of this node. Must be unique in the cluster."),
    "node-id": ("string", "node_id", "A unique ID (UUID) for this node across space and time."),
    "node-meta": ("map", "node_meta", "An arbitrary metadata key/value pair for this node, of the format "
                  "`key:value`. Can be specified multiple times."),
    "non-voting-server": ("bool", "read_replica", "(Enterprise-only) Deprecated: use -read-replica."),
    "pid-file": ("string", "pid_file", "Path to file to store agent PID."),
    "primary-gateway": ("list", "primary_gateways", "Address of a mesh gateway in the primary datacenter. Can be "
                        "specified multiple times."),
    "protocol": ("int", "protocol", "Sets the protocol version."),
    "raft-protocol": ("int", "raft_protocol", "Sets the Raft protocol version."),
    "read-replica": ("bool", "read_replica", "(Enterprise-only) Makes the server a non-voting read replica."),
    "recursor": ("list", "recursors", "Address of an upstream DNS server. Can be specified multiple times."),
    "rejoin": ("bool", "rejoin_after_leave", "Ignores a previous leave and attempts to rejoin the cluster."),
    "retry-interval": ("string", "retry_interval", "Time to wait between join attempts."),
    "retry-interval-wan": ("string", "retry_interval_wan", "Time to wait between join -wan attempts."),
    "retry-join": ("list", "retry_join", "Address of an agent to join at start time with retries enabled. Can be "
                   "specified multiple times."),
    "retry-join-wan": ("list", "retry_join_wan", "Address of an agent to join -wan at start time with retries "
                       "enabled. Can be specified multiple times."),
    "retry-max": ("int", "retry_max", "Maximum number of join attempts (0 retries forever)."),
    "retry-max-wan": ("int", "retry_max_wan", "Maximum number of join -wan attempts (0 retries forever)."),
    "segment": ("string", "segment", "(Enterprise-only) Sets the network segment to join."),
    "serf-lan-allowed-cidrs": ("list", "serf_lan_allowed_cidrs", "Network (CIDR) allowed for Serf LAN. Can be "
                               "specified multiple times."),
    "serf-lan-bind": ("string", "serf_lan", "Address to bind Serf LAN listeners to."),
    "serf-lan-port": ("int", "ports.serf_lan", "Sets the Serf LAN port to listen on."),
    "serf-wan-allowed-cidrs": ("list", "serf_wan_allowed_cidrs", "Network (CIDR) allowed for Serf WAN. Can be "
                               "specified multiple times."),
    "serf-wan-bind": ("string", "serf_wan", "Address to bind Serf WAN listeners to."),
    "serf-wan-port": ("int", "ports.serf_wan", "Sets the Serf WAN port to listen on."),
    "server": ("bool", "server", "Switches agent to server mode."),
    "server-port": ("int", "ports.server", "Sets the server port to listen on."),
    "syslog": ("bool", "enable_syslog", "Enables logging to syslog."),
    "ui": ("bool", "ui_config.enabled", "Enables the built-in static web UI server."),
    "ui-content-path": ("string", "ui_config.content_path", "Sets the external UI path (default /ui/)."),
    "ui-dir": ("string", "ui_config.dir", "Path to directory containing the web UI resources."),
}


def _build_flagset() -> FlagSet:
    fs = FlagSet("agent")
    for name, (kind, _, usage) in sorted(_FLAG_KEYS.items()):
        if kind == "int":
            fs.add(name, usage, "string", convert=_atoi)
        else:
            fs.add(name, usage, "list" if kind == "map" else kind, aliases=("dc",) if name == "datacenter" else ())
    fs.add("config-dir", "Path to a directory to read configuration files from (*.json, *.hcl; consulpy also "
           "reads *.yaml, *.yml) in lexical order. Can be specified multiple times.", "list", convert=_ordered)
    fs.add("config-file", "Path to a config file in JSON, HCL or YAML format with a matching file extension. "
           "Can be specified multiple times.", "list", convert=_ordered)
    fs.add("config-format", "Config files are in this format irrespective of their extension. Must be 'hcl' or "
           "'json' ('yaml' is a consulpy extension).")
    fs.add("dev", "Starts the agent in development mode.", "bool")
    fs.add("hcl", "hcl config fragment. Can be specified multiple times.", "list")
    return fs


AGENT_FLAGS: FlagSet = _build_flagset()


# ---------------------------------------------------------------------------------------------------------------
# Parsing and decoding one source


class _DecodeError(Exception):
    pass


def _go_type(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}",
             dict: "map[string]interface {}"}
    return names.get(type(value), type(value).__name__)


def _go_kind(value: Any) -> str:
    kinds = {bool: "bool", int: "int", float: "float64", str: "string", list: "slice", dict: "map"}
    return kinds.get(type(value), type(value).__name__)


def _mismatch(path: str, expected: str, value: Any) -> _DecodeError:
    return _DecodeError(f"'{path}' expected type '{expected}', got unconvertible type '{_go_type(value)}', "
                        f"value: '{value}'")


def _as_object(value: Any, path: str) -> dict[Any, Any]:
    """An object, or an HCL block list holding one object (Consul's HookWeakDecodeFromSlice)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]
    if not isinstance(value, dict):
        raise _DecodeError(f"'{path}' expected a map, got '{_go_kind(value)}'")
    return value


def _lookup_key(struct: Struct, key: str) -> str | None:
    if key in struct.fields:
        return key
    lower = key.lower()
    if lower in struct.aliases:
        return struct.aliases[lower]
    for name in struct.fields:
        if name.lower() == lower or (not struct.top and name.replace("_", "") == lower):
            return name
    return None


def _decode_struct(value: Any, struct: Struct, path: str, unused: list[str]) -> dict[str, Any]:
    obj = _as_object(value, path or "root")
    out: dict[str, Any] = {}
    for key, item in obj.items():
        sub = f"{path}.{key}" if path else str(key)
        canon = _lookup_key(struct, key) if isinstance(key, str) else None
        if canon is None:
            unused.append(sub)
            continue
        if canon in out:
            continue
        decoded = _decode(item, struct.fields[canon], f"{path}.{canon}" if path else canon, unused)
        if decoded is not None:
            out[canon] = decoded
    return out


def _decode_list(value: Any, elem: Struct, path: str, unused: list[str]) -> list[dict[str, Any]]:
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise _DecodeError(f"'{path}': source data must be an array or slice, got {_go_kind(value)}")
    return [_decode_struct(item, elem, f"{path}[{i}]", unused) for i, item in enumerate(items)]


def _decode(value: Any, spec: Any, path: str, unused: list[str]) -> Any:
    """Check `value` against `spec` the way mapstructure would; returns None for absent (null) values."""
    if value is None:
        return None
    if isinstance(spec, Struct | Ptr):
        return _decode_struct(value, spec if isinstance(spec, Struct) else spec.elem, path, unused)
    if isinstance(spec, ListOf | OneOrMany):
        return _decode_list(value, spec.elem, path, unused)
    if isinstance(spec, MapOf):
        return {str(k): _decode_struct(v, spec.elem, f"{path}[{k}]", unused)
                for k, v in _as_object(value, path).items()}
    return _decode_leaf(value, spec, path)


def _decode_leaf(value: Any, kind: str, path: str) -> Any:
    if kind in ("str", "dur"):
        if not isinstance(value, str):
            raise _mismatch(path, "string", value)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _mismatch(path, "bool", value)
        return value
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _mismatch(path, "int" if kind == "int" else "float64", value)
        return int(value) if kind == "int" else float(value)
    if kind == "strlist":
        if not isinstance(value, list):
            raise _DecodeError(f"'{path}': source data must be an array or slice, got {_go_kind(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _mismatch(f"{path}[{i}]", "string", item)
        return list(value)
    if kind == "maplist":
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _DecodeError(f"'{path}': source data must be an array of objects, got {_go_kind(value)}")
        return list(items)
    if kind in _MAP_KINDS:
        obj = _as_object(value, path)
        for key, item in obj.items():
            if kind == "strmap" and not isinstance(item, str):
                raise _mismatch(f"{path}[{key}]", "string", item)
            if kind == "strlistmap" and not (isinstance(item, list) and all(isinstance(x, str) for x in item)):
                raise _mismatch(f"{path}[{key}]", "[]string", item)
        return {str(k): v for k, v in obj.items()}
    return value


def _deep_get(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _deep_set(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _deprecation(old: str, new: str) -> str:
    return f"The '{old}' field is deprecated. Use the '{new}' field instead."


def _apply_deprecated(src: dict[str, Any]) -> list[str]:
    """Move deprecated keys to their new place within one source (Consul's applyDeprecatedConfig)."""
    warnings = []
    tokens = _deep_get(src, "acl.tokens") or {}
    for old, new in (("agent_master", "agent_recovery"), ("master", "initial_management")):
        if old in tokens:
            tokens.setdefault(new, tokens.pop(old))
            warnings.append(_deprecation(f"acl.tokens.{old}", f"acl.tokens.{new}"))
    for old, new in _DEPRECATED:
        if old not in src:
            continue
        value = src.pop(old)
        if old in ("start_join", "start_join_wan"):
            src[new] = src.get(new, []) + value
        elif old == "tls_min_version" and value in _OLD_TLS_VERSIONS:
            if _deep_get(src, new) is None:
                warnings.append(f"'tls_min_version' value '{value}' is deprecated, please specify "
                                f"'{_OLD_TLS_VERSIONS[value]}' instead")
                _deep_set(src, new, _OLD_TLS_VERSIONS[value])
        elif old == "raft_boltdb":
            if "no_freelist_sync" in value and _deep_get(src, f"{new}.no_freelist_sync") is None:
                _deep_set(src, f"{new}.no_freelist_sync", value["no_freelist_sync"])
        elif _deep_get(src, new) is None:
            _deep_set(src, new, value)
        if old == "acl_replication_token":
            _deep_set(src, "acl.enable_token_replication", True)
        elif old == "acl_datacenter":
            _deep_set(src, "acl.enabled", True)
        elif old == "verify_incoming" and _deep_get(src, "tls.grpc.verify_incoming") is None:
            _deep_set(src, "tls.grpc.verify_incoming", False)
        warnings.append(_deprecation(old, new))
    if src.pop("tls_prefer_server_cipher_suites", None) is not None:
        warnings.append("The 'tls_prefer_server_cipher_suites' field is deprecated and will be ignored.")
    return warnings


class _ConsulHclParser(HclParser):
    """pyhcl, except that repeated top-level blocks (`services { } services { }`) become a list of objects, as
    HCL1 decodes them for Consul; stock pyhcl merges them key by key and loses values."""

    start = "top"

    def p_top(self, p: Any) -> None:
        """
        top : empty
            | objectlist
        """
        out: dict[Any, Any] = {}
        repeated: set[Any] = set()
        for key, value in p[1]:
            if isinstance(value, dict) and key in repeated:
                out[key].append(value)
            elif isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = [out[key], value]
                repeated.add(key)
            else:
                out[key] = value
                repeated.discard(key)
        p[0] = out


_HCL_LOCK = threading.Lock()


@functools.cache
def _hcl_parser() -> _ConsulHclParser:
    return _ConsulHclParser()


def _parse_hcl(text: str) -> Any:
    if text.lstrip().startswith("{"):
        return json.loads(text)  # HCL1 reads JSON documents too
    with _HCL_LOCK:
        return _hcl_parser().parse(text)


def _parse_text(text: str, fmt: str) -> Any:
    if fmt == "json":
        def reject(constant: str) -> Any:
            raise ValueError(f"invalid character '{constant[0]}' looking for beginning of value")
        return json.loads(text, parse_constant=reject)
    if fmt == "hcl":
        return _parse_hcl(text)
    import yaml  # only YAML config files need it: the agent starts ~15 ms sooner and ~1 MiB smaller without

    return yaml.safe_load(text)


def _parse_source(name: str, text: str, fmt: str) -> tuple[dict[str, Any], list[str]]:
    """Parse and decode one config source; returns (canonical config tree, warnings)."""
    try:
        raw = _parse_text(text, fmt)
    except Exception as exc:  # the parsers raise assorted exception types on malformed input
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"failed to parse {name}: {reason}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(raw), "number")
        raise ConfigError(f"failed to parse {name}: json: cannot unmarshal {kind} into Go value of type "
                          "map[string]interface {}")
    unused: list[str] = []
    try:
        src = _decode_struct(raw, _SCHEMA, "", unused)
    except _DecodeError as exc:
        raise ConfigError(f"failed to parse {name}: {exc}") from None
    warnings = []
    errors = []
    for key in unused:
        if key == "acl_enforce_version_8":
            warnings.append(f'config key "{key}" is deprecated and should be removed')
        else:
            errors.append(f"invalid config key {key}")
    if errors:
        raise ConfigError(f"failed to parse {name}: {'; '.join(errors)}")
    warnings += _apply_deprecated(src)
    src["checks"] = src.get("checks", []) + src.pop("check", [])
    src["services"] = src.get("services", []) + src.pop("service", [])
    return src, warnings


# ---------------------------------------------------------------------------------------------------------------
# Reading files and directories


def _os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return reason[:1].lower() + reason[1:]


def _format_for(path: str, forced: str) -> str:
    return forced or _FORMATS.get(os.path.splitext(path)[1], "")


def _read_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"config: failed to read {path}: open {path}: {_os_reason(exc)}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"failed to parse {path}: file is not valid UTF-8") from None


def _files_from_path(path: str, forced: str, warnings: list[str]) -> list[tuple[str, str, str]]:
    """(name, format, text) for a file, or for each config file directly inside a directory, in lexical order."""
    try:
        os.stat(path)
    except OSError as exc:
        raise ConfigError(f"config: Open failed on {path}. open {path}: {_os_reason(exc)}") from None
    if not os.path.isdir(path):
        fmt = _format_for(path, forced)
        if not fmt:
            raise ConfigError(f"file {path} has unknown extension; must be .hcl or .json, or config format "
                              "must be set")
        return [(path, fmt, _read_file(path))]
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise ConfigError(f"config: Readdir failed on {path}. {_os_reason(exc)}") from None
    out = []
    for entry in names:
        full = os.path.join(path, entry)
        if os.path.islink(full):
            full = os.path.realpath(full)
        if os.path.isdir(full):
            continue
        fmt = _format_for(full, forced)
        if not fmt:
            warnings.append(f"skipping file {full}, extension must be .hcl or .json, or config format must be set")
            continue
        out.append((full, fmt, _read_file(full)))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Merging (agent/config/merge.go): objects merge key by key, lists append, maps overlay, the rest later-wins.


def _merge(a: Any, b: Any, spec: Any) -> Any:
    if isinstance(spec, Struct):
        out = dict(a)
        for key, value in b.items():
            out[key] = _merge(out[key], value, spec.fields[key]) if key in out else value
        return out
    if isinstance(spec, ListOf | OneOrMany) or spec in ("strlist", "maplist"):
        return a + b
    if isinstance(spec, MapOf) or spec in _MAP_KINDS:
        return {**a, **b}
    return b


def _is_list_key(key: str) -> bool:
    spec = _SCHEMA.fields[key]
    return isinstance(spec, ListOf | OneOrMany) or spec in ("strlist", "maplist")


def _flag_sources(values: dict[str, Any], explicit: set[str]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The flags as two config trees: list-valued top-level keys (merged before the config files, as Consul
    does, so file values append after them) and everything else (merged after the files)."""
    tree: dict[str, Any] = {}
    for name in sorted(explicit & _FLAG_KEYS.keys()):
        kind, key, _ = _FLAG_KEYS[name]
        value = values[name]
        if kind == "map":
            value = {k: v for k, _, v in (item.partition(":") for item in value)}
        _deep_set(tree, key, value)
    warnings = _apply_deprecated(tree)
    slices = {k: v for k, v in tree.items() if _is_list_key(k)}
    rest = {k: v for k, v in tree.items() if not _is_list_key(k)}
    return slices, rest, warnings


# ---------------------------------------------------------------------------------------------------------------
# Building the RuntimeConfig (agent/config/builder.go build + validate)


def _goquote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _duration(name: str, value: str) -> int:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ConfigError(f"{name}: invalid duration: {_goquote(value)}: {exc}") from None


def _check_durations(tree: Any, spec: Any, path: str) -> None:
    """Every duration anywhere in the merged tree must parse, as Consul's durationVal requires."""
    if spec == "dur" and isinstance(tree, str):
        _duration(path, tree)
    elif isinstance(spec, Struct | Ptr) and isinstance(tree, dict):
        fields = spec.fields if isinstance(spec, Struct) else spec.elem.fields
        for key, value in tree.items():
            _check_durations(value, fields[key], f"{path}.{key}" if path else key)
    elif isinstance(spec, ListOf | OneOrMany) and isinstance(tree, list):
        for i, item in enumerate(tree):
            _check_durations(item, spec.elem, f"{path}[{i}]")
    elif isinstance(spec, MapOf) and isinstance(tree, dict):
        for key, value in tree.items():
            _check_durations(value, spec.elem, f"{path}[{key}]")


def _port(name: str, value: int | None) -> int:
    if value is None or value <= 0:
        return -1
    if value > 65535:
        raise ConfigError(f"{name}: invalid port: {value}")
    return value


def _is_any(addr: str) -> bool:
    return addr in ("0.0.0.0", "::", "[::]")


def _expand_addrs(name: str, value: str | None) -> list[str]:
    """A space-separated address list: IPs and `unix://` paths (go-sockaddr templates are not supported)."""
    if not value:
        return []
    if "{{" in value:
        raise ConfigError(f"{name}: error parsing {_goquote(value)}: go-sockaddr templates are not supported "
                          "by consulpy; give IP addresses")
    out = []
    for addr in value.split():
        if addr.startswith("unix://"):
            out.append(addr)
            continue
        text = "::" if addr == "[::]" else addr
        try:
            if "%" in text:
                raise ValueError(text)
            out.append(str(ipaddress.ip_address(text)))
        except ValueError:
            raise ConfigError(f"{name}: invalid ip address: {addr}") from None
    return out


def _expand_ips(name: str, value: str | None) -> list[str]:
    addrs = _expand_addrs(name, value)
    if any(addr.startswith("unix://") for addr in addrs):
        raise ConfigError(f"{name} cannot be a unix socket")
    return addrs


def _first_ip(name: str, value: str | None) -> str:
    addrs = _expand_ips(name, value)
    if len(addrs) > 1:
        raise ConfigError(f"{name}: multiple addresses found: {' '.join(addrs)}")
    return addrs[0] if addrs else ""


def _check_cidrs(name: str, cidrs: list[str]) -> None:
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
            if "/" not in cidr:
                raise ValueError(cidr)
        except ValueError:
            raise ConfigError(f"{name}: invalid cidr: {cidr}") from None


def _check_basic_name(name: str, value: str, allow_empty: bool) -> None:
    if not value:
        if not allow_empty:
            raise ConfigError(f"{name} cannot be empty")
        return
    if not _BASIC_NAME.match(value):
        raise ConfigError(f"{name} can only contain lowercase alphanumeric, - or _ characters. "
                          f"received: {_goquote(value)}")


def _check_node_meta(meta: dict[str, str]) -> None:
    reason = validate_meta(meta)
    if reason is not None:
        raise ConfigError(f"node_meta invalid: {reason}")


def _check_encrypt(key: str) -> None:
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:
        bad = re.search(r"[^A-Za-z0-9+/=]", key)
        pos = bad.start() if bad else len(key) - len(key) % 4
        raise ConfigError(f"encrypt has invalid key: illegal base64 data at input byte {pos}") from None
    if len(raw) not in (16, 24, 32):
        raise ConfigError("encrypt has invalid key: key size must be 16, 24 or 32 bytes")


def _check_unique_listeners(cfg: RuntimeConfig) -> None:
    """No two listeners may share an address (Consul's addrUnique)."""
    def tcp(host: str, port: int) -> str:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def listeners(overrides: list[str], port: int) -> list[tuple[str, str]]:
        if port <= 0:
            return []
        return [("unix", a[len("unix://"):]) if a.startswith("unix://") else ("tcp", tcp(a, port))
                for a in overrides or cfg.client_addr]

    dns = listeners(cfg.addresses.dns, cfg.ports.dns)
    if any(net == "unix" for net, _ in dns):
        raise ConfigError("DNS address cannot be a unix socket")
    advertise = cfg.advertise_addr or cfg.bind_addr
    groups = [
        ("DNS", dns + [("udp", addr) for _, addr in dns]),
        ("HTTP", listeners(cfg.addresses.http, cfg.ports.http)),
        ("HTTPS", listeners(cfg.addresses.https, cfg.ports.https)),
        ("RPC Advertise", [("tcp", tcp(advertise, cfg.ports.server))]),
        ("Serf Advertise LAN", [("tcp", tcp(advertise, cfg.ports.serf_lan))]),
    ]
    if cfg.ports.serf_wan > 0:
        groups.append(("Serf Advertise WAN", [("tcp", tcp(cfg.advertise_addr_wan or advertise, cfg.ports.serf_wan))]))
    in_use: dict[str, str] = {}
    for name, addrs in groups:
        for net, addr in addrs:
            other = in_use.setdefault(f"{net}:{addr}", name)
            if other != name:
                raise ConfigError(f"{name} address {addr} already configured for {other}")


class _Tree:
    """Typed reads from the merged config tree."""

    def __init__(self, tree: dict[str, Any]) -> None:
        self.tree = tree

    def get(self, path: str, default: Any = None) -> Any:
        value = _deep_get(self.tree, path)
        return default if value is None else value

    def dur(self, path: str) -> int:
        value = _deep_get(self.tree, path)
        return 0 if value is None else _duration(path, value)


def _build(tree: dict[str, Any], dev: bool, warnings: list[str], require_data_dir: bool) -> RuntimeConfig:
    _check_durations(tree, _SCHEMA, "")
    t = _Tree(tree)
    warn = warnings.append
    server = bool(t.get("server", False))

    ports = Ports(**{name: _port(f"ports.{name}", t.get(f"ports.{name}")) for name in (
        "http", "https", "dns", "server", "serf_lan", "serf_wan", "grpc", "grpc_tls")})
    if t.get("ports.grpc_tls") is None and server:
        ports.grpc_tls = 8503
    if ports.server <= 0:
        raise ConfigError("server-port must be greater than zero")
    if ports.serf_lan <= 0:
        raise ConfigError("serf-lan-port must be greater than zero")

    bind = _expand_addrs("bind_addr", t.get("bind_addr"))
    if not bind:
        raise ConfigError("bind_addr cannot be empty")
    if len(bind) > 1:
        raise ConfigError("bind_addr cannot contain multiple addresses. Use 'addresses.{dns,http,https}' instead.")
    if bind[0].startswith("unix://"):
        raise ConfigError("bind_addr cannot be a unix socket")
    if _is_any(t.get("advertise_addr", "")):
        raise ConfigError("Advertise address cannot be 0.0.0.0, :: or [::]")
    if _is_any(t.get("advertise_addr_wan", "")):
        raise ConfigError("Advertise WAN address cannot be 0.0.0.0, :: or [::]")
    advertise = _first_ip("advertise_addr", t.get("advertise_addr"))
    advertise_wan = _first_ip("advertise_addr_wan", t.get("advertise_addr_wan")) or advertise
    for key in ("serf_lan", "serf_wan", "advertise_addr_ipv4", "advertise_addr_ipv6", "advertise_addr_wan_ipv4",
                "advertise_addr_wan_ipv6"):
        _first_ip(key, t.get(key))

    client_addr = _expand_ips("client_addr", t.get("client_addr"))
    if not client_addr:
        warn("client_addr is empty, client services (DNS, HTTP, HTTPS, GRPC) will not be listening for connections")
    addresses = Addresses(**{name: _expand_addrs(f"addresses.{name}", t.get(f"addresses.{name}"))
                             for name in ("http", "https", "dns", "grpc", "grpc_tls")})

    recursors: list[str] = []
    for entry in t.get("recursors", []):
        if "{{" in entry:
            raise ConfigError(f"Invalid DNS recursor template {_goquote(entry)}: go-sockaddr templates are not "
                              "supported by consulpy")
        for addr in entry.split():
            if addr.startswith("unix://"):
                raise ConfigError(f"DNS Recursors cannot be unix sockets: {addr}")
            if _is_any(addr):
                raise ConfigError("DNS recursor address cannot be 0.0.0.0, :: or [::]")
            if addr not in recursors:
                recursors.append(addr)

    for key in ("retry_join", "retry_join_wan"):
        for entry in t.get(key, []):
            if "{{" in entry:
                raise ConfigError(f"{key}: error parsing {_goquote(entry)}: go-sockaddr templates are not "
                                  "supported by consulpy")

    datacenter = t.get("datacenter", "").lower()
    raft_multiplier = t.get("performance.raft_multiplier", 0)
    if not 1 <= raft_multiplier <= 10:
        raise ConfigError(f"performance.raft_multiplier cannot be {raft_multiplier}. Must be between 1 and 10")
    primary_dc = t.get("primary_datacenter", "").lower() or datacenter
    enable_script_checks = bool(t.get("enable_script_checks", False))
    _check_cidrs("serf_lan_allowed_cidrs", t.get("serf_lan_allowed_cidrs", []))
    _check_cidrs("serf_wan_allowed_cidrs", t.get("serf_wan_allowed_cidrs", []))
    allow_write = t.get("http_config.allow_write_http_from", [])
    _check_cidrs("allow_write_http_from", allow_write)

    ui_enabled = t.get("ui_config.enabled")
    ui_dir = t.get("ui_config.dir")
    content_path = t.get("ui_config.content_path")
    for legacy, new in (("ui", "enabled"), ("ui_dir", "dir"), ("ui_content_path", "content_path")):
        if t.get(legacy) is not None:
            warn(f"The '{legacy}' field is deprecated. Use the 'ui_config.{new}' field instead.")
    ui_enabled = t.get("ui", False) if ui_enabled is None else ui_enabled
    ui_dir = t.get("ui_dir", "") if ui_dir is None else ui_dir
    content_path = t.get("ui_content_path", "") if content_path is None else content_path
    content_path = "/" + content_path.strip("/") + "/" if content_path else "/ui/"

    strategy = t.get("dns_config.recursor_strategy", "") or "sequential"
    if strategy not in ("sequential", "random"):
        raise ConfigError(f"dns_config.recursor_strategy: invalid strategy: {_goquote(strategy)}")
    mode = t.get("limits.request_limits.mode", "")
    if mode not in ("disabled", "permissive", "enforcing"):
        raise ConfigError(f"limits.request_limits.mode: invalid mode: {_goquote(mode)}")

    soa = SOAConfig(**t.get("dns_config.soa", {}))
    dns_config = DNSConfig(
        allow_stale=t.get("dns_config.allow_stale", False), max_stale=t.dur("dns_config.max_stale"),
        node_ttl=t.dur("dns_config.node_ttl"),
        service_ttl={k: _duration(f"dns_config.service_ttl[{_goquote(k)}]", v)
                     for k, v in t.get("dns_config.service_ttl", {}).items()},
        udp_answer_limit=t.get("dns_config.udp_answer_limit", 0), a_record_limit=t.get("dns_config.a_record_limit", 0),
        enable_truncate=t.get("dns_config.enable_truncate", False),
        only_passing=t.get("dns_config.only_passing", False),
        disable_compression=t.get("dns_config.disable_compression", False),
        enable_additional_node_meta_txt=t.get("dns_config.enable_additional_node_meta_txt", True),
        recursor_timeout=t.dur("dns_config.recursor_timeout"), recursor_strategy=strategy, soa=soa)

    data_dir = t.get("data_dir", "") or None
    node_name = (t.get("node_name", "") or socket.gethostname()).strip()
    cfg = RuntimeConfig(
        dev=dev, server=server, bootstrap=t.get("bootstrap", False), bootstrap_expect=t.get("bootstrap_expect", 0),
        node_name=node_name, node_id=t.get("node_id", "").lower(), node_meta=dict(t.get("node_meta", {})),
        datacenter=datacenter, primary_datacenter=primary_dc, domain=t.get("domain", "").rstrip("."),
        alt_domain=t.get("alt_domain", "").rstrip("."), bind_addr=bind[0], advertise_addr=advertise,
        advertise_addr_wan=advertise_wan, client_addr=client_addr, data_dir=data_dir, ports=ports,
        addresses=addresses, ui=ui_enabled, ui_dir=ui_dir, ui_content_path=content_path,
        log_level=t.get("log_level", ""), log_json=t.get("log_json", False), log_file=t.get("log_file", ""),
        log_rotate_bytes=t.get("log_rotate_bytes", 0), log_rotate_duration=t.dur("log_rotate_duration"),
        log_rotate_max_files=t.get("log_rotate_max_files", 0), enable_syslog=t.get("enable_syslog", False),
        pid_file=t.get("pid_file", ""), enable_script_checks=enable_script_checks,
        enable_local_script_checks=t.get("enable_local_script_checks", enable_script_checks),
        enable_debug=t.get("enable_debug", False),
        retry_join=list(t.get("retry_join", [])), retry_interval=t.dur("retry_interval"),
        retry_max=t.get("retry_max", 0), retry_join_wan=list(t.get("retry_join_wan", [])),
        retry_interval_wan=t.dur("retry_interval_wan"), retry_max_wan=t.get("retry_max_wan", 0),
        reconnect_timeout=t.dur("reconnect_timeout") or 72 * 3600 * 10**9,
        serf_lan_bind=_first_ip("serf_lan", t.get("serf_lan")) or "",
        serf_wan_bind=_first_ip("serf_wan", t.get("serf_wan")) or "",
        rejoin_after_leave=t.get("rejoin_after_leave", False), encrypt=t.get("encrypt", ""),
        encrypt_verify_incoming=t.get("encrypt_verify_incoming", False),
        encrypt_verify_outgoing=t.get("encrypt_verify_outgoing", False), recursors=recursors,
        dns_config=dns_config, default_query_time=t.dur("default_query_time"),
        max_query_time=t.dur("max_query_time"), services=list(t.get("services", [])),
        checks=list(t.get("checks", [])),
        limits=Limits(kv_max_value_size=t.get("limits.kv_max_value_size", 0),
                      txn_max_req_len=t.get("limits.txn_max_req_len", 0),
                      http_max_conns_per_client=t.get("limits.http_max_conns_per_client", 0),
                      rpc_max_conns_per_client=t.get("limits.rpc_max_conns_per_client", 0)),
        raft_multiplier=raft_multiplier, raft_protocol=t.get("raft_protocol", 0), protocol=t.get("protocol", 0),
        raft_snapshot_threshold=t.get("raft_snapshot_threshold", 0) or 16384,
        rpc_hold_timeout=t.dur("performance.rpc_hold_timeout"),
        leave_on_terminate=t.get("leave_on_terminate", not server),
        skip_leave_on_interrupt=t.get("skip_leave_on_interrupt", server),
        session_ttl_min=t.dur("session_ttl_min"),
        acl={"enabled": False, "tokens": {}, **t.get("acl", {})},
        http_config=HTTPConfig(response_headers=dict(t.get("http_config.response_headers", {})),
                               allow_write_http_from=list(allow_write),
                               block_endpoints=list(t.get("http_config.block_endpoints", [])),
                               use_cache=t.get("http_config.use_cache", True)),
        check_output_max_size=t.get("check_output_max_size", 4096),
        disable_update_check=t.get("disable_update_check", False),
        disable_keyring_file=t.get("disable_keyring_file", False),
        disable_host_node_id=t.get("disable_host_node_id", False),
        disable_remote_exec=t.get("disable_remote_exec", False),
        disable_anonymous_signature=t.get("disable_anonymous_signature", False),
        translate_wan_addrs=t.get("translate_wan_addrs", False),
        tagged_addresses=dict(t.get("tagged_addresses", {})), raw=tree)
    if cfg.bootstrap_expect == 1:
        cfg.bootstrap, cfg.bootstrap_expect = True, 0
        warn("BootstrapExpect is set to 1; this is the same as Bootstrap mode.")
    _validate(cfg, warnings, require_data_dir)
    return cfg


def _validate(cfg: RuntimeConfig, warnings: list[str], require_data_dir: bool) -> None:
    warn = warnings.append
    if cfg.raft_protocol != 3:
        raise ConfigError(f"raft_protocol version {cfg.raft_protocol} is not supported by this version of Consul")
    _check_basic_name("datacenter", cfg.datacenter, False)
    if cfg.data_dir is None and not cfg.dev and require_data_dir:
        raise ConfigError("data_dir cannot be empty")
    if not _CONTENT_PATH.match(cfg.ui_content_path):
        raise ConfigError(f"ui-content-path can only contain alphanumeric, -, _, or /. received: "
                          f"{_goquote(cfg.ui_content_path)}")
    if re.match(r"^/v\d+/$", cfg.ui_content_path):
        raise ConfigError(f"ui-content-path cannot have 'v[0-9]'. received: {_goquote(cfg.ui_content_path)}")
    if cfg.data_dir and not cfg.dev and os.path.exists(cfg.data_dir) and not os.path.isdir(cfg.data_dir):
        raise ConfigError(f"data_dir {_goquote(cfg.data_dir)} is not a directory")
    if not cfg.node_name:
        raise ConfigError("node_name cannot be empty")
    if _DNS_INVALID.search(cfg.node_name):
        warn(f"Node name {_goquote(cfg.node_name)} will not be discoverable via DNS due to invalid characters. "
             "Valid characters include all alpha-numerics and dashes.")
    elif len(cfg.node_name) > 63:
        warn(f"Node name {_goquote(cfg.node_name)} will not be discoverable via DNS due to it being too long. "
             "Valid lengths are between 1 and 63 bytes.")
    if cfg.node_id and not _UUID.match(cfg.node_id):
        reason = "uuid string is wrong length" if len(cfg.node_id) != 36 else "uuid is improperly formatted"
        raise ConfigError(f"node_id {_goquote(cfg.node_id)} is invalid: {reason}")
    dc = re.escape(cfg.datacenter)
    if re.match(rf"^(service|connect|node|query|addr|{dc})\.({dc}\.)?", cfg.alt_domain):
        raise ConfigError(f"alt_domain cannot start with {{service,connect,node,query,addr,{cfg.datacenter}}}")
    if cfg.bootstrap and not cfg.server:
        raise ConfigError("'bootstrap = true' requires 'server = true'")
    if cfg.bootstrap_expect < 0:
        raise ConfigError(f"bootstrap_expect cannot be {cfg.bootstrap_expect}. Must be greater than or equal to zero")
    if cfg.bootstrap_expect > 0 and not cfg.server:
        raise ConfigError("'bootstrap_expect > 0' requires 'server = true'")
    if cfg.bootstrap_expect > 0 and cfg.dev:
        raise ConfigError("'bootstrap_expect > 0' not allowed in dev mode")
    if cfg.bootstrap_expect > 0 and cfg.bootstrap:
        raise ConfigError("'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive")
    if cfg.check_output_max_size < 1:
        raise ConfigError("check_output_max_size must be positive, to discard check output use the "
                          "discard_check_output flag")
    _check_basic_name("primary_datacenter", cfg.primary_datacenter, True)
    if not cfg.dev and cfg.ui and cfg.ui_dir:
        raise ConfigError("Both the ui_config.enabled and ui_config.dir (or -ui and -ui-dir) were specified, "
                          "please provide only one.")
    if cfg.dns_config.udp_answer_limit < 0:
        raise ConfigError(f"dns_config.udp_answer_limit cannot be {cfg.dns_config.udp_answer_limit}. "
                          "Must be greater than or equal to zero")
    if cfg.dns_config.a_record_limit < 0:
        raise ConfigError(f"dns_config.a_record_limit cannot be {cfg.dns_config.a_record_limit}. "
                          "Must be greater than or equal to zero")
    _check_node_meta(cfg.node_meta)
    if cfg.encrypt:
        _check_encrypt(cfg.encrypt)
    _check_unique_listeners(cfg)
    if cfg.log_level.upper() not in _LOG_LEVELS:
        raise ConfigError(f"Invalid log level: {cfg.log_level}. Valid log levels are: [{' '.join(_LOG_LEVELS)}]")
    cfg.log_level = cfg.log_level.upper()

    if cfg.server and not cfg.dev and not cfg.bootstrap and cfg.bootstrap_expect == 2:
        warn("bootstrap_expect = 2: A cluster with 2 servers will provide no failure tolerance. See "
             "https://www.consul.io/docs/internals/consensus.html#deployment-table")
    if cfg.server and not cfg.bootstrap and cfg.bootstrap_expect > 2 and cfg.bootstrap_expect % 2 == 0:
        warn("bootstrap_expect is even number: A cluster with an even number of servers does not achieve optimum "
             "fault tolerance. See https://www.consul.io/docs/internals/consensus.html#deployment-table")
    if cfg.server and cfg.bootstrap and cfg.bootstrap_expect == 0:
        warn("bootstrap = true: do not enable unless necessary")
    if cfg.server and not cfg.dev and not cfg.bootstrap and cfg.bootstrap_expect > 1:
        warn(f"bootstrap_expect > 0: expecting {cfg.bootstrap_expect} servers")
    if cfg.enable_script_checks and not cfg.acl.get("enabled") and not cfg.http_config.allow_write_http_from:
        warn("using enable-script-checks without ACLs and without allow_write_http_from is DANGEROUS, use "
             "enable-local-script-checks instead, see "
             "https://www.hashicorp.com/blog/protecting-consul-from-rce-risk-in-specific-configurations/")


# ---------------------------------------------------------------------------------------------------------------
# Entry points


def _load(paths: list[str], fmt: str, dev: bool, flags: tuple[dict[str, Any], dict[str, Any]] | None,
          fragments: list[str], warnings: list[str], require_data_dir: bool) -> RuntimeConfig:
    if fmt not in ("", "json", "hcl", "yaml"):
        raise ConfigError("config: -config-format must be either 'hcl' or 'json'")
    head: list[dict[str, Any]] = [copy.deepcopy(_DEFAULT_SOURCE)]
    if dev:
        head.append(copy.deepcopy(_DEV_SOURCE))
    tail: list[dict[str, Any]] = []
    if flags is not None:
        head.append(flags[0])
        tail.append(flags[1])
    sources: list[str] = []
    files: list[dict[str, Any]] = []
    for path in paths:
        for name, file_fmt, text in _files_from_path(path, fmt, warnings):
            sources.append(name)
            if text:
                tree, notes = _parse_source(name, text, file_fmt)
                files.append(tree)
                warnings += notes
    for i, fragment in enumerate(fragments):
        if fragment:
            tree, notes = _parse_source(f"flags-{i}.hcl", fragment, "hcl")
            tail.append(tree)
            warnings += notes
    merged: dict[str, Any] = {}
    for tree in head + files + tail:
        merged = _merge(merged, tree, _SCHEMA)
    cfg = _build(merged, dev, warnings, require_data_dir)
    cfg.sources = sources
    return cfg


def load_config(argv: list[str]) -> LoadResult:
    """Build the agent's configuration from the arguments after `consulpy agent`. Reads files only."""
    try:
        values, rest, explicit = AGENT_FLAGS.parse(argv)
    except FlagError as exc:
        raise ConfigError(str(exc)) from None
    if rest:
        raise ConfigError(f"Unexpected extra arguments: [{' '.join(rest)}]")
    slices, scalars, warnings = _flag_sources(values, explicit)
    paths = [path for _, path in sorted(values["config-file"] + values["config-dir"])]
    config = _load(paths, values["config-format"] or "", bool(values["dev"]), (slices, scalars), values["hcl"],
                   warnings, True)
    return LoadResult(config, warnings)


def validate_paths(paths: list[str]) -> RuntimeConfig:
    """Load and check config files/directories as a non-dev agent would, without requiring data_dir."""
    if not paths:
        raise ConfigError("Must specify at least one config file or directory")
    return _load(paths, "", False, None, [], [], False)
