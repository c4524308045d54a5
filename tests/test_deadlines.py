"""Parked queries' deadlines: one loop timer per slot, each wake-up called once and never before its deadline,
never when it left its slot first, and a new loop starting afresh."""

from __future__ import annotations

import asyncio
import time

from consulpy.endpoints.query import Deadlines


def test_each_wake_runs_once_not_before_its_deadline_one_timer_per_slot() -> None:
    async def scenario() -> tuple[list[tuple[str, float]], dict[str, float], int]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        fired: list[tuple[str, float]] = []
        start = loop.time()
        wanted = {"a": start + 0.05, "b": start + 0.05, "c": start + 0.12}
        before = len(loop._scheduled)  # type: ignore[attr-defined]  # asyncio's own loop: count its timers
        for name, at in wanted.items():
            deadlines.add(loop, at, lambda name=name: fired.append((name, loop.time())))
        timers = len(loop._scheduled) - before  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)
        return fired, wanted, timers

    fired, wanted, timers = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert timers == 2  # a and b share a slot
    assert sorted(name for name, _ in fired) == ["a", "b", "c"]
    for name, at in fired:
        assert at >= wanted[name] - 1e-9, name


def test_a_discarded_wake_is_never_called() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        fired: list[str] = []

        def kept() -> None:
            fired.append("kept")

        def left() -> None:
            fired.append("left")

        deadlines.add(loop, loop.time() + 0.03, kept)
        deadlines.discard(deadlines.add(loop, loop.time() + 0.03, left), left)
        await asyncio.sleep(0.2)
        return fired

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == ["kept"]


def test_a_new_loop_starts_with_no_slots() -> None:
    deadlines = Deadlines()
    at = time.monotonic() + 0.1  # asyncio's loop time is the monotonic clock: both runs use the same slot

    async def abandoned() -> None:
        deadlines.add(asyncio.get_running_loop(), at, lambda: None)  # its loop ends before the timer fires

    async def parked() -> bool:
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        deadlines.add(loop, at, lambda: woken.set_result(None))
        try:
            await asyncio.wait_for(woken, 2)
        except TimeoutError:
            return False
        return True

    asyncio.run(abandoned())
    assert asyncio.run(parked())
