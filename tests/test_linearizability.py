"""The linearizability checker on hand-made histories, on random histories of a real sequential register,
and on the same histories with one injected anomaly. A failing seed is printed and replays with SEED=<n>."""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from dataclasses import dataclass

import pytest

from tests.linearizability import CAS, DELETE, GET, PUT, History, Operation, check, linearizable, validate

SEEDS = [int(os.environ["SEED"])] if "SEED" in os.environ else list(range(12))


class Script:
    """Builds a history in the order its events happened: `a = s.call(...)` then `s.done(a, result)`."""

    def __init__(self) -> None:
        self.history = History()

    def call(self, client: str, op: str, key: str, *args: object) -> int:
        return self.history.invoke(client, op, key, args)

    def done(self, token: int, result: object) -> None:
        self.history.complete(token, result)

    def run(self, client: str, op: str, key: str, *args: object, result: object = True) -> None:
        self.done(self.call(client, op, key, *args), result)


# --------------------------------------------------------------------------- hand-made histories


def test_sequential_and_concurrent_histories_that_are_linearizable() -> None:
    s = Script()
    s.run("a", GET, "k", result=None)
    s.run("a", PUT, "k", "v1")
    s.run("b", GET, "k", result="v1")
    s.run("b", CAS, "k", "v1", "v2")
    s.run("a", CAS, "k", "v1", "v3", result=False)
    s.run("a", CAS, "k", None, "v4", result=False)
    # A read concurrent with a write may see either value, and two overlapping reads may disagree
    # as long as they are ordered consistently.
    write = s.call("a", PUT, "k", "v5")
    early = s.call("b", GET, "k")
    late = s.call("c", GET, "k")
    s.done(early, "v2")
    s.done(late, "v5")
    s.done(write, True)
    s.run("c", DELETE, "k")
    s.run("a", GET, "k", result=None)
    s.run("a", CAS, "k", None, "v6")
    s.run("b", GET, "other", result=None)
    result = check(s.history)
    assert result.ok, result.explanation
    assert (result.keys, result.operations) == (2, 13)
    assert result.explanation == "linearizable: 13 operations on 2 keys"


def test_stale_read_after_a_completed_write_fails() -> None:
    s = Script()
    s.run("a", PUT, "k", "v1")
    s.run("a", PUT, "k", "v2")
    s.run("b", GET, "k", result="v1")
    result = check(s.history)
    assert not result.ok
    (failure,) = result.failures
    assert failure.key == "k"
    assert [op.args for op in failure.stretch] == [("v2",), ()]
    assert failure.first_unexplained.result == "v1"
    text = result.explanation
    assert text.startswith("key 'k': not linearizable. No order of these 2 operations, with the key starting as "
                           "[absent, 'v1'], explains every result; the first result left unexplained is ")
    assert "client b: get('k') -> 'v1'" in text and "client a: put('k', 'v2') -> True" in text


def test_lost_acknowledged_write_fails() -> None:
    s = Script()
    s.run("a", PUT, "k", "v1")
    s.run("b", GET, "k", result=None)
    (failure,) = check(s.history).failures
    assert [(op.op, op.result) for op in failure.stretch] == [(PUT, True), (GET, None)]


def test_two_cas_winners_from_the_same_expected_value_fail() -> None:
    s = Script()
    s.run("a", PUT, "k", "v1")
    first = s.call("a", CAS, "k", "v1", "a1")
    second = s.call("b", CAS, "k", "v1", "b1")
    s.done(first, True)
    s.done(second, True)
    (failure,) = check(s.history).failures
    assert sorted(op.args[1] for op in failure.stretch if op.op == CAS) == ["a1", "b1"]
    assert all(op.op == CAS for op in failure.stretch)


def test_reading_a_value_before_its_write_was_invoked_fails() -> None:
    s = Script()
    s.run("b", GET, "k", result="v1")
    s.run("a", PUT, "k", "v1")
    (failure,) = check(s.history).failures
    assert [op.op for op in failure.stretch] == [GET] and failure.initial == (None,)


def test_unknown_outcome_writes_read_later_or_never_are_fine() -> None:
    s = Script()
    s.run("a", PUT, "k", "v1")
    s.history.fail(s.call("a", PUT, "k", "v2"))
    s.run("b", GET, "k", result="v1")
    s.run("b", GET, "k", result="v2")
    s.history.fail(s.call("c", PUT, "k", "never-read"))
    s.history.fail(s.call("c", DELETE, "j"))
    s.history.fail(s.call("c", CAS, "j", None, "x"))
    s.history.fail(s.call("c", GET, "j"))
    s.run("a", GET, "k", result="v2")
    s.call("d", PUT, "k", "still-in-flight")
    result = check(s.history)
    assert result.ok, result.explanation
    # The unknown write may take effect late, but not before it was invoked.
    s2 = Script()
    s2.run("b", GET, "k", result="v2")
    s2.history.fail(s2.call("a", PUT, "k", "v2"))
    assert not check(s2.history).ok


def test_the_explanation_lists_unfinished_earlier_writes() -> None:
    s = Script()
    s.run("a", PUT, "k", "v1")
    s.history.fail(s.call("c", PUT, "k", "v9"))
    s.run("a", PUT, "k", "v2")
    s.run("b", GET, "k", result="v1")
    (failure,) = check(s.history).failures
    assert [op.args for op in failure.stretch] == [("v2",), ()]
    assert [op.args for op in failure.earlier] == [("v9",)] and set(failure.initial) == {None, "v1", "v9"}
    lines = failure.explain().split("\n")
    assert lines[-1] == ("  and 1 writes invoked earlier and unfinished when the stretch began, each of which may "
                         "take effect at any point in it; those writing a value read or expected above:")


def test_a_failed_cas_is_explained_only_by_an_unknown_write() -> None:
    s = Script()
    s.run("a", PUT, "k", "v1")
    s.history.fail(s.call("b", PUT, "k", "v2"))
    s.run("a", CAS, "k", "v1", "v3", result=False)
    assert check(s.history).ok
    assert not linearizable([op for op in s.history.operations() if op.known])


def test_recording_from_threads_against_a_locked_register() -> None:
    history = History()
    register: dict[str, str] = {}
    lock = threading.Lock()

    def client(name: str, seed: int) -> None:
        rng = random.Random(seed)
        for i in range(200):
            key = f"k{rng.randrange(3)}"
            kind = rng.choice((PUT, GET, CAS, DELETE))
            args: tuple[object, ...] = {PUT: (f"{name}-{i}",), GET: (), DELETE: (),
                                        CAS: (register.get(key), f"{name}-{i}")}[kind]
            token = history.invoke(name, kind, key, args)
            with lock:
                if kind == GET:
                    outcome: object = register.get(key)
                elif kind == CAS:
                    outcome = register.get(key) == args[0]
                    if outcome:
                        register[key] = str(args[1])
                elif kind == PUT:
                    register[key], outcome = str(args[0]), True
                else:
                    register.pop(key, None)
                    outcome = True
            if rng.random() < 0.05:
                history.fail(token)
            else:
                history.complete(token, outcome)

    threads = [threading.Thread(target=client, args=(f"c{n}", n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    result = check(history)
    assert result.ok and result.operations == 1600, result.explanation
    first = history.operations()[0]
    started, finished = history.seconds(first)
    assert 0 <= started <= finished or finished == float("inf")


def test_bad_operations_are_refused() -> None:
    for op, args in (("incr", ()), (PUT, ()), (CAS, ("a",)), (PUT, (None,)), (CAS, ("a", None)), (GET, ("x",))):
        with pytest.raises(ValueError):
            validate(op, args)


# --------------------------------------------------------------------------- random histories


def brute_force(ops: list[Operation]) -> bool:
    """Every subset of the unknown writes, in every order that keeps real-time order, from an absent key."""
    known = [op for op in ops if op.known]
    unknown = [op for op in ops if not op.known and op.op != GET]
    for size in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, size):
            for order in itertools.permutations([*known, *chosen]):
                if any(later.ret < earlier.call for i, earlier in enumerate(order) for later in order[i + 1:]):
                    continue
                state: object = None
                for op in order:
                    if op.op == GET and op.result != state:
                        break
                    if op.op == CAS:
                        if (state == op.args[0]) != op.result and op.known:
                            break
                        state = op.args[1] if state == op.args[0] else state
                    elif op.op != GET:
                        state = op.writes()
                else:
                    return True
    return False


def small_random_history(rng: random.Random, size: int) -> list[Operation]:
    """Arbitrary results (mostly wrong), unique written values, overlapping intervals, some unknown outcomes."""
    written: list[str] = []
    ops = []
    for n in range(size):
        kind = rng.choice((PUT, GET, CAS, DELETE, PUT, GET))
        call = rng.uniform(0, 10)
        args: tuple[object, ...] = {PUT: (f"v{n}",), CAS: (rng.choice([None, *written]), f"v{n}")}.get(kind, ())
        written += [f"v{n}"] if kind in (PUT, CAS) else []
        result = {GET: rng.choice([None, *written, "phantom"]), CAS: rng.random() < 0.5}.get(kind, True)
        if rng.random() < 0.3:
            ops.append(Operation("c", kind, "k", args, call))
        else:
            ops.append(Operation("c", kind, "k", args, call, call + rng.uniform(0, 4), result))
    return ops


def test_agrees_with_brute_force_on_small_histories() -> None:
    rng = random.Random(SEEDS[0])
    verdicts = []
    for _ in range(600):
        ops = small_random_history(rng, rng.randint(1, 6))
        verdict = linearizable(ops)
        assert verdict == brute_force(ops), "\n".join(op.describe() for op in ops)
        verdicts.append(verdict)
        if not verdict:
            (failure,) = check(ops).failures
            assert failure.first_unexplained in failure.stretch
            assert not brute_force([*failure.stretch, *failure.earlier]) or len(failure.initial) > 1
    assert 100 < sum(verdicts) < 500


@dataclass
class Planned:
    client: int
    op: str
    key: str
    call: float
    at: float  # the linearization point
    ret: float
    args: tuple[object, ...] = ()
    result: object = None
    known: bool = True
    applied: bool = True


def generate(rng: random.Random, ops: int, keys: int, clients: int = 8, unknown: float = 0.03) -> list[Operation]:
    """Clients issue operations back to back; each takes effect at a random point inside its interval on a
    sequential register, which computes its result. Unknown outcomes are writes that took effect or not."""
    plans: list[Planned] = []
    for client in range(clients):
        now = rng.random()
        for _ in range(ops // clients):
            at = now + rng.expovariate(2.0)
            ret = at + rng.expovariate(2.0)
            kind = rng.choices((PUT, GET, CAS, DELETE), (4, 5, 3, 1))[0]
            plans.append(Planned(client, kind, f"k{rng.randrange(keys)}", now, at, ret,
                                 known=rng.random() >= unknown))
            now = ret + rng.expovariate(4.0)
    state: dict[str, object] = {}
    history: dict[str, list[object]] = {}
    for n, plan in enumerate(sorted(plans, key=lambda p: p.at)):
        current = state.get(plan.key)
        plan.applied = plan.known or rng.random() < 0.5
        if plan.op == PUT:
            plan.args, plan.result = (f"v{n}",), True
        elif plan.op == GET:
            plan.result = current
        elif plan.op == DELETE:
            plan.result = True
        else:
            seen = history.get(plan.key, [])
            expected = current if rng.random() < 0.6 or not seen else rng.choice([None, *seen])
            plan.args, plan.result = (expected, f"v{n}"), expected == current
        if plan.applied and plan.op != GET and (plan.op != CAS or plan.result):
            value = plan.args[-1] if plan.op != DELETE else None
            state[plan.key] = value
            history.setdefault(plan.key, []).append(value)
    return [Operation(p.client, p.op, p.key, p.args, p.call, p.ret, p.result) if p.known
            else Operation(p.client, p.op, p.key, p.args, p.call) for p in plans]


def inject(rng: random.Random, ops: list[Operation]) -> Operation:
    """Add one operation that no linearization can explain; returns it."""
    writes = [op for op in ops if op.known and (op.op in (PUT, DELETE) or (op.op == CAS and op.result is True))]
    kind = rng.choice(("phantom", "future", "stale", "second-cas"))
    if kind == "stale":
        pairs = [(w, p) for w in writes if w.op != DELETE for p in writes if p.key == w.key and p.call > w.ret]
        if pairs:
            old, newer = rng.choice(pairs)
            return Operation("intruder", GET, old.key, (), newer.ret + 0.01, newer.ret + 0.02, old.writes())
    if kind == "second-cas":
        wins = [op for op in writes if op.op == CAS and op.args[0] is not None]
        if wins:
            won = rng.choice(wins)
            return Operation("intruder", CAS, won.key, (won.args[0], "intruder"), won.ret + 0.01, won.ret + 0.02,
                             True)
    if kind == "future":
        puts = [op for op in writes if op.op == PUT]
        if puts:
            put = rng.choice(puts)
            return Operation("intruder", GET, put.key, (), put.call - 0.02, put.call - 0.01, put.args[0])
    some = rng.choice(ops)
    return Operation("intruder", GET, some.key, (), some.call, some.call + 0.01, "phantom")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_histories_pass_and_one_anomaly_fails(seed: int) -> None:
    rng = random.Random(seed)
    ops = generate(rng, ops=1200, keys=rng.choice((1, 3, 20)), clients=rng.choice((3, 8)))
    result = check(ops)
    assert result.ok, f"seed {seed}: {result.explanation}"
    bad = inject(rng, ops)
    broken = check([*ops, bad])
    assert not broken.ok, f"seed {seed}: injected {bad.describe()} was not caught"
    (failure,) = broken.failures
    assert failure.key == bad.key and failure.first_unexplained == bad, f"seed {seed}: {broken.explanation}"
    assert bad in failure.stretch and len(failure.stretch) < 60, f"seed {seed}: {broken.explanation}"


def test_ten_thousand_operations_on_fifty_keys_in_a_few_seconds() -> None:
    ops = generate(random.Random(7), ops=10_000, keys=50, clients=8)
    started = time.monotonic()
    result = check(ops)
    elapsed = time.monotonic() - started
    assert result.ok and result.operations == 10_000 and result.keys == 50, result.explanation
    assert elapsed < 5.0, f"check took {elapsed:.2f}s"
