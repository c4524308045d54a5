"""A commit that wakes a crowd of parked queries keeps the cyclic GC out of their burst, and only theirs."""

from __future__ import annotations

import asyncio
import gc

from consulpy.endpoints.query import GC_PAUSE_WAKE, pause_gc_for_wake
from consulpy.state import StateStore, WatchSet
from consulpy.state.kv_ops import KVOp


def test_gc_is_paused_for_a_large_wake_and_enabled_after_it() -> None:
    async def scenario() -> list[bool]:
        seen = []
        pause_gc_for_wake(GC_PAUSE_WAKE - 1)
        seen.append(gc.isenabled())
        pause_gc_for_wake(GC_PAUSE_WAKE)
        seen.append(gc.isenabled())
        await asyncio.sleep(0)
        seen.append(gc.isenabled())
        return seen

    assert gc.isenabled()
    assert asyncio.run(scenario()) == [True, False, True]
    pause_gc_for_wake(GC_PAUSE_WAKE)  # outside a loop nothing is paused
    assert gc.isenabled()


def test_the_store_reports_how_many_it_wakes_before_waking_them() -> None:
    store = StateStore()
    fired: list[str] = []
    reported: list[tuple[int, list[str]]] = []
    store.kv_txn(1, [KVOp("set", "a", b"0"), KVOp("set", "b", b"0")])
    store.commit(1)
    store.before_wake = lambda count: reported.append((count, list(fired)))
    for name in ("a", "b"):
        watch = WatchSet()
        store.kv_get(name, watch)
        store.watch(watch, lambda name=name: fired.append(name))
    store.kv_txn(2, [KVOp("set", "a", b"1")])
    store.commit(2)
    assert reported == [(1, [])] and fired == ["a"]
    store.commit(3)
    assert reported == [(1, [])]
