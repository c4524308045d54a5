"""HTTP handler for /v1/operator/keyring: GET lists the gossip keys of every pool, POST installs a key,
PUT makes it primary, DELETE removes it (body `{"Key": "..."}`), with `relay-factor` and `local-only`.

Checks come in Consul's order (body, relay-factor, local-only) with its texts; a pool's failure is a 500
carrying Consul's go-multierror list of pool errors and member messages. Imports: stdlib, aiohttp (request
type), consulpy.agent.keyring, consulpy.gostrconv, consulpy.http (the catalog's body limit), consulpy.state.kv_ops
(Go quoting).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp.web import BaseRequest

from consulpy.agent.keyring import LOCAL_ONLY_LIST, KeyringArgumentError, keyring_errors, parse_relay_factor
from consulpy.gostrconv import parse_bool
from consulpy.http.catalog import MAX_BODY, _too_large
from consulpy.http.decode import BOOL, STR, DecodeError, Kind, Schema, decode_body
from consulpy.http.errors import HTTPError, bad_request
from consulpy.http.server import Route, read_body
from consulpy.state.kv_ops import go_quote

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

_UINT8 = Kind("uint", go="uint8")
KEYRING_ARGS = Schema("keyringArgs", {"Key": STR, "Token": STR, "RelayFactor": _UINT8, "LocalOnly": BOOL})
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = (1 << 63) - 1


def _go_atoi(text: str) -> int:
    """Go's strconv.Atoi, raising ValueError with its message."""
    if not _GO_INT.fullmatch(text):
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return value


async def _arguments(request: BaseRequest) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if request.method in ("POST", "PUT", "DELETE"):
        try:
            args = decode_body(await read_body(request, MAX_BODY, _too_large), KEYRING_ARGS)
        except DecodeError as exc:
            raise bad_request(f"Request decode failed: {exc}") from None
        relay = args.get("RelayFactor", 0)
        if relay > 255:
            raise bad_request(f"Request decode failed: json: cannot unmarshal number {relay} into Go struct field "
                              "keyringArgs.RelayFactor of type uint8")
    query = request.query
    if relay_text := query.get("relay-factor", ""):
        try:
            args["RelayFactor"] = parse_relay_factor(_go_atoi(relay_text))
        except KeyringArgumentError as exc:
            raise bad_request(f"Invalid relay-factor: {exc}") from None
        except ValueError as exc:
            raise bad_request(f"Error parsing relay factor: {exc}") from None
    if local_text := query.get("local-only", ""):
        local_only = parse_bool(local_text)
        if local_only is None:
            raise bad_request(f"Error parsing local-only: strconv.ParseBool: parsing {go_quote(local_text)}: "
                              "invalid syntax")
        if local_only and request.method != "GET":
            raise bad_request(f"Invalid use of local-only: {LOCAL_ONLY_LIST}")
        args["LocalOnly"] = local_only
    return args


async def keyring(request: BaseRequest, agent: Agent, tail: str) -> Any:
    args = await _arguments(request)
    relay_factor: int = args.get("RelayFactor", 0)
    key: str = args.get("Key", "")
    ops = agent.keyring_ops
    if request.method == "GET":
        responses = await ops.list_keys(relay_factor, bool(args.get("LocalOnly", False)))
    elif args.get("LocalOnly"):
        # Only a body can get here with it set; Consul's keyring RPC refuses it.
        raise HTTPError(500, "argument error: LocalOnly can only be used for List operations")
    elif request.method == "POST":
        responses = await ops.install(key, relay_factor)
    elif request.method == "PUT":
        responses = await ops.use(key, relay_factor)
    else:
        responses = await ops.remove(key, relay_factor)
    errors = keyring_errors(responses)
    if errors:
        raise HTTPError(500, errors)
    return responses if request.method == "GET" else None


ROUTES = [Route("/v1/operator/keyring", ("GET", "POST", "PUT", "DELETE"), keyring)]
