"""HTTP handlers for /v1/agent/*: self, gossip members, join, leave and force-leave, local services and checks,
registration, TTL updates, maintenance, local health, reload and the ACL-disabled token endpoint.

Agent endpoints are local (no X-Consul-Index); writes answer an empty 200 once the change is pushed to the
catalog, as Consul's handlers call syncChanges. Imports: stdlib, aiohttp (request type), orjson,
consulpy.agent (config errors, definitions, local state, gossip pools), consulpy.duration, consulpy.endpoints,
consulpy.http, consulpy.state.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import platform
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp.web import BaseRequest

from consulpy import BUILD_DATE, CONSUL_VERSION, __version__
from consulpy.agent.config import ConfigError
from consulpy.agent.definitions import RegistrationError, check_registration, service_registration
from consulpy.agent.gossip import ForceLeaveError, JoinError, Member, MemberStatus
from consulpy.agent.local import SOURCE_API
from consulpy.duration import DurationError, parse_duration
from consulpy.endpoints.query import QueryOptions
from consulpy.gostrconv import parse_bool
from consulpy.http.decode import CHECK_DEFINITION, SERVICE_DEFINITION, STR, DecodeError, Schema, decode_body
from consulpy.http.errors import HTTPError, bad_request, not_found
from consulpy.http.params import parse_uint
from consulpy.http.render import agent_service_json, check_json
from consulpy.http.server import Reply, Route, filter_items, read_body
from consulpy.state import CRITICAL, NODE_MAINT_CHECK_ID, PASSING, SERVICE_MAINT_PREFIX, WARNING, HealthCheck
from consulpy.state.kv_ops import go_quote

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

log = logging.getLogger("consulpy.agent")

MAX_BODY = 1 << 20
CHECK_BUF_SIZE = 4096
REVISION = f"consulpy-{__version__}"
MAINTENANCE = "maintenance"
SEGMENTS_NOT_SUPPORTED = "Network segments are not supported in this version of Consul"
ALL_SEGMENTS = "_all"
CHECK_UPDATE = Schema("checkUpdate", {"Status": STR, "Output": STR})
_PROXY_KINDS = ("connect-proxy", "mesh-gateway", "terminating-gateway", "ingress-gateway", "api-gateway")
_ORIGIN_COORDINATE = {"Vec": [0.0] * 8, "Error": 1.5, "Adjustment": 0.0, "Height": 1.0e-5}


def _too_large(size: int) -> HTTPError:
    return HTTPError(413, f"Request body({size} bytes) too large, max size: {MAX_BODY} bytes.")


async def _decode(request: BaseRequest, schema: Schema) -> dict[str, Any]:
    try:
        return decode_body(await read_body(request, MAX_BODY, _too_large), schema)
    except DecodeError as exc:
        raise bad_request(f"Request decode failed: {exc}") from None


def _unknown_service(service_id: str) -> HTTPError:
    return not_found(f"Unknown service ID {go_quote(service_id)}. Ensure that the service ID is passed, not the "
                     "service name.")


def _unknown_check(check_id: str) -> HTTPError:
    return not_found(f"Unknown check ID {go_quote(check_id)}. Ensure that the check ID is passed, not the check "
                     "name.")


def _enable(request: BaseRequest) -> bool:
    if "enable" not in request.query:
        raise bad_request("Missing value for enable")
    raw = request.query["enable"]
    value = parse_bool(raw)
    if value is None:
        raise bad_request(f"Invalid value for enable: {go_quote(raw)}")
    return value


# --------------------------------------------------------------------------- rendering


def _agent_service(agent: Agent, service_id: str) -> dict[str, Any] | None:
    svc = agent.local.service(service_id)
    if svc is None:
        return None
    out = agent_service_json(svc, agent.datacenter)
    if svc.kind not in _PROXY_KINDS:
        out.pop("Proxy", None)
    connect = svc.connect or {}
    if not any(k.lower() == "native" and v for k, v in connect.items()):
        out.pop("Connect", None)
    return out


def _content_hash(body: dict[str, Any]) -> str:
    digest = hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=8).digest()
    return f"{int.from_bytes(digest, 'big'):x}"


def _api_check(check: HealthCheck) -> dict[str, Any]:
    """A check as the local health endpoints build it (api.HealthCheck with only the basic fields set)."""
    return {
        "Node": check.node, "CheckID": check.check_id, "Name": check.name, "Status": check.status,
        "Notes": check.notes, "Output": check.output, "ServiceID": check.service_id,
        "ServiceName": check.service_name, "ServiceTags": list(check.service_tags), "Type": "", "Interval": "",
        "Timeout": "", "ExposedPort": 0,
        "Definition": {"Interval": "0s", "Timeout": "0s", "DeregisterCriticalServiceAfter": "0s", "HTTP": "",
                       "Header": None, "Method": "", "Body": "", "TLSServerName": "", "TLSSkipVerify": False,
                       "TCP": "", "TCPUseTLS": False, "UDP": "", "GRPC": "", "OSService": "", "GRPCUseTLS": False},
        "CreateIndex": 0, "ModifyIndex": 0,
    }


def aggregated_status(checks: list[HealthCheck]) -> str:
    """api.HealthChecks.AggregatedStatus: maintenance beats critical beats warning beats passing."""
    seen = set()
    for check in checks:
        if check.check_id == NODE_MAINT_CHECK_ID or check.check_id.startswith(SERVICE_MAINT_PREFIX):
            seen.add(MAINTENANCE)
        else:
            seen.add(check.status)
    for status in (MAINTENANCE, CRITICAL, WARNING):
        if status in seen:
            return status
    return PASSING


def _status_code(status: str) -> int:
    return {PASSING: 200, WARNING: 429}.get(status, 503)


def _member_json(member: Member) -> dict[str, Any]:
    """A gossip member as Consul shows serf.Member: the IP and port apart, the status as serf's number, and
    the memberlist (Protocol*) and Consul delegate (Delegate*) version ranges Consul's agents report."""
    host, _, port = member.address.rpartition(":")
    return {
        "Name": member.name,
        "Addr": host.removeprefix("[").removesuffix("]"),
        "Port": int(port),
        "Tags": dict(sorted(member.tags.items())),
        "Status": int(member.status),
        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    }


def _serf_stats(agent: Agent, wan: bool) -> dict[str, str]:
    members = agent.gossip.members(wan)
    statuses = [m.status for m in members]
    return {"coordinate_resets": "0", "encrypted": str(bool(agent.config.encrypt)).lower(), "event_queue": "0",
            "event_time": "1", "failed": str(statuses.count(MemberStatus.FAILED)), "health_score": "0",
            "intent_queue": "0", "left": str(statuses.count(MemberStatus.LEFT)), "member_time": "1",
            "members": str(len(members)), "query_queue": "0", "query_time": "1"}


def _stats(agent: Agent) -> dict[str, dict[str, str]]:
    config = agent.config
    consensus = agent.consensus
    leader = consensus.is_leader()
    index = str(agent.store.last_index)
    local = {k: str(v) for k, v in agent.local.stats().items()}
    serf = _serf_stats(agent, wan=False)
    stats: dict[str, dict[str, str]] = {
        "agent": local,
        "build": {"prerelease": "", "revision": REVISION, "version": CONSUL_VERSION, "version_metadata": ""},
        "consul": {"acl": "disabled", "server": str(config.server).lower()},
        "runtime": {"arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
                    "cpu_count": str(os.cpu_count() or 1), "goroutines": str(len(asyncio.all_tasks())),
                    "max_procs": str(os.cpu_count() or 1), "os": platform.system().lower(),
                    "version": f"python{platform.python_version()}"},
        "serf_lan": serf,
    }
    if config.server:
        stats["consul"].update({"bootstrap": str(config.bootstrap or config.dev).lower(), "known_datacenters": "1",
                                "leader": str(leader).lower(), "leader_addr": consensus.leader_address()})
        stats["raft"] = {"applied_index": index, "commit_index": index, "fsm_pending": "0",
                         "last_contact": "0" if leader else "never", "last_log_index": index,
                         "last_log_term": "1", "last_snapshot_index": "0", "last_snapshot_term": "0",
                         "num_peers": str(max(len(consensus.peers()) - 1, 0)), "protocol_version": "3",
                         "protocol_version_max": "3", "protocol_version_min": "0", "snapshot_version_max": "1",
                         "snapshot_version_min": "0", "state": "Leader" if leader else "Follower", "term": "1"}
        stats["serf_wan"] = _serf_stats(agent, wan=True)
    else:
        stats["consul"]["known_servers"] = str(len(agent.gossip.lan.alive_servers()))
    return stats


# --------------------------------------------------------------------------- reads


async def agent_self(request: BaseRequest, agent: Agent, tail: str) -> Any:
    config = agent.config
    return {
        "Config": {"Datacenter": agent.datacenter, "PrimaryDatacenter": config.primary_datacenter,
                   "NodeName": agent.node_name, "NodeID": agent.node_id, "Revision": REVISION,
                   "Server": config.server, "Version": CONSUL_VERSION, "BuildDate": BUILD_DATE},
        "DebugConfig": {
            "Datacenter": agent.datacenter, "NodeName": agent.node_name, "NodeID": agent.node_id,
            "ServerMode": config.server, "DevMode": config.dev, "Bootstrap": config.bootstrap,
            "BindAddr": config.bind_addr, "AdvertiseAddrLAN": agent.address, "ClientAddrs": list(config.client_addr),
            "DataDir": config.data_dir or "", "HTTPPort": config.ports.http, "DNSPort": config.ports.dns,
            "ServerPort": config.ports.server, "SerfPortLAN": config.ports.serf_lan,
            "SerfPortWAN": config.ports.serf_wan, "DNSDomain": config.domain + ".", "LogLevel": config.log_level,
            "EnableScriptChecks": config.enable_script_checks,
            "EnableLocalScriptChecks": config.enable_local_script_checks,
            "CheckOutputMaxSize": config.check_output_max_size, "NodeMeta": config.node_meta,
        },
        "Coord": _ORIGIN_COORDINATE,
        "Member": _member_json(agent.gossip.lan.local_member()),
        "Stats": _stats(agent),
        "Meta": agent.node_record().meta,
    }


def _refuse_partition(request: BaseRequest) -> None:
    """Admin partitions are Consul Enterprise: CE refuses a partition asked for by header or query."""
    if request.headers.get("X-Consul-Partition"):
        raise bad_request('Invalid header: "X-Consul-Partition" - Partitions are a Consul Enterprise feature')
    if request.query.get("partition"):
        raise bad_request('Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature')


async def agent_members(request: BaseRequest, agent: Agent, tail: str) -> Any:
    """The LAN members (or with `?wan` the WAN pool, `null` on a client); CE knows no segments but its own."""
    wan = request.query.get("wan", "") != ""
    segment = request.query.get("segment", "")
    if wan and segment not in ("", ALL_SEGMENTS):
        raise bad_request("Cannot provide a segment with wan=true")
    _refuse_partition(request)
    if wan and agent.gossip.wan is None:
        return Reply(raw=b"null")
    if not wan and segment not in ("", ALL_SEGMENTS):
        # A CE server refuses every named segment; a client knows only its own, the default "".
        raise HTTPError(500, SEGMENTS_NOT_SUPPORTED if agent.config.server else
                        f"segment {go_quote(segment)} not found")
    return filter_items(request, [_member_json(m) for m in agent.gossip.members(wan)])


def _filtered_map(request: BaseRequest, rendered: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if not request.query.get("filter"):
        return rendered
    kept = {id(item) for item in filter_items(request, rendered.values())}
    return {key: value for key, value in rendered.items() if id(value) in kept}


async def agent_services(request: BaseRequest, agent: Agent, tail: str) -> Any:
    rendered = {sid: body for sid in agent.local.services() if (body := _agent_service(agent, sid)) is not None}
    return _filtered_map(request, rendered)


async def agent_checks(request: BaseRequest, agent: Agent, tail: str) -> Any:
    rendered = {cid: check_json(check) for cid, check in agent.local.checks().items()}
    return _filtered_map(request, rendered)


async def agent_service(request: BaseRequest, agent: Agent, tail: str) -> Any:
    """One local service with its ContentHash; `?hash=` blocks until the content differs (or `wait` ends)."""
    query = request.query
    wait_ns = 0
    if query.get("wait"):
        try:
            wait_ns = parse_duration(query["wait"])
        except DurationError:
            raise bad_request("Invalid wait time") from None
    if query.get("index") and parse_uint(query["index"]) is None:
        raise bad_request("Invalid index")
    wanted = query.get("hash", "")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + agent.server.wait_seconds(QueryOptions(max_wait_ns=wait_ns)) if wanted else 0.0
    while True:
        body = _agent_service(agent, tail)
        if body is None:
            raise not_found(f"unknown service ID: {tail}")
        current = _content_hash(body)
        remaining = deadline - loop.time()
        if not wanted or current != wanted or remaining <= 0:
            break
        await agent.local.wait_for_change(remaining)
    body["ContentHash"] = current
    return Reply(body, headers={"X-Consul-Contenthash": current})


def _wants_text(request: BaseRequest) -> bool:
    if request.headers.get("Accept", "").startswith("text/plain"):
        return True
    return request.query.get("format", "") == "text"


def _health_info(agent: Agent, service_id: str) -> tuple[str, dict[str, Any]]:
    checks = agent.local.checks_for_service(service_id, include_node_checks=True)
    status = aggregated_status(checks)
    return status, {"AggregatedStatus": status, "Service": _agent_service(agent, service_id),
                    "Checks": [_api_check(c) for c in checks]}


async def agent_health_by_id(request: BaseRequest, agent: Agent, tail: str) -> Any:
    if not tail:
        raise bad_request("Missing serviceID")
    text = _wants_text(request)
    if agent.local.service(tail) is None:
        reason = f"ServiceId {tail} not found"
        headers = {"X-Consul-Reason": reason}
        if text:
            return Reply(status=404, raw=reason.encode(), content_type="text/plain", headers=headers)
        return Reply({"AggregatedStatus": CRITICAL, "Service": None, "Checks": None}, status=404, headers=headers)
    status, info = _health_info(agent, tail)
    code = _status_code(status)
    headers = {"X-Consul-Reason": status}
    if text:
        return Reply(status=code, raw=status.encode(), content_type="text/plain", headers=headers)
    return Reply(info, status=code, headers=headers)


async def agent_health_by_name(request: BaseRequest, agent: Agent, tail: str) -> Any:
    if not tail:
        raise bad_request("Missing service Name")
    code = 404
    status = f"ServiceName {tail} Not Found"
    result = []
    for svc in agent.local.services_named(tail):
        service_status, info = _health_info(agent, svc.id)
        result.append(info)
        service_code = _status_code(service_status)
        if code == 404 or code < service_code:
            code, status = service_code, service_status
    headers = {"X-Consul-Reason": status}
    if _wants_text(request):
        return Reply(status=code, raw=status.encode(), content_type="text/plain", headers=headers)
    return Reply(result, status=code, headers=headers)


# --------------------------------------------------------------------------- writes


async def service_register(request: BaseRequest, agent: Agent, tail: str) -> Any:
    raw = await _decode(request, SERVICE_DEFINITION)
    reg = service_registration(raw)
    replace_checks = request.query.getall("replace-existing-checks", [])
    replace_existing = bool(replace_checks) and replace_checks[0] in ("", "true")
    agent.local.add_service(reg, SOURCE_API, replace_existing_checks=replace_existing)
    await agent.ae.sync_changes()


async def service_deregister(request: BaseRequest, agent: Agent, tail: str) -> Any:
    if not agent.local.remove_service(tail):
        raise _unknown_service(tail)
    await agent.ae.sync_changes()


async def service_maintenance(request: BaseRequest, agent: Agent, tail: str) -> Any:
    if not tail:
        raise bad_request("Missing service ID")
    enable = _enable(request)
    if agent.local.service(tail) is None:
        raise _unknown_service(tail)
    if enable:
        agent.local.enable_service_maintenance(tail, request.query.get("reason", ""))
    else:
        agent.local.disable_service_maintenance(tail)
    await agent.ae.sync_changes()


async def node_maintenance(request: BaseRequest, agent: Agent, tail: str) -> Any:
    if _enable(request):
        agent.local.enable_node_maintenance(request.query.get("reason", ""))
    else:
        agent.local.disable_node_maintenance()
    await agent.ae.sync_changes()


async def check_register(request: BaseRequest, agent: Agent, tail: str) -> Any:
    raw = await _decode(request, CHECK_DEFINITION)
    reg = check_registration(raw, agent.node_name)
    service_id = reg.check.service_id
    if service_id and agent.local.service(service_id) is None:
        raise not_found(f"ServiceID {go_quote(service_id)} does not exist")
    agent.local.add_check(reg, SOURCE_API)
    await agent.ae.sync_changes()


async def check_deregister(request: BaseRequest, agent: Agent, tail: str) -> Any:
    if not agent.local.remove_check(tail):
        raise _unknown_check(tail)
    await agent.ae.sync_changes()


async def _ttl_update(agent: Agent, check_id: str, status: str, output: str) -> None:
    agent.local.update_ttl(check_id, status, output)
    await agent.ae.sync_changes()


async def check_pass(request: BaseRequest, agent: Agent, tail: str) -> Any:
    await _ttl_update(agent, tail, PASSING, request.query.get("note", ""))


async def check_warn(request: BaseRequest, agent: Agent, tail: str) -> Any:
    await _ttl_update(agent, tail, WARNING, request.query.get("note", ""))


async def check_fail(request: BaseRequest, agent: Agent, tail: str) -> Any:
    await _ttl_update(agent, tail, CRITICAL, request.query.get("note", ""))


async def check_update(request: BaseRequest, agent: Agent, tail: str) -> Any:
    raw = await _decode(request, CHECK_UPDATE)
    status = raw.get("Status", "")
    if status not in (PASSING, WARNING, CRITICAL):
        raise bad_request(f"Invalid check status: '{status}'")
    output = raw.get("Output", "")
    total = len(output)
    if total > CHECK_BUF_SIZE:
        output = f"{output[:CHECK_BUF_SIZE]} ... (captured {CHECK_BUF_SIZE} of {total} bytes)"
    await _ttl_update(agent, tail, status, output)


async def agent_reload(request: BaseRequest, agent: Agent, tail: str) -> Any:
    try:
        await agent.reload_from_argv()
    except (ConfigError, RegistrationError) as exc:
        raise HTTPError(500, str(exc)) from None


async def agent_leave(request: BaseRequest, agent: Agent, tail: str) -> Any:
    """Answer first, then let the process shut down gracefully (run.py waits on agent.stopped)."""
    asyncio.get_running_loop().call_later(0.1, agent.stopped.set)


async def agent_join(request: BaseRequest, agent: Agent, tail: str) -> Any:
    """Join the LAN pool (or with `?wan` the WAN pool) through one address; a failure is Consul's 500 with the
    go-multierror text of every address tried."""
    _refuse_partition(request)
    wan = request.query.get("wan", "") != ""
    pool = "WAN" if wan else "LAN"
    log.info("(%s) joining: %s_addresses=[%s]", pool, pool.lower(), tail)
    if wan and agent.gossip.wan is None:
        error = "Must be a server to join WAN cluster"
    else:
        try:
            joined = await agent.gossip.join([tail], wan=wan)
        except JoinError as exc:
            error = str(exc)
        else:
            log.info("(%s) joined: number_of_nodes=%d", pool, joined)
            return
    log.warning("(%s) couldn't join: number_of_nodes=0 error=%s", pool, error.strip())
    raise HTTPError(500, error)


async def agent_force_leave(request: BaseRequest, agent: Agent, tail: str) -> Any:
    """Force a member into `left` (with `?prune`, forget it at once); an unknown name is Consul's 500."""
    _refuse_partition(request)
    prune = "prune" in request.query
    wan = "wan" in request.query
    log.info("%sForce leaving node: node=%s", "(WAN) " if wan else "", tail)
    if wan and agent.gossip.wan is None:
        raise HTTPError(500, "Must be a server to force-leave a node from the WAN cluster")
    try:
        agent.gossip.force_leave(tail, prune=prune, wan=wan)
    except ForceLeaveError as exc:
        log.warning("%sFailed to remove node: node=%s error=%s", "(WAN) " if wan else "", tail, exc)
        raise HTTPError(500, str(exc)) from None


async def agent_token(request: BaseRequest, agent: Agent, tail: str) -> Any:
    raise HTTPError(401, "ACL support disabled")


GET = ("GET",)
PUT = ("PUT",)

ROUTES = [
    Route("/v1/agent/self", GET, agent_self),
    Route("/v1/agent/members", GET, agent_members),
    Route("/v1/agent/services", GET, agent_services),
    Route("/v1/agent/service/", GET, agent_service),
    Route("/v1/agent/checks", GET, agent_checks),
    Route("/v1/agent/health/service/id/", GET, agent_health_by_id),
    Route("/v1/agent/health/service/name/", GET, agent_health_by_name),
    Route("/v1/agent/maintenance", PUT, node_maintenance),
    Route("/v1/agent/reload", PUT, agent_reload),
    Route("/v1/agent/leave", PUT, agent_leave),
    Route("/v1/agent/join/", PUT, agent_join),
    Route("/v1/agent/force-leave/", PUT, agent_force_leave),
    Route("/v1/agent/token/", PUT, agent_token),
    Route("/v1/agent/check/register", PUT, check_register),
    Route("/v1/agent/check/deregister/", PUT, check_deregister),
    Route("/v1/agent/check/pass/", PUT, check_pass),
    Route("/v1/agent/check/warn/", PUT, check_warn),
    Route("/v1/agent/check/fail/", PUT, check_fail),
    Route("/v1/agent/check/update/", PUT, check_update),
    Route("/v1/agent/service/register", PUT, service_register),
    Route("/v1/agent/service/deregister/", PUT, service_deregister),
    Route("/v1/agent/service/maintenance/", PUT, service_maintenance),
]
