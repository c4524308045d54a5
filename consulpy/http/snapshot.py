"""HTTP handlers for /v1/snapshot: GET saves the state as a snapshot archive, PUT restores one through Raft.

GET is the Snapshot.Save RPC (on the leader, unless `?stale`, so also from client agents); the archive is
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
from consulpy.http.params import query_options
from consulpy.http.server import Reply, Route, read_body
from consulpy.state import StateStore
from consulpy.state.snapshot import MAX_ARCHIVE_BYTES, check_restorable, read_archive

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent

# Consul streams the archive without a Content-Type, so Go's content sniffing names the gzip stream.
ARCHIVE_CONTENT_TYPE = "application/x-gzip"


def _check_datacenter(request: BaseRequest, agent: Agent) -> None:
    dc = request.query.get("dc", "")
    if dc and dc != agent.datacenter:
        raise HTTPError(500, "No path to datacenter")


async def snapshot(request: BaseRequest, agent: Agent, tail: str) -> Any:
    _check_datacenter(request, agent)
    if request.method == "GET":
        return await _save(request, agent)
    return await _restore(request, agent)


async def _save(request: BaseRequest, agent: Agent) -> Reply:
    meta, archive = await agent.operator.snapshot_save(query_options(request, agent.datacenter))
    headers = {"X-Consul-Index": str(meta.index), "X-Consul-Knownleader": str(meta.known_leader).lower(),
               "X-Consul-Lastcontact": str(meta.last_contact_ms)}
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
