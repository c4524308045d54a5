"""HTTP handlers for /v1/snapshot: GET saves the state as a snapshot archive, PUT restores one through Raft.

GET answers after a read barrier (everything committed before the request) unless `?stale`; the archive is
Consul's gzip'd tar of meta.json, state.bin and SHA256SUMS, with consulpy's own state image as state.bin.
PUT checks the whole archive (gzip, tar, checksums, metadata, image) before proposing a RestoreRequest, so a
bad one changes nothing; every failure is Consul's 500 with its text. Imports: stdlib, aiohttp (request type),
consulpy.http, consulpy.state (the restore goes through the Snapshot.Restore endpoint).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp.web import BaseRequest

from consulpy.http.errors import HTTPError
from consulpy.http.server import Reply, Route, read_body
from consulpy.state import StateStore
from consulpy.state.snapshot import MAX_ARCHIVE_BYTES, SnapshotMeta, check_restorable, read_archive, write_archive

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

# Consul streams the archive without a Content-Type, so Go's content sniffing names the gzip stream.
ARCHIVE_CONTENT_TYPE = "application/x-gzip"
# A dev agent is its own quorum from the start: one term, as a single-server Consul reports after electing itself.
DEV_TERM = 1


def _check_datacenter(request: BaseRequest, agent: Agent) -> None:
    dc = request.query.get("dc", "")
    if dc and dc != agent.datacenter:
        raise HTTPError(500, "No path to datacenter")


def _raft_term(agent: Agent) -> int:
    node = agent.raft.node if agent.raft is not None else None
    return node.term if node is not None else DEV_TERM


async def snapshot(request: BaseRequest, agent: Agent, tail: str) -> Any:
    _check_datacenter(request, agent)
    if request.method == "GET":
        return await _save(request, agent)
    return await _restore(request, agent)


async def _save(request: BaseRequest, agent: Agent) -> Reply:
    consensus = agent.consensus
    if "stale" not in request.query:
        await consensus.read_barrier()
    store = agent.store
    image = store.snapshot()
    index = store.last_index
    configuration_index, servers = consensus.configuration()
    meta = SnapshotMeta(index=index, term=_raft_term(agent), size=len(image),
                        servers=tuple((server.id, server.address, server.voter) for server in servers),
                        configuration_index=configuration_index)
    archive = await asyncio.get_running_loop().run_in_executor(None, write_archive, meta, image)
    headers = {"X-Consul-Index": str(max(index, 1)),
               "X-Consul-Knownleader": "true" if consensus.leader_address() else "false",
               "X-Consul-Lastcontact": str(consensus.last_contact_ms())}
    return Reply(raw=archive, content_type=ARCHIVE_CONTENT_TYPE, headers=headers)


def _too_large(size: int) -> HTTPError:
    return HTTPError(413, f"Request body({size} bytes) too large, max size: {MAX_ARCHIVE_BYTES} bytes.")


def _verified_image(archive: bytes) -> bytes:
    """The state image of an archive that passes every check a restore makes (SnapshotError otherwise)."""
    meta, image = read_archive(archive)
    check_restorable(meta, image, StateStore())
    return image


async def _restore(request: BaseRequest, agent: Agent) -> None:
    if "stale" in request.query:
        raise HTTPError(500, "stale not allowed for restore")
    # Snapshots can be far larger than any other request body; the limit keeps an image within one Raft entry.
    archive = await read_body(request, MAX_ARCHIVE_BYTES, _too_large)
    image = await asyncio.get_running_loop().run_in_executor(None, _verified_image, archive)
    await agent.operator.snapshot_restore(image)
    # As Consul's leader does after a restore: re-run its duties, so the catalog lists the servers again.
    agent.reconcile_soon()


ROUTES = [Route("/v1/snapshot", ("GET", "PUT"), snapshot)]
