"""Service and check definitions: Consul's validation order and texts, check IDs/names, config-file keys."""

from __future__ import annotations

from typing import Any

import pytest

from consulpy.agent.definitions import (
    BAD_CHECK_STATUS,
    CheckType,
    RegistrationError,
    check_registration,
    config_check_registration,
    config_service_registration,
    service_check,
    service_registration,
)
from consulpy.duration import SECOND
from consulpy.state import CRITICAL, PASSING, Weights


def refused(raw: dict[str, Any]) -> tuple[int, str]:
    with pytest.raises(RegistrationError) as info:
        service_registration(raw)
    return info.value.status, info.value.reason


def checks_of(raw: dict[str, Any]) -> list[tuple[str, str, str]]:
    reg = service_registration(raw)
    count = len(reg.check_types)
    return [(c.check_id, c.name, c.status) for c in
            (service_check(reg.service, ct, i, count, "n1") for i, ct in enumerate(reg.check_types, 1))]


def test_single_unnamed_check_is_service_colon_id() -> None:
    assert checks_of({"Name": "web", "ID": "web-8080", "Check": {"TTL": "30s"}}) == [
        ("service:web-8080", "Service 'web' check", CRITICAL)]


def test_several_checks_are_numbered_check_first_then_checks() -> None:
    raw = {"Name": "web", "Check": {"TTL": "30s"},
           "Checks": [{"TTL": "5s", "Status": "passing"}, {"CheckID": "mine", "Name": "Mine", "TTL": "5s"}]}
    assert checks_of(raw) == [("service:web:1", "Service 'web' check", CRITICAL),
                              ("service:web:2", "Service 'web' check", PASSING),
                              ("mine", "Mine", CRITICAL)]


def test_empty_check_object_is_ignored_and_id_defaults_to_name() -> None:
    reg = service_registration({"Name": "web", "Check": {}, "Checks": []})
    assert reg.service.id == "web" and reg.check_types == ()
    assert reg.service.weights == Weights(1, 1) and reg.service.tags == () and reg.service.meta == {}


def test_check_types_and_durations() -> None:
    reg = service_registration({"Name": "w", "Checks": [
        {"HTTP": "http://x/", "Interval": "10s", "Timeout": "1m"},
        {"TCP": "x:1", "Interval": 2 * SECOND},
        {"ScriptArgs": ["/bin/true"], "Interval": "90s"},
        {"TTL": "1s"},
    ]})
    checks = [service_check(reg.service, ct, i, 4, "n1") for i, ct in enumerate(reg.check_types, 1)]
    assert [(c.type, c.interval, c.timeout) for c in checks] == [
        ("http", "10s", "1m0s"), ("tcp", "2s", ""), ("script", "1m30s", ""), ("ttl", "", "")]
    assert all(c.service_id == "w" and c.service_name == "w" for c in checks)


@pytest.mark.parametrize(("check", "reason"), [
    ({"TTL": "1s", "Interval": "1s"}, "Interval and TTL cannot both be specified"),
    ({"HTTP": "http://x"}, "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
    ({"ScriptArgs": ["x"]}, "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
    ({"Name": "no kind"}, "TTL must be > 0 for TTL checks"),
    ({"TTL": "1s", "FailuresBeforeWarning": 2}, "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"),
])
def test_check_validation(check: dict[str, Any], reason: str) -> None:
    assert refused({"Name": "web", "Check": check}) == (400, f"Invalid check: {reason}")


def test_validation_order_follows_consul() -> None:
    assert refused({"Address": "0.0.0.0", "Check": {"TTL": "x"}}) == (400, "Missing service name")
    assert refused({"Name": "w", "Address": "::", "Weights": {"Passing": 0}}) == (400, "Invalid service address")
    assert refused({"Name": "w", "Weights": {"Passing": 0, "Warning": 1}, "Meta": {"": "x"}}) == (
        400, "Invalid Weights: Passing must be greater than 0")
    assert refused({"Name": "w", "Meta": {"consul-x": "y"}, "Check": {"TTL": "0s"}}) == (
        400, "Invalid Service Meta: Couldn't load metadata pair ('consul-x', 'y'): Key prefix 'consul-' is reserved "
             "for internal use")
    assert refused({"Name": "w", "Kind": "connect-proxy", "Check": {"TTL": "0s"}}) == (
        400, "Validation failed: 2 errors occurred:\n\t* Proxy.DestinationServiceName must be non-empty for Connect "
             "proxy services\n\t* Port or SocketPath must be set for a Connect proxy\n\n")
    # Every check is validated before any status is looked at.
    assert refused({"Name": "w", "Checks": [{"TTL": "1s", "Status": "bad"}, {"HTTP": "h"}]})[1].startswith(
        "Invalid check: Interval must be")
    assert refused({"Name": "w", "Check": {"TTL": "1s", "Status": "bad"}}) == (400, BAD_CHECK_STATUS)


def test_meta_limits() -> None:
    assert refused({"Name": "w", "Meta": {f"k{i}": "v" for i in range(65)}})[1] == (
        "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs")
    assert refused({"Name": "w", "Meta": {"k": "v" * 513}})[1].endswith("Value is too long (limit: 512 characters)")
    assert refused({"Name": "w", "Meta": {"a b": "v"}})[1].endswith("Key contains invalid characters")


def test_weights_and_tagged_addresses() -> None:
    assert refused({"Name": "w", "Weights": {"Passing": 1, "Warning": -1}})[1] == (
        "Invalid Weights: Warning must be greater or equal than 0")
    svc = service_registration({"Name": "w", "Address": "10.1.2.3", "Port": 80, "Weights": {"Passing": 3}}).service
    assert svc.weights == Weights(3, 0)
    assert svc.tagged_addresses == {"lan_ipv4": {"Address": "10.1.2.3", "Port": 80},
                                    "wan_ipv4": {"Address": "10.1.2.3", "Port": 80}}
    assert service_registration({"Name": "w", "Address": "db.example"}).service.tagged_addresses == {}
    assert refused({"Name": "w", "TaggedAddresses": {"lan_ipv4": {"Address": "::1", "Port": 1}}}) == (
        500, 'Service tagged address "lan_ipv4" must be a valid ipv4 address')


def test_sidecar_service_is_refused_rather_than_ignored() -> None:
    status, reason = refused({"Name": "w", "Connect": {"SidecarService": {}}})
    assert status == 400 and reason.startswith("Invalid SidecarService:")


def test_check_registration() -> None:
    reg = check_registration({"Name": "mem", "TTL": "15s", "Notes": "n"}, "node1")
    check = reg.check
    assert (check.check_id, check.name, check.status, check.type) == ("mem", "mem", CRITICAL, "ttl")
    # CheckDefinition.HealthCheck formats zero durations too.
    assert (check.interval, check.timeout, check.node, check.notes) == ("0s", "0s", "node1", "n")
    reg = check_registration({"ID": "c1", "Name": "c", "TCP": "h:1", "Interval": "5s", "Status": "warning"}, "n")
    assert (reg.check.check_id, reg.check.status, reg.check.type, reg.check.interval) == ("c1", "warning", "tcp", "5s")
    for raw, reason in (({}, "Missing check name"), ({"Name": "c", "Status": "up"}, "Bad check status"),
                        ({"Name": "c"}, "Invalid check: TTL must be > 0 for TTL checks")):
        with pytest.raises(RegistrationError) as info:
            check_registration(raw, "n")
        assert (info.value.status, info.value.reason) == (400, reason)


def test_config_file_keys_build_the_same_records() -> None:
    api = service_registration({"Name": "web", "ID": "w1", "Port": 80, "Tags": ["a"], "EnableTagOverride": True,
                                "Weights": {"Passing": 2, "Warning": 1},
                                "Check": {"ID": "c", "HTTP": "http://x", "Interval": "10s",
                                          "Header": {"X": ["1"]}, "TLSSkipVerify": True,
                                          "DeregisterCriticalServiceAfter": "1m"}})
    config = config_service_registration({"name": "web", "id": "w1", "port": 80, "tags": ["a"],
                                          "enable_tag_override": True, "weights": {"passing": 2, "warning": 1},
                                          "check": {"id": "c", "http": "http://x", "interval": "10s",
                                                    "header": {"X": ["1"]}, "tls_skip_verify": True,
                                                    "deregister_critical_service_after": "1m"}})
    assert config == api
    script = config_check_registration({"name": "s", "args": ["/bin/true"], "interval": "3s"}, "n")
    assert script.check_type.script_args == ("/bin/true",) and script.check.type == "script"
    with pytest.raises(RegistrationError) as info:
        config_service_registration({"name": "web", "check": {"interval": "1s", "ttl": "1s"}})
    assert info.value.reason == ('Failed to register service "web": Invalid check: Interval and TTL cannot both be '
                                 "specified")


def test_check_type_kind_order_matches_consul() -> None:
    assert CheckType(http="h", grpc="g", interval=1).type_name() == "grpc"
    assert CheckType(http="h").type_name() == ""
    assert CheckType(docker_container_id="c", script_args=("x",), interval=1).type_name() == "docker"
    assert CheckType(alias_service="db").type_name() == "alias"
    assert CheckType().is_empty() and not CheckType(ttl=1).is_empty()
