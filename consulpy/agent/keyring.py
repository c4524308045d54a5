"""Cluster-wide gossip keyring operations (Consul's Internal.KeyringOperation over serf's KeyManager): list,
install, use and remove a key on every member of each gossip pool, through Serf's internal queries.

Each pool answers one `KeyringResponse` (Consul's JSON shape), WAN first; a member's failure, or a member
that never answered, is the pool's `Error` with serf's "N/M nodes reported failure|success" text, and
`keyring_errors` joins them as Consul's HTTP layer does. Imports: stdlib, consulpy.gossip.keyring,
consulpy.gossip.transport (go-multierror's text), consulpy.serf.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from consulpy.gossip.keyring import KeyringError, decode_key
from consulpy.gossip.transport import format_errors
from consulpy.serf import (
    INSTALL_KEY_QUERY,
    LIST_KEYS_QUERY,
    REMOVE_KEY_QUERY,
    USE_KEY_QUERY,
    Member,
    MemberStatus,
    decode_key_response,
)

# Consul's bound on `relay-factor` (serf itself takes any uint8).
MAX_RELAY_FACTOR = 5
RELAY_FACTOR_RANGE = f"Relay factor must be in range: [0, {MAX_RELAY_FACTOR}]"
LOCAL_ONLY_LIST = "local-only can only be set for list requests"
# Members still in the pool's memberlist count towards NumNodes (memberlist's NumMembers).
_COUNTED = (MemberStatus.ALIVE, MemberStatus.LEAVING)


class KeyringPool(Protocol):
    """What a gossip pool offers keyring operations (agent/gossip.py's GossipPool)."""

    wan: bool
    datacenter: str

    async def query(self, name: str, payload: bytes, timeout: float | None = None,
                    relay_factor: int = 0) -> list[tuple[str, bytes]]:
        """Serf.query in this pool: every (member, answer) that arrived before QueryDone."""
        ...

    def members(self) -> list[Member]: ...


class KeyringArgumentError(ValueError):
    """A request Consul refuses before any query goes out; `str()` is Consul's message."""


def parse_relay_factor(value: int) -> int:
    """Consul's ParseRelayFactor."""
    if not 0 <= value <= MAX_RELAY_FACTOR:
        raise KeyringArgumentError(RELAY_FACTOR_RANGE)
    return value


def _go_bytes(data: bytes) -> str:
    """A byte slice as Go's %v prints it: `[104 105]`."""
    return "[" + " ".join(str(b) for b in data) + "]"


def _raw_key(key: str) -> bytes:
    """The key's bytes as serf's KeyManager decodes them: Go's base64 errors raise, a wrong size does not
    (each member's keyring refuses it and says so in its answer)."""
    try:
        return decode_key(key)
    except KeyringError as exc:
        if str(exc).startswith("illegal base64 data"):
            raise
        return base64.b64decode(key.encode("utf-8", "surrogateescape").replace(b"\r", b"").replace(b"\n", b""))


def keyring_response(pool: KeyringPool, *, messages: dict[str, str] | None = None, keys: Counter[str] | None = None,
                     primary_keys: Counter[str] | None = None, num_nodes: int = 0, error: str = "") -> dict[str, Any]:
    """One pool's entry, as Consul's structs.KeyringResponse encodes (empty Partition, Messages, Error left out;
    map keys sorted as Go writes them)."""
    body: dict[str, Any] = {"WAN": pool.wan, "Datacenter": pool.datacenter, "Segment": ""}
    if messages:
        body["Messages"] = dict(sorted(messages.items()))
    body["Keys"] = dict(sorted((keys or Counter()).items()))
    body["PrimaryKeys"] = dict(sorted((primary_keys or Counter()).items()))
    body["NumNodes"] = num_nodes
    if error:
        body["Error"] = error
    return body


def keyring_errors(responses: Sequence[dict[str, Any]]) -> str:
    """Consul's keyringErrorsOrNil as go-multierror prints it, or "" when no pool failed."""
    errors: list[str] = []
    for response in responses:
        if not response.get("Error"):
            continue
        pool = "WAN" if response["WAN"] else f"{response['Datacenter']} (LAN)"
        errors.append(f"{pool} error: {response['Error']}")
        errors.extend(f"{node}: {message}" for node, message in response.get("Messages", {}).items())
    return format_errors(errors) if errors else ""


class KeyringOps:
    """Keyring operations over the agent's pools (LAN, and WAN on servers)."""

    def __init__(self, pools: Sequence[KeyringPool]) -> None:
        # Consul answers for the WAN pool first, then the LAN.
        self.pools = sorted(pools, key=lambda pool: not pool.wan)

    async def list_keys(self, relay_factor: int = 0, local_only: bool = False) -> list[dict[str, Any]]:
        pools = [p for p in self.pools if not p.wan] if local_only else self.pools
        return await self._run(pools, LIST_KEYS_QUERY, "", relay_factor)

    async def install(self, key: str, relay_factor: int = 0) -> list[dict[str, Any]]:
        return await self._run(self.pools, INSTALL_KEY_QUERY, key, relay_factor)

    async def use(self, key: str, relay_factor: int = 0) -> list[dict[str, Any]]:
        return await self._run(self.pools, USE_KEY_QUERY, key, relay_factor)

    async def remove(self, key: str, relay_factor: int = 0) -> list[dict[str, Any]]:
        return await self._run(self.pools, REMOVE_KEY_QUERY, key, relay_factor)

    async def _run(self, pools: Sequence[KeyringPool], query: str, key: str, relay_factor: int) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(self._in_pool(pool, query, key, relay_factor) for pool in pools)))

    async def _in_pool(self, pool: KeyringPool, query: str, key: str, relay_factor: int) -> dict[str, Any]:
        """serf's handleKeyRequest and streamKeyResp: one query, every member's answer tallied."""
        try:
            payload = _raw_key(key)
        except KeyringError as exc:
            return keyring_response(pool, error=str(exc))
        num_nodes = sum(1 for m in pool.members() if m.status in _COUNTED)
        answers = await pool.query(query, payload, relay_factor=relay_factor)
        messages: dict[str, str] = {}
        keys: Counter[str] = Counter()
        primary_keys: Counter[str] = Counter()
        failures = 0
        # serf stops reading once as many members answered as the pool had; later joiners are not counted.
        answers = answers[:num_nodes]
        for node, raw in answers:
            answer = decode_key_response(raw)
            if answer is None:
                messages[node] = f"Failed to decode key query response: {_go_bytes(raw)}"
                failures += 1
                continue
            if not answer.result:
                messages[node] = answer.message
                failures += 1
            elif answer.message:
                messages[node] = answer.message
            keys.update(answer.keys)
            primary_keys[answer.primary_key] += 1
        error = ""
        if failures:
            error = f"{failures}/{num_nodes} nodes reported failure"
        elif len(answers) != num_nodes:
            error = f"{len(answers)}/{num_nodes} nodes reported success"
        return keyring_response(pool, messages=messages, keys=keys, primary_keys=primary_keys, num_nodes=num_nodes,
                                error=error)
