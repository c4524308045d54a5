"""A part of the agent that runs one task of its own between `start()` and `stop()` (anti-entropy, the
coordinate sender). Imports: stdlib.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod


class BackgroundLoop(ABC):
    """Subclasses give `_run`; `stop()` cancels it and waits until it has ended."""

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @abstractmethod
    async def _run(self) -> None:
        """The part's own work, until cancelled."""
