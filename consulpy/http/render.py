"""Records → Consul's JSON objects, field for field (CE shapes: no Namespace/Partition).

Hot paths build dict literals directly. Imports: stdlib, consulpy.state.
"""

from __future__ import annotations

import base64
from typing import Any

from consulpy.state import DirEntry, HealthCheck, Node, NodeService, Session


def node_json(node: Node, datacenter: str) -> dict[str, Any]:
    return {
        "ID": node.id,
        "Node": node.node,
        "Address": node.address,
        "Datacenter": node.datacenter or datacenter,
        "TaggedAddresses": node.tagged_addresses,
        "Meta": node.meta,
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    }


def _proxy(svc: NodeService) -> dict[str, Any]:
    return svc.proxy if svc.proxy is not None else {"Mode": "", "MeshGateway": {}, "Expose": {}}


def _weights(svc: NodeService) -> dict[str, int]:
    return {"Passing": svc.weights.passing, "Warning": svc.weights.warning}


def service_json(svc: NodeService) -> dict[str, Any]:
    """The `Service` object inside a health result (structs.NodeService)."""
    out: dict[str, Any] = {
        "ID": svc.id,
        "Service": svc.service,
        "Tags": list(svc.tags),
        "Address": svc.address,
        "Meta": svc.meta,
        "Port": svc.port,
        "Weights": _weights(svc),
        "EnableTagOverride": svc.enable_tag_override,
        "Proxy": _proxy(svc),
        "Connect": svc.connect if svc.connect is not None else {},
        "PeerName": "",
        "CreateIndex": svc.create_index,
        "ModifyIndex": svc.modify_index,
    }
    if svc.kind:
        out["Kind"] = svc.kind
    if svc.tagged_addresses:
        out["TaggedAddresses"] = svc.tagged_addresses
    if svc.socket_path:
        out["SocketPath"] = svc.socket_path
    if svc.locality:
        out["Locality"] = svc.locality
    return out


def agent_service_json(svc: NodeService, datacenter: str) -> dict[str, Any]:
    """An entry of `/v1/agent/services` (api.AgentService)."""
    out: dict[str, Any] = {
        "ID": svc.id,
        "Service": svc.service,
        "Tags": list(svc.tags),
        "Meta": svc.meta,
        "Port": svc.port,
        "Address": svc.address,
        "Weights": _weights(svc),
        "EnableTagOverride": svc.enable_tag_override,
        "Datacenter": datacenter,
    }
    if svc.kind:
        out["Kind"] = svc.kind
    if svc.tagged_addresses:
        out["TaggedAddresses"] = svc.tagged_addresses
    if svc.socket_path:
        out["SocketPath"] = svc.socket_path
    if svc.proxy is not None:
        out["Proxy"] = svc.proxy
    if svc.connect is not None:
        out["Connect"] = svc.connect
    if svc.locality:
        out["Locality"] = svc.locality
    return out


def catalog_service_json(node: Node, svc: NodeService, datacenter: str) -> dict[str, Any]:
    """An entry of `/v1/catalog/service/:name` (structs.ServiceNode)."""
    return {
        "ID": node.id,
        "Node": node.node,
        "Address": node.address,
        "Datacenter": node.datacenter or datacenter,
        "TaggedAddresses": node.tagged_addresses,
        "NodeMeta": node.meta,
        "ServiceKind": svc.kind,
        "ServiceID": svc.id,
        "ServiceName": svc.service,
        "ServiceTags": list(svc.tags),
        "ServiceAddress": svc.address,
        "ServiceTaggedAddresses": svc.tagged_addresses or None,
        "ServiceWeights": _weights(svc),
        "ServiceMeta": svc.meta,
        "ServicePort": svc.port,
        "ServiceSocketPath": svc.socket_path,
        "ServiceEnableTagOverride": svc.enable_tag_override,
        "ServiceProxy": _proxy(svc),
        "ServiceConnect": svc.connect if svc.connect is not None else {},
        "ServiceLocality": svc.locality,
        "CreateIndex": svc.create_index,
        "ModifyIndex": svc.modify_index,
    }


def check_json(check: HealthCheck) -> dict[str, Any]:
    return {
        "Node": check.node,
        "CheckID": check.check_id,
        "Name": check.name,
        "Status": check.status,
        "Notes": check.notes,
        "Output": check.output,
        "ServiceID": check.service_id,
        "ServiceName": check.service_name,
        "ServiceTags": list(check.service_tags),
        "Type": check.type,
        "Interval": check.interval,
        "Timeout": check.timeout,
        "ExposedPort": check.exposed_port,
        "Definition": check.definition,
        "CreateIndex": check.create_index,
        "ModifyIndex": check.modify_index,
    }


def check_service_node_json(node: Node, svc: NodeService, checks: list[HealthCheck],
                            datacenter: str) -> dict[str, Any]:
    return {
        "Node": node_json(node, datacenter),
        "Service": service_json(svc),
        "Checks": [check_json(c) for c in checks],
    }


def kv_json(entry: DirEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "LockIndex": entry.lock_index,
        "Key": entry.key,
        "Flags": entry.flags,
        "Value": base64.b64encode(entry.value).decode("ascii") if entry.value else None,
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    }
    if entry.session:
        out["Session"] = entry.session
    return out


def session_json(session: Session) -> dict[str, Any]:
    return {
        "ID": session.id,
        "Name": session.name,
        "Node": session.node,
        "LockDelay": session.lock_delay,
        "Behavior": session.behavior,
        "TTL": session.ttl,
        "NodeChecks": list(session.node_checks),
        "ServiceChecks": [dict(c) for c in session.service_checks] or None,
        "CreateIndex": session.create_index,
        "ModifyIndex": session.modify_index,
    }
