"""Agent configuration: flags, JSON/HCL/YAML files, Consul's merge order, dev defaults and validation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from consulpy.agent.config import AGENT_FLAGS, ConfigError, load_config, validate_paths
from consulpy.duration import HOUR, SECOND

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
KEY = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM="


def write(directory: Path, name: str, content: str | dict) -> str:
    path = directory / name
    path.write_text(json.dumps(content) if isinstance(content, dict) else content)
    return str(path)


def dev(*argv: str):
    return load_config(["-dev", *argv])


def error_of(argv: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(argv)
    return str(info.value)


# --- defaults ---------------------------------------------------------------------------------------------------


def test_dev_defaults() -> None:
    result = dev()
    c = result.config
    assert result.warnings == []
    assert (c.dev, c.server, c.bootstrap, c.ui) == (True, True, False, True)
    assert (c.log_level, c.raft_multiplier, c.bind_addr, c.client_addr) == ("DEBUG", 1, "127.0.0.1", ["127.0.0.1"])
    assert (c.ports.http, c.ports.dns, c.ports.grpc, c.ports.grpc_tls, c.ports.https) == (8500, 8600, 8502, 8503, -1)
    assert (c.ports.server, c.ports.serf_lan, c.ports.serf_wan) == (8300, 8301, 8302)
    assert c.data_dir is None and c.datacenter == "dc1" and c.primary_datacenter == "dc1" and c.domain == "consul"
    assert (c.default_query_time, c.max_query_time) == (300 * SECOND, 600 * SECOND)
    assert (c.leave_on_terminate, c.skip_leave_on_interrupt) == (False, True)
    assert (c.retry_interval, c.retry_max, c.session_ttl_min) == (30 * SECOND, 0, 10 * SECOND)
    assert c.dns_config.allow_stale and c.dns_config.max_stale == 87600 * HOUR
    assert (c.dns_config.udp_answer_limit, c.dns_config.soa.refresh, c.dns_config.soa.expire) == (3, 3600, 86400)
    assert (c.limits.kv_max_value_size, c.limits.txn_max_req_len, c.limits.http_max_conns_per_client) == (
        524288, 524288, 200)
    assert c.acl["enabled"] is False and c.acl["default_policy"] == "allow"
    assert c.check_output_max_size == 4096 and c.node_name


def test_non_dev_defaults(tmp_path: Path) -> None:
    c = load_config(["-data-dir", str(tmp_path / "data")]).config
    assert (c.dev, c.server, c.ui, c.log_level, c.raft_multiplier) == (False, False, False, "INFO", 5)
    assert (c.bind_addr, c.advertise_addr, c.ports.grpc, c.ports.grpc_tls) == ("0.0.0.0", "", -1, -1)
    assert (c.leave_on_terminate, c.skip_leave_on_interrupt) == (True, False)
    assert not (tmp_path / "data").exists()  # loading never creates the data dir


def test_server_defaults(tmp_path: Path) -> None:
    c = load_config(["-server", "-bootstrap", "-data-dir", str(tmp_path)]).config
    assert (c.leave_on_terminate, c.skip_leave_on_interrupt, c.ports.grpc_tls) == (False, True, 8503)


# --- precedence -------------------------------------------------------------------------------------------------


def test_flag_beats_file_beats_dev_default(tmp_path: Path) -> None:
    f = write(tmp_path, "a.json", {"log_level": "warn", "ports": {"grpc": 9502}, "node_name": "from-file"})
    c = dev("-config-file", f).config
    assert (c.log_level, c.ports.grpc, c.node_name, c.ports.http) == ("WARN", 9502, "from-file", 8500)
    c = dev("-config-file", f, "-log-level", "error", "-grpc-port", "7502", "-node", "from-flag").config
    assert (c.log_level, c.ports.grpc, c.node_name) == ("ERROR", 7502, "from-flag")
    c = dev("-config-file", f, "-ui=false", "-server=false").config
    assert (c.ui, c.server) == (False, False)


def test_hcl_fragment_comes_after_flags_and_files(tmp_path: Path) -> None:
    f = write(tmp_path, "a.hcl", 'node_name = "file"\n')
    c = dev("-config-file", f, "-node", "flag", "-hcl", 'node_name = "hcl-0"', "-hcl", 'node_name = "hcl-1"').config
    assert c.node_name == "hcl-1"
    assert dev("-hcl", "").config.node_name  # an empty fragment is no source


def test_later_file_wins_and_maps_merge_key_by_key(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", {"node_name": "a", "ports": {"http": 1111}, "node_meta": {"x": "1", "y": "1"}})
    b = write(tmp_path, "b.hcl", 'node_name = "b"\nports { dns = 2222 }\nnode_meta { y = "2" }\n')
    c = dev("-config-file", a, "-config-file", b, "-node-meta", "z:3", "-node-meta", "flag").config
    assert c.node_name == "b"
    assert (c.ports.http, c.ports.dns) == (1111, 2222)
    assert c.node_meta == {"x": "1", "y": "2", "z": "3", "flag": ""}
    assert c.sources == [a, b]


def test_config_dir_lexical_order(tmp_path: Path) -> None:
    d = tmp_path / "conf.d"
    d.mkdir()
    (d / "sub").mkdir()
    write(d / "sub", "z.json", {"node_name": "subdir-is-ignored"})
    write(d, "b.json", {"node_name": "b", "retry_join": ["b"]})
    write(d, "a.hcl", 'node_name = "a"\nretry_join = ["a"]\n')
    write(d, "c.yaml", "node_name: c\nretry_join: [c]\n")
    write(d, "README.txt", "not config")
    result = dev("-config-dir", str(d))
    c = result.config
    assert c.node_name == "c" and c.retry_join == ["a", "b", "c"]
    assert c.sources == [str(d / "a.hcl"), str(d / "b.json"), str(d / "c.yaml")]
    assert any("skipping file" in w and "README.txt" in w for w in result.warnings)


def test_config_file_and_dir_keep_command_line_order(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    write(d, "x.json", {"node_name": "dir"})
    f = write(tmp_path, "f.json", {"node_name": "file"})
    assert dev("-config-dir", str(d), "-config-file", f).config.node_name == "file"
    assert dev("-config-file", f, "-config-dir", str(d)).config.node_name == "dir"


def test_lists_append(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", {
        "retry_join": ["10.0.0.1"], "recursors": ["8.8.8.8"],
        "services": [{"name": "s1"}], "service": {"name": "s2"}, "check": {"id": "c1", "ttl": "10s"},
    })
    b = write(tmp_path, "b.hcl", 'retry_join = ["10.0.0.2"]\nrecursors = ["8.8.8.8", "1.1.1.1"]\n'
                                 'service { name = "s3" }\nchecks = [{ id = "c2", ttl = "5s" }]\n')
    result = dev("-config-file", a, "-config-file", b, "-retry-join", "10.0.0.9", "-join", "10.0.0.8",
                 "-recursor", "9.9.9.9")
    c = result.config
    # Slice-valued flags are merged before the config files (Consul's splitSlicesAndValues).
    assert c.retry_join == ["10.0.0.9", "10.0.0.8", "10.0.0.1", "10.0.0.2"]
    assert c.recursors == ["9.9.9.9", "8.8.8.8", "1.1.1.1"]
    assert [s["name"] for s in c.services] == ["s1", "s2", "s3"]
    assert [k["id"] for k in c.checks] == ["c1", "c2"]
    assert "The 'start_join' field is deprecated. Use the 'retry_join' field instead." in result.warnings


def test_start_join_in_file_is_retry_join(tmp_path: Path) -> None:
    f = write(tmp_path, "a.json", {"start_join": ["1.2.3.4"], "retry_join": ["5.6.7.8"]})
    result = dev("-config-file", f)
    assert result.config.retry_join == ["5.6.7.8", "1.2.3.4"]
    assert any("start_join" in w for w in result.warnings)


# --- formats ----------------------------------------------------------------------------------------------------


SAME_CONFIG = {
    "json": json.dumps({
        "datacenter": "East", "ports": {"http": 18500}, "client_addr": "127.0.0.1 ::1",
        "services": [{"name": "web", "port": 80, "tags": ["a"], "check": {"ttl": "10s"}}, {"name": "db"}],
        "ui_config": {"enabled": False}, "dns_config": {"service_ttl": {"*": "5s"}, "soa": {"min_ttl": 7}},
    }),
    "hcl": """
datacenter = "East"
ports { http = 18500 }
client_addr = "127.0.0.1 ::1"
services {
  name = "web"
  port = 80
  tags = ["a"]
  check { ttl = "10s" }
}
services { name = "db" }
ui_config { enabled = false }
dns_config {
  service_ttl { "*" = "5s" }
  soa { min_ttl = 7 }
}
""",
    "yaml": """
datacenter: East
ports: {http: 18500}
client_addr: 127.0.0.1 ::1
services:
  - name: web
    port: 80
    tags: [a]
    check: {ttl: 10s}
  - name: db
ui_config: {enabled: false}
dns_config:
  service_ttl: {"*": 5s}
  soa: {min_ttl: 7}
""",
}


@pytest.mark.parametrize("ext", ["json", "hcl", "yaml"])
def test_each_format(tmp_path: Path, ext: str) -> None:
    f = write(tmp_path, f"agent.{ext}", SAME_CONFIG[ext])
    c = dev("-config-file", f).config
    assert (c.datacenter, c.ports.http, c.client_addr, c.ui) == ("east", 18500, ["127.0.0.1", "::1"], False)
    assert c.services == [{"name": "web", "port": 80, "tags": ["a"], "check": {"ttl": "10s"}}, {"name": "db"}]
    assert c.dns_config.service_ttl == {"*": 5 * SECOND} and c.dns_config.soa.min_ttl == 7


def test_hcl_repeated_service_blocks_and_single_services_block(tmp_path: Path) -> None:
    f = write(tmp_path, "a.hcl", 'service { name = "a"\n port = 1 }\nservice { name = "b"\n port = 2 }\n')
    assert [s["name"] for s in dev("-config-file", f).config.services] == ["a", "b"]
    g = write(tmp_path, "b.hcl", 'services { name = "only" }\n')
    assert dev("-config-file", g).config.services == [{"name": "only"}]


def test_service_keys_are_canonicalised_and_null_is_absent(tmp_path: Path) -> None:
    f = write(tmp_path, "a.json", {"service": {"Name": "web", "EnableTagOverride": True, "Meta": {"Key": "v"},
                                               "Check": {"ServiceID": "web", "TTL": "5s"}},
                                   "node_name": None})
    c = dev("-config-file", f).config
    assert c.services == [{"name": "web", "enable_tag_override": True, "meta": {"Key": "v"},
                           "check": {"service_id": "web", "ttl": "5s"}}]


def test_config_format_forces_format(tmp_path: Path) -> None:
    f = write(tmp_path, "agent.conf", {"node_name": "conf"})
    assert dev("-config-format", "json", "-config-file", f).config.node_name == "conf"
    assert error_of(["-dev", "-config-file", f]) == (
        f"file {f} has unknown extension; must be .hcl or .json, or config format must be set")
    assert error_of(["-dev", "-config-format", "xml", "-config-file", f]) == (
        "config: -config-format must be either 'hcl' or 'json'")


def test_empty_files_are_skipped(tmp_path: Path) -> None:
    for name in ("a.json", "b.hcl", "c.yaml"):
        write(tmp_path, name, "")
    c = dev("-config-dir", str(tmp_path)).config
    assert len(c.sources) == 3 and c.node_name


def test_deprecated_keys_move(tmp_path: Path) -> None:
    f = write(tmp_path, "a.json", {"acl_master_token": "root", "acl_datacenter": "dc1", "ui": False})
    result = dev("-config-file", f)
    c = result.config
    assert c.acl["tokens"]["initial_management"] == "root" and c.acl["enabled"] is True
    assert c.ui is True  # dev sets ui_config.enabled, which wins over the legacy key
    assert "The 'ui' field is deprecated. Use the 'ui_config.enabled' field instead." in result.warnings


def test_flags() -> None:
    c = dev("-dc", "DC2", "--node=n1", "-client", "0.0.0.0", "-domain", "example.", "-log-json").config
    assert (c.datacenter, c.node_name, c.client_addr, c.domain, c.log_json) == ("dc2", "n1", ["0.0.0.0"], "example",
                                                                                 True)
    names = {flag.name for flag in AGENT_FLAGS.flags}
    for name in ("dev", "server", "node", "datacenter", "bind", "advertise", "client", "data-dir", "config-file",
                 "config-dir", "config-format", "http-port", "dns-port", "server-port", "serf-lan-port",
                 "serf-wan-port", "grpc-port", "ui", "log-level", "pid-file", "enable-script-checks",
                 "enable-local-script-checks", "hcl", "join", "retry-join", "retry-interval", "retry-max", "rejoin",
                 "bootstrap", "bootstrap-expect", "encrypt", "recursor", "domain", "alt-domain", "node-id",
                 "node-meta", "default-query-time", "max-query-time", "log-json", "log-file"):
        assert name in names
    c = dev("-retry-interval", "5s", "-retry-max", "3", "-default-query-time", "1m", "-max-query-time", "2m").config
    assert (c.retry_interval, c.retry_max, c.default_query_time, c.max_query_time) == (
        5 * SECOND, 3, 60 * SECOND, 120 * SECOND)


def test_bootstrap_expect_one_is_bootstrap(tmp_path: Path) -> None:
    result = load_config(["-server", "-bootstrap-expect", "1", "-data-dir", str(tmp_path)])
    assert (result.config.bootstrap, result.config.bootstrap_expect) == (True, 0)
    assert "BootstrapExpect is set to 1; this is the same as Bootstrap mode." in result.warnings


# --- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [
    (["-flurb"], "flag provided but not defined: -flurb"),
    (["-dev", "-http-port", "x"], 'invalid value "x" for flag -http-port: strconv.Atoi: parsing "x": invalid syntax'),
    (["-dev", "extra"], "Unexpected extra arguments: [extra]"),
    (["-bind", "127.0.0.1"], "data_dir cannot be empty"),
    (["-dev", "-bootstrap-expect", "3"], "'bootstrap_expect > 0' not allowed in dev mode"),
    (["-server", "-bootstrap", "-bootstrap-expect", "3", "-data-dir", "/tmp"],
     "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive"),
    (["-bootstrap-expect", "3", "-data-dir", "/tmp"], "'bootstrap_expect > 0' requires 'server = true'"),
    (["-bootstrap", "-data-dir", "/tmp"], "'bootstrap = true' requires 'server = true'"),
    (["-dev", "-encrypt", "not base64!"], "encrypt has invalid key: illegal base64 data at input byte 3"),
    (["-dev", "-encrypt", "YWJj"], "encrypt has invalid key: key size must be 16, 24 or 32 bytes"),
    (["-dev", "-bind", "localhost"], "bind_addr: invalid ip address: localhost"),
    (["-dev", "-bind", "127.0.0.1 127.0.0.2"],
     "bind_addr cannot contain multiple addresses. Use 'addresses.{dns,http,https}' instead."),
    (["-dev", "-bind", '{{ GetPrivateIP }}'], "bind_addr: error parsing \"{{ GetPrivateIP }}\": go-sockaddr "
     "templates are not supported by consulpy; give IP addresses"),
    (["-dev", "-advertise", "0.0.0.0"], "Advertise address cannot be 0.0.0.0, :: or [::]"),
    (["-dev", "-advertise", "10.0.0.1.5"], "advertise_addr: invalid ip address: 10.0.0.1.5"),
    (["-dev", "-client", "127.0.0.1 nope"], "client_addr: invalid ip address: nope"),
    (["-dev", "-client", "unix:///tmp/s"], "client_addr cannot be a unix socket"),
    (["-dev", "-datacenter", "dc 1"],
     'datacenter can only contain lowercase alphanumeric, - or _ characters. received: "dc 1"'),
    (["-dev", "-log-level", "loud"],
     "Invalid log level: loud. Valid log levels are: [TRACE DEBUG INFO WARN ERR ERROR]"),
    (["-dev", "-hcl", "performance { raft_multiplier = 11 }"],
     "performance.raft_multiplier cannot be 11. Must be between 1 and 10"),
    (["-dev", "-retry-interval", "5x"], 'retry_interval: invalid duration: "5x": time: invalid duration "5x"'),
    (["-dev", "-node-meta", "consul-x:1"],
     "node_meta invalid: Couldn't load metadata pair ('consul-x', '1'): Key prefix 'consul-' is reserved for "
     "internal use"),
    (["-dev", "-node-id", "abc"], 'node_id "abc" is invalid: uuid string is wrong length'),
    (["-dev", "-http-port", "8600"], "HTTP address 127.0.0.1:8600 already configured for DNS"),
    (["-dev", "-http-port", "70000"], "ports.http: invalid port: 70000"),
    (["-dev", "-server-port", "0"], "server-port must be greater than zero"),
    (["-dev", "-alt-domain", "service.example"],
     "alt_domain cannot start with {service,connect,node,query,addr,dc1}"),
    (["-dev", "-hcl", "foo = 1"], "failed to parse flags-0.hcl: invalid config key foo"),
    (["-dev", "-hcl", 'ports { htp = 1 }'], "failed to parse flags-0.hcl: invalid config key ports.htp"),
    (["-dev", "-hcl", 'ports { http = "8500" }'],
     "failed to parse flags-0.hcl: 'ports.http' expected type 'int', got unconvertible type 'string', "
     "value: '8500'"),
    (["-dev", "-hcl", 'server = "true"'],
     "failed to parse flags-0.hcl: 'server' expected type 'bool', got unconvertible type 'string', value: 'true'"),
    (["-dev", "-hcl", 'retry_join = "10.0.0.1"'],
     "failed to parse flags-0.hcl: 'retry_join': source data must be an array or slice, got string"),
    (["-dev", "-config-file", "/nonexistent/agent.json"],
     "config: Open failed on /nonexistent/agent.json. open /nonexistent/agent.json: no such file or directory"),
])
def test_errors(argv: list[str], message: str) -> None:
    assert error_of(argv) == message


def test_type_and_key_errors_in_files(tmp_path: Path) -> None:
    f = write(tmp_path, "a.json", {"services": [{"name": "x", "bogus": 1}], "flurb": True})
    assert error_of(["-dev", "-config-file", f]) == (
        f"failed to parse {f}: invalid config key services[0].bogus; invalid config key flurb")
    g = write(tmp_path, "b.yaml", "node_meta:\n  rack: 7\n")
    assert error_of(["-dev", "-config-file", g]) == (
        f"failed to parse {g}: 'node_meta[rack]' expected type 'string', got unconvertible type 'int', value: '7'")
    h = write(tmp_path, "c.json", {"dns_config": {"max_stale": "soon"}})
    assert error_of(["-dev", "-config-file", h]) == (
        'dns_config.max_stale: invalid duration: "soon": time: invalid duration "soon"')


MALFORMED = [
    ("json", "{"), ("json", '{"a": }'), ("json", "[1, 2]"), ("json", '"text"'), ("json", "12"), ("json", "   "),
    ("json", '{"ports": [1]}'), ("json", '{"ports": {"http": NaN}}'), ("json", '{"service": "web"}'),
    ("json", '{"services": [1, 2]}'), ("json", '{"node_meta": []}'), ("json", '{"ports": {"http": {"a": 1}}}'),
    ("hcl", "ports {"), ("hcl", "= 1"), ("hcl", 'a = "unterminated'), ("hcl", "ports { http = [1] }"),
    ("hcl", "x { y { z"), ("hcl", "server = yes"), ("hcl", "services = 3"), ("hcl", '"" = 1'),
    ("yaml", "a: [1, 2"), ("yaml", "- 1\n- 2\n"), ("yaml", "ports: 5"), ("yaml", "1: x"),
    ("yaml", "node_meta: {a: [1]}"), ("yaml", "server: 2024-01-01"), ("yaml", "\tbad: tab"), ("yaml", "{a: b}: c"),
    ("yaml", "ports:\n  http: !!binary aGk="), ("yaml", "retry_join: [1, 2]"),
]


def test_malformed_inputs_always_raise_config_error(tmp_path: Path) -> None:
    for i, (ext, text) in enumerate(MALFORMED):
        path = write(tmp_path, f"bad{i}.{ext}", text)
        with pytest.raises(ConfigError) as info:
            load_config(["-dev", "-config-file", path])
        message = str(info.value)
        assert "\n" not in message and path in message, (ext, text, message)


def test_validate_paths(tmp_path: Path) -> None:
    f = write(tmp_path, "a.json", {"server": True, "bootstrap_expect": 3, "advertise_addr": "10.1.1.1"})
    c = validate_paths([f])
    assert c.data_dir is None and c.bootstrap_expect == 3 and c.sources == [f]
    g = write(tmp_path, "b.json", {"server": False, "bootstrap": True})
    with pytest.raises(ConfigError, match="'bootstrap = true' requires 'server = true'"):
        validate_paths([g])
    with pytest.raises(ConfigError):
        validate_paths([])


def test_data_dir_must_be_a_directory(tmp_path: Path) -> None:
    f = write(tmp_path, "file", "x")
    assert error_of(["-data-dir", f]) == f'data_dir "{f}" is not a directory'


# --- example configs --------------------------------------------------------------------------------------------


def test_example_configs_load() -> None:
    dev_hcl, server, client, services = (str(CONFIGS / name) for name in (
        "dev.hcl", "server.hcl", "client.hcl", "services.yaml"))
    for path in (dev_hcl, server, client, services):
        validate_paths([path])
    c = load_config(["-dev", "-config-file", dev_hcl]).config
    assert c.node_name == "dev-1" and [s["name"] for s in c.services] == ["web"]
    s = load_config(["-config-file", server]).config
    assert (s.server, s.bootstrap_expect, s.bind_addr, s.retry_join) == (True, 3, "127.0.0.2", ["127.0.0.2"])
    assert s.client_addr == ["127.0.0.2"] and s.raft_multiplier == 1
    c = load_config(["-config-file", client, "-config-file", services]).config
    assert (c.server, c.node_meta["rack"], c.dns_config.max_stale) == (False, "r1", 10 * SECOND)
    assert [s["name"] for s in c.services] == ["api", "cache"] and [k["id"] for k in c.checks] == ["disk"]
    assert os.path.basename(c.sources[-1]) == "services.yaml"
