"""The route table of the HTTP API: every module's routes, gathered in one place.

Imports: the HTTP handler modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp.web import BaseRequest

from consulpy.http import agent_api, catalog, coordinate, event, keyring, kv, operator, session, snapshot, txn
from consulpy.http.server import Reply, Route

if TYPE_CHECKING:
    from consulpy.agent.agent import Agent


async def root(request: BaseRequest, agent: Agent, tail: str) -> Any:
    if agent.config.ui:
        return Reply(status=301, headers={"Location": "/ui/"})
    return Reply(raw=b"Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent "
                     b"configuration and restart.", content_type="text/plain")


def all_routes() -> list[Route]:
    return [Route("/", ("GET",), root), *catalog.ROUTES, *kv.ROUTES, *session.ROUTES, *txn.ROUTES, *agent_api.ROUTES,
            *operator.ROUTES, *snapshot.ROUTES, *event.ROUTES, *coordinate.ROUTES,
            *keyring.ROUTES]
