"""A commit that wakes a crowd of parked queries keeps the cyclic GC out of their burst, and only theirs."""

from __future__ import annotations

import asyncio
import gc

from consulpy.endpoints.query import GC_PAUSE_WAKE, wake_without_gc
from consulpy.state import StateStore, WatchSet
from consulpy.state.kv_ops import KVOp


def parked_crowd_sees_gc(count: int) -> tuple[list[bool], bool]:
    """Park `count` tasks on one key, wake them with one commit through `wake_without_gc`: whether the GC
    was enabled in each woken task's step, and whether it is enabled once they have all run."""

    async def scenario() -> tuple[list[bool], bool]:
        store = StateStore()
        store.wake = wake_without_gc
        store.kv_txn(1, [KVOp("set", "hot", b"0")])
        store.commit(1)
        loop = asyncio.get_running_loop()
        seen: list[bool] = []

        async def parked() -> None:
            watch = WatchSet()
            store.kv_get("hot", watch)
            woken: asyncio.Future[None] = loop.create_future()
            store.watch(watch, lambda: woken.set_result(None))
            await woken
            seen.append(gc.isenabled())

        tasks = [asyncio.ensure_future(parked()) for _ in range(count)]
        await asyncio.sleep(0)
        store.kv_txn(2, [KVOp("set", "hot", b"1")])
        store.commit(2)
        await asyncio.gather(*tasks)
        await asyncio.sleep(0)
        return seen, gc.isenabled()

    return asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_large_wake_runs_every_woken_step_without_gc_and_enables_it_after() -> None:
    assert gc.isenabled()
    seen, after = parked_crowd_sees_gc(GC_PAUSE_WAKE)
    assert len(seen) == GC_PAUSE_WAKE and not any(seen)
    assert after and gc.isenabled()


def test_a_small_wake_leaves_gc_alone() -> None:
    seen, after = parked_crowd_sees_gc(GC_PAUSE_WAKE - 1)
    assert len(seen) == GC_PAUSE_WAKE - 1 and all(seen) and after


def test_outside_a_loop_the_callbacks_just_run() -> None:
    fired: list[int] = []
    wake_without_gc([lambda i=i: fired.append(i) for i in range(GC_PAUSE_WAKE)])
    assert fired == list(range(GC_PAUSE_WAKE)) and gc.isenabled()


def test_the_store_hands_each_woken_waiter_to_wake_once() -> None:
    store = StateStore()
    fired: list[str] = []
    batches: list[int] = []

    def wake(callbacks: list) -> None:
        batches.append(len(callbacks))
        for callback in callbacks:
            callback()

    store.wake = wake
    store.kv_txn(1, [KVOp("set", "a", b"0"), KVOp("set", "b", b"0")])
    store.commit(1)
    for names in (("a",), ("b",), ("a", "b")):
        watch = WatchSet()
        for name in names:
            store.kv_get(name, watch)
        store.watch(watch, lambda names=names: fired.append("+".join(names)))
    store.kv_txn(2, [KVOp("set", "a", b"1"), KVOp("set", "b", b"1")])
    store.commit(2)
    assert batches == [3] and sorted(fired) == ["a", "a+b", "b"]
    store.commit(3)
    assert batches == [3]
