"""HTTP handler for PUT /v1/txn: decode the operations, enforce Consul's limits, and answer 200 with the
results or 409 with the errors of a rolled-back transaction.

Only KV operations are supported; Node/Service/Check operations are refused with 400. A transaction
without write verbs is answered from this server's store (stale/consistent honoured, no blocking).
Imports: stdlib, aiohttp (request type), consulpy.endpoints, consulpy.http, consulpy.state.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from aiohttp.web import BaseRequest

from consulpy.endpoints.txn import TxnResponse, is_read_only
from consulpy.http.decode import ANY, STR, UINT, DecodeError, Schema, decode_object, obj, parse_json
from consulpy.http.errors import HTTPError, bad_request
from consulpy.http.params import query_options
from consulpy.http.render import kv_json
from consulpy.http.server import Reply, Route, read_body
from consulpy.state import KVOp
from consulpy.state.kv_ops import go_quote

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

MAX_TXN_OPS = 64

KV_TXN_OP = Schema("KVTxnOp", {
    "Verb": STR, "Key": STR, "Value": ANY, "Flags": UINT, "Index": UINT, "Session": STR, "Namespace": STR,
    "Partition": STR,
})
TXN_OP = Schema("TxnOp", {"KV": obj(KV_TXN_OP), "Node": ANY, "Service": ANY, "Check": ANY})

_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_NEWLINES = b"\r\n"


def _base64_error_offset(data: bytes) -> int | None:
    """Where Go's base64.StdEncoding.Decode rejects `data` (CR/LF ignored), or None when it is valid."""
    si, n = 0, len(data)
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                return None if j == 0 else si - j
            char = data[si]
            si += 1
            if char in _B64_ALPHABET:
                j += 1
                continue
            if char in _NEWLINES:
                continue
            if char != ord("=") or j < 2:
                return si - 1
            if j == 2:
                while si < n and data[si] in _NEWLINES:
                    si += 1
                if si == n:
                    return n
                if data[si] != ord("="):
                    return si - 1
                si += 1
            while si < n and data[si] in _NEWLINES:
                si += 1
            return si if si < n else None
    return None


def decode_value(value: Any) -> bytes | None:
    """A KV op's `Value`: JSON null, or base64 text decoded as Go decodes a []byte field."""
    if value is None:
        return None
    if not isinstance(value, str):
        kind = {bool: "bool", list: "array", dict: "object"}.get(type(value), "number")
        raise DecodeError(f"json: cannot unmarshal {kind} into Go struct field KVTxnOp.KV.Value of type []uint8")
    data = value.encode()
    offset = _base64_error_offset(data)
    if offset is not None:
        raise DecodeError(f"illegal base64 data at input byte {offset}")
    try:
        return base64.b64decode(data.translate(None, _NEWLINES), validate=True)
    except binascii.Error:
        raise DecodeError("illegal base64 data at input byte 0") from None


def decode_ops(body: bytes, kv_max_value_size: int) -> list[KVOp]:
    """The request body as KV operations, refusing what Consul refuses (400 decode, 413 size/count)."""
    try:
        data = parse_json(body)
        if data is None:
            data = []
        if not isinstance(data, list):
            raise DecodeError("json: cannot unmarshal object into Go value of type api.TxnOps")
        decoded = []
        for item in data:
            op = decode_object(item if item is not None else {}, TXN_OP)
            if "KV" in op:
                op["KV"]["Value"] = decode_value(op["KV"].get("Value"))
            decoded.append(op)
    except DecodeError as exc:
        raise bad_request(f"Failed to parse body: {exc}") from None
    if len(decoded) > MAX_TXN_OPS:
        raise HTTPError(413, f"Transaction contains too many operations ({len(decoded)} > {MAX_TXN_OPS})")
    ops: list[KVOp] = []
    for op in decoded:
        if any(kind in op for kind in ("Node", "Service", "Check")):
            raise bad_request("Failed to parse body: Node, Service and Check operations are not supported; "
                              "only KV operations are")
        kv = op.get("KV")
        if kv is None:
            continue
        value = kv["Value"]
        if value is not None and len(value) > kv_max_value_size:
            raise HTTPError(413, f"Value for key {go_quote(kv.get('Key', ''))} is too large "
                                 f"({len(value)} > {kv_max_value_size} bytes)")
        ops.append(KVOp(kv.get("Verb", ""), kv.get("Key", ""), value, kv.get("Flags", 0), kv.get("Index", 0),
                        kv.get("Session", "")))
    return ops


def txn_json(result: TxnResponse) -> dict[str, Any]:
    if result.errors:
        return {"Results": None, "Errors": [{"OpIndex": pos, "What": what} for pos, what in result.errors]}
    return {"Results": [{"KV": kv_json(entry)} for entry in result.results], "Errors": None}


async def txn(request: BaseRequest, agent: Agent, tail: str) -> Any:
    limits = agent.config.limits
    max_len = max(limits.txn_max_req_len, limits.kv_max_value_size)

    def too_large(size: int) -> HTTPError:
        return HTTPError(413, f"Request body too large, max size: {max_len} bytes")

    ops = decode_ops(await read_body(request, max_len, too_large), limits.kv_max_value_size)
    headers: dict[str, str] = {}
    if is_read_only(ops):
        meta, result = await agent.txn.read(query_options(request, agent.datacenter), ops)
        headers = {"X-Consul-Knownleader": "true" if meta.known_leader else "false",
                   "X-Consul-Lastcontact": str(meta.last_contact_ms)}
    else:
        dc = request.query.get("dc", "")
        if dc and dc != agent.datacenter:
            raise HTTPError(500, "No path to datacenter")
        result = await agent.txn.apply(ops)
    return Reply(txn_json(result), status=409 if result.errors else 200, headers=headers)


ROUTES = [
    Route("/v1/txn", ("PUT",), txn),
]
