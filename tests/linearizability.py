"""A linearizability checker for Consul KV histories as the Raft fault tests record them (`History`, `check`).

Each key is an independent register, so its operations are checked alone: Wing & Gong's search with Lowe's
list lifting, memoised on (operations linearized, register value) as Porcupine does. Imports: stdlib only.

Operations: `put(key, value) -> True`, `get(key) -> value | None` (None: absent), `cas(key, expected, new)
-> True | False`, `delete(key) -> True`. Values must be hashable, never None, and unique across all writes.

CAS reduction: the test client does CAS by reading ModifyIndex together with the value and sending
`?cas=<that index>` (0 when the key was absent). A unique value names the one write that produced it, so the
key's ModifyIndex still equals the index read exactly when the current value still equals the value read:
the model treats `cas(key, expected, new)` as "succeeds iff current value == expected", expected None meaning
"absent" (Consul's cas=0 only creates).

An operation of unknown outcome (`History.fail`: timeout, broken connection) may have taken effect at any
point after its invocation, or never: it has no completion time, any result, and need not be linearized.
An unknown read constrains nothing and is dropped.

On failure, `Result.explanation` names the key and the smallest stretch of its operations that no order
explains: it ends at the first result after which no linearization exists, and starts as late as the
operations from there on still fail whatever value the key held before them (absent or anything written
earlier), the writes still unfinished at its start being free to take effect anywhere in it.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

PUT, GET, CAS, DELETE = "put", "get", "cas", "delete"
_ARITY = {PUT: 1, GET: 0, CAS: 2, DELETE: 0}
UNKNOWN: Any = object()  # the result of an operation whose outcome is unknown
_UNOBSERVED: Any = object()  # the register holds a value that no operation of the history looks for
_NEVER = float("inf")


@dataclass(slots=True, frozen=True)
class Operation:
    """One client operation: `call`/`ret` are points on one clock (`ret` is inf when the outcome is unknown)."""

    client: Hashable
    op: str
    key: str
    args: tuple[Any, ...]
    call: float
    ret: float = _NEVER
    result: Any = UNKNOWN

    @property
    def known(self) -> bool:
        return self.ret != _NEVER

    def writes(self) -> Any:
        """The value this operation may leave in the register (None for delete); UNKNOWN for reads."""
        if self.op == PUT:
            return self.args[0]
        if self.op == CAS:
            return self.args[1]
        return None if self.op == DELETE else UNKNOWN

    def describe(self) -> str:
        args = ", ".join(repr(a) for a in (self.key, *self.args))
        outcome = repr(self.result) if self.known else "? (outcome unknown)"
        ret = f"{self.ret:g}" if self.known else "…"
        return f"[{self.call:g} → {ret}] client {self.client}: {self.op}({args}) -> {outcome}"


def validate(op: str, args: Sequence[Any]) -> None:
    if op not in _ARITY:
        raise ValueError(f"unknown operation {op!r}; expected one of {sorted(_ARITY)}")
    if len(args) != _ARITY[op]:
        raise ValueError(f"{op} takes {_ARITY[op]} argument(s) after the key, got {len(args)}")
    if (op == PUT and args[0] is None) or (op == CAS and args[1] is None):
        raise ValueError("written values must not be None (None means the key is absent)")


@dataclass(slots=True)
class _Pending:
    client: Hashable
    op: str
    key: str
    args: tuple[Any, ...]
    call: int
    call_time: float


class History:
    """Records operations from many threads on one logical clock, so real-time order is kept exactly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clock = itertools.count(1)
        self._tokens = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._done: list[Operation] = []
        self._times: dict[int, tuple[float, float]] = {}
        self._start = time.monotonic()

    def invoke(self, client: Hashable, op: str, key: str, args: Sequence[Any] = ()) -> int:
        """Call just before sending the request; returns the token to complete or fail it with."""
        validate(op, args)
        with self._lock:
            token = next(self._tokens)
            self._pending[token] = _Pending(client, op, key, tuple(args), next(self._clock),
                                            time.monotonic() - self._start)
        return token

    def complete(self, token: int, result: Any) -> None:
        """Call once the reply is in: put/delete → True, get → value or None, cas → True/False."""
        with self._lock:
            pending = self._pending.pop(token)
            ret = next(self._clock)
            self._done.append(Operation(pending.client, pending.op, pending.key, pending.args, pending.call, ret,
                                        result))
            self._times[pending.call] = (pending.call_time, time.monotonic() - self._start)

    def fail(self, token: int) -> None:
        """The outcome is unknown (timeout, broken connection): it may or may not have taken effect."""
        with self._lock:
            pending = self._pending.pop(token)
            self._done.append(Operation(pending.client, pending.op, pending.key, pending.args, pending.call))
            self._times[pending.call] = (pending.call_time, _NEVER)

    def operations(self) -> list[Operation]:
        """Everything recorded so far; operations still in flight count as unknown outcomes."""
        with self._lock:
            in_flight = [Operation(p.client, p.op, p.key, p.args, p.call) for p in self._pending.values()]
            return sorted(self._done + in_flight, key=lambda o: o.call)

    def seconds(self, op: Operation) -> tuple[float, float]:
        """When `op` was invoked and completed, in seconds since the history began (inf when unknown)."""
        with self._lock:
            return self._times.get(int(op.call), (0.0, _NEVER))


# --------------------------------------------------------------------------- the search


def _step(state: Any, op: Operation) -> tuple[bool, Any]:
    """The register model: whether `op` may return its result in `state`, and the state after it."""
    kind = op.op
    if kind == GET:
        return op.result == state, state
    if kind == CAS:
        expected, new = op.args
        if state == expected:
            return (not op.known or op.result is True), new
        return (not op.known or op.result is False), state
    return (not op.known or op.result is True), op.writes()


class _Entry:
    """A call or return event of a completed operation, in the doubly linked event list of Lowe's algorithm."""

    __slots__ = ("bit", "is_call", "match", "next", "op", "prev", "time")

    def __init__(self, op: Operation, bit: int, is_call: bool) -> None:
        self.op = op
        self.bit = bit
        self.is_call = is_call
        self.time = op.call if is_call else op.ret
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _event_list(ops: Sequence[Operation]) -> _Entry:
    """The events in time order (a call before a return at the same time: they overlap); returns the head."""
    events: list[_Entry] = []
    for index, op in enumerate(ops):
        call, ret = _Entry(op, 1 << index, True), _Entry(op, 1 << index, False)
        call.match = ret
        events += (call, ret)
    events.sort(key=lambda e: (e.time, not e.is_call))
    head = last = _Entry(ops[0], 0, False)
    for entry in events:
        last.next = entry
        entry.prev = last
        last = entry
    return head


def _lift(call: _Entry) -> None:
    for entry in (call, call.match):
        assert entry is not None and entry.prev is not None
        entry.prev.next = entry.next
        if entry.next is not None:
            entry.next.prev = entry.prev


def _unlift(call: _Entry) -> None:
    for entry in (call.match, call):
        assert entry is not None and entry.prev is not None
        entry.prev.next = entry
        if entry.next is not None:
            entry.next.prev = entry


def linearizable(ops: Sequence[Operation], initial: Iterable[Any] = (None,)) -> bool:
    """Whether one key's operations have a linearization starting from any of the `initial` register values."""
    return _search_key(ops, initial)[0]


def _search_key(ops: Sequence[Operation], initial: Iterable[Any] = (None,)) -> tuple[bool, float]:
    """The verdict, and on failure the latest completion time up to which some partial linearization got."""
    known = [op for op in ops if op.known]
    if not known:
        return True, _NEVER
    # Values no read returns and no CAS expects are indistinguishable to every operation: one state stands for all.
    observed = {op.result for op in known if op.op == GET} | {op.args[0] for op in ops if op.op == CAS}

    def canonical(value: Any) -> Any:
        return value if value is None or value in observed else _UNOBSERVED

    def canonical_op(op: Operation) -> Operation:
        if op.op == PUT:
            return replace(op, args=(canonical(op.args[0]),))
        if op.op == CAS:
            return replace(op, args=(op.args[0], canonical(op.args[1])))
        return op

    unknown = sorted((canonical_op(op) for op in ops if not op.known and op.op != GET), key=lambda o: o.call)
    search = _Search([canonical_op(op) for op in known], unknown)
    ok = any(search.run(state) for state in dict.fromkeys(canonical(value) for value in initial))
    return ok, search.furthest


class _Search:
    """Lowe's search over the completed operations, with operations of unknown outcome as optional repairs.

    An unknown write only matters where a completed read or CAS needs the register to hold something else than
    it does: anywhere else it can be moved later (past reads it does not change the verdict of) or dropped (when
    a write or the end comes first). So unknown operations are tried only as a run placed right before a
    completed get/CAS that fails in the current state: for a read or a successful CAS, a write of the value it
    needs (after the CASes that lead to what a CAS among them expects); for a failed CAS, any one write that
    changes the register. Unknown operations with the same effect are interchangeable once invoked, so
    they are used in call order only. The memo is keyed by (completed operations linearized, register value)
    and keeps, per key, the sets of unknown operations used: a state reached again with a superset of one of
    those sets has no option the earlier one lacked, so it is pruned.
    """

    def __init__(self, known: list[Operation], unknown: list[Operation]) -> None:
        self.head = _event_list(known)
        self.known = len(known)
        self.unknown = unknown
        self.seen: dict[tuple[int, Any], list[int]] = {}
        # The latest pending return any partial linearization got to: every prefix ending before it has one.
        self.furthest = -_NEVER
        # For each unknown operation, the bit of the previous one with the same effect (0 when it is the first).
        self.twin: list[int] = []
        self.writers: dict[Any, list[int]] = {}
        last: dict[tuple[str, tuple[Any, ...]], int] = {}
        for index, op in enumerate(unknown):
            effect = (CAS, op.args) if op.op == CAS else (PUT, (op.writes(),))
            self.twin.append(last.get(effect, 0))
            last[effect] = 1 << index
            self.writers.setdefault(op.writes(), []).append(index)

    def _fresh(self, done: int, state: Any, used: int) -> bool:
        earlier = self.seen.setdefault((done, state), [])
        if any(prior & ~used == 0 for prior in earlier):
            return False
        earlier.append(used)
        return True

    def _available(self, index: int, used: int, now: float) -> bool:
        twin = self.twin[index]
        return self.unknown[index].call <= now and not used & (1 << index) and (not twin or bool(used & twin))

    def _runs_to(self, state: Any, target: Any, used: int, now: float) -> list[int]:
        """Runs of unknown operations that take the register from `state` to `target`: a write of `target`,
        after the CASes that lead to the value a CAS among them expects."""
        runs: list[int] = []
        for index in self.writers.get(target, ()):
            if not self._available(index, used, now):
                continue
            op, bit = self.unknown[index], 1 << index
            if op.op != CAS or op.args[0] == state:
                runs.append(bit)
            else:
                runs += [bits | bit for bits in self._runs_to(state, op.args[0], used | bit, now)]
        return runs

    def _repairs(self, state: Any, used: int, op: Operation) -> list[tuple[int, Any]]:
        """The runs of unknown operations after which the completed read or CAS `op` holds: (used, value)."""
        now = self._now()
        if op.op == CAS and op.result is False:
            # Any one write that changes the register will do; CASes after it could as well follow `op`.
            moves = ((1 << i, _step(state, u)[1]) for i, u in enumerate(self.unknown) if self._available(i, used, now))
            return [(bit, after) for bit, after in moves if after != state]
        target = op.args[0] if op.op == CAS else op.result
        return [(bits, target) for bits in self._runs_to(state, target, used, now)]

    def _options(self, state: Any, used: int) -> Iterator[tuple[_Entry, int, Any]]:
        """The moves from this point: (completed call to linearize next, unknown operations used before it, value
        after it), for the calls ahead of the first pending return, in list order."""
        entry = self.head.next
        while entry is not None and entry.is_call:
            ok, after = _step(state, entry.op)
            if ok:
                yield entry, 0, after
            elif self.unknown and entry.op.op in (GET, CAS):
                for bits, value in self._repairs(state, used, entry.op):
                    yield entry, bits, _step(value, entry.op)[1]
            entry = entry.next
        if entry is not None:
            self.furthest = max(self.furthest, entry.time)

    def _now(self) -> float:
        """The time of the first pending return: every unknown operation invoked by then may act now."""
        entry = self.head.next
        while entry is not None and entry.is_call:
            entry = entry.next
        return entry.time if entry is not None else _NEVER

    def run(self, state: Any) -> bool:
        left, done = self.known, 0
        # One frame per point of the path: its remaining moves, and the register and unknowns used there.
        frames = [(self._options(state, 0), 0)]
        path: list[_Entry] = []
        while True:
            moves, used = frames[-1]
            for entry, bits, after in moves:
                if self._fresh(done | entry.bit, after, used | bits):
                    break
            else:
                frames.pop()
                if not path:
                    return False
                entry = path.pop()
                _unlift(entry)
                done, left = done & ~entry.bit, left + 1
                continue
            _lift(entry)
            path.append(entry)
            done, left = done | entry.bit, left - 1
            if not left:
                return True
            frames.append((self._options(after, used | bits), used | bits))


# --------------------------------------------------------------------------- results and explanations


@dataclass(slots=True, frozen=True)
class KeyFailure:
    """A key whose operations have no linearization, and the smallest stretch of them that shows it.

    `stretch` runs from the first operation of the stretch to `first_unexplained` (the result at which the
    history stops having any linearization); `earlier` are operations invoked before the stretch and not
    finished when it began, which may take effect at any point in it; `initial` are the values the key may hold
    when the stretch begins. Results after `first_unexplained`'s completion, and those of `earlier`, are not
    relied on.
    """

    key: str
    stretch: tuple[Operation, ...]
    earlier: tuple[Operation, ...]
    first_unexplained: Operation
    initial: tuple[Any, ...]

    def explain(self) -> str:
        values = ["absent" if v is None else repr(v) for v in self.initial]
        starts = ", ".join(values) if len(values) <= 6 else f"absent or any of {len(values) - 1} values written earlier"
        lines = [f"key {self.key!r}: not linearizable. No order of these {len(self.stretch)} operations, with the "
                 f"key starting as [{starts}], explains every result; the first result left unexplained is "
                 f"{self.first_unexplained.describe()}"]
        end = self.first_unexplained.ret
        lines += [f"  {op.describe()}" + ("  (completes later; not relied on)" if end < op.ret < _NEVER else "")
                  for op in self.stretch]
        looked_for = {op.result for op in self.stretch if op.op == GET} | {op.args[0] for op in self.stretch
                                                                            if op.op == CAS}
        shown = [op for op in self.earlier if op.writes() in looked_for]
        if self.earlier:
            lines.append(f"  and {len(self.earlier)} writes invoked earlier and unfinished when the stretch began, "
                         f"each of which may take effect at any point in it; those writing a value read or expected "
                         f"above:")
            lines += [f"  {op.describe()}" for op in shown]
        return "\n".join(lines)


@dataclass(slots=True)
class Result:
    """The verdict: `ok`, how much was checked, and for each failing key a readable explanation."""

    ok: bool
    keys: int
    operations: int
    failures: list[KeyFailure] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def explanation(self) -> str:
        if self.ok:
            return f"linearizable: {self.operations} operations on {self.keys} keys"
        return "\n\n".join(failure.explain() for failure in self.failures)


def check(history: History | Iterable[Operation]) -> Result:
    """Check every key's operations; a failing key is explained by its smallest failing stretch."""
    ops = history.operations() if isinstance(history, History) else list(history)
    by_key: dict[str, list[Operation]] = {}
    for op in sorted(ops, key=lambda o: o.call):
        by_key.setdefault(op.key, []).append(op)
    result = Result(True, len(by_key), len(ops))
    for key, key_ops in by_key.items():
        ok, furthest = _search_key(key_ops)
        if not ok:
            result.ok = False
            result.failures.append(_smallest_failure(key, key_ops, furthest))
    return result


def _relaxed(op: Operation) -> Operation:
    return replace(op, ret=_NEVER, result=UNKNOWN) if op.known else op


def _cut(ops: Sequence[Operation], end: float) -> list[Operation]:
    """The history as it stood at time `end`: later calls dropped, later completions unknown."""
    return [op if op.ret <= end else _relaxed(op) for op in ops if op.call <= end]


_Window = tuple[list[Operation], list[Operation], tuple[Any, ...]]


def _window(ops: Sequence[Operation], start: int, end: float) -> _Window:
    """The operations (in call order) from the `start`-th call to time `end`; the writes invoked before it and
    unfinished when it began; and the values the key may hold then (absent, or anything written before it)."""
    begin = ops[start].call
    earlier = [op for op in ops[:start] if op.ret > begin and op.op != GET]
    initial = tuple(dict.fromkeys([None, *(op.writes() for op in ops[:start] if _may_write(op))]))
    return [op for op in ops[start:] if op.call <= end], earlier, initial


def _fails(ops: Sequence[Operation], start: int, end: float) -> bool:
    stretch, earlier, initial = _window(ops, start, end)
    return not linearizable([*map(_relaxed, earlier), *_cut(stretch, end)], initial)


def _may_write(op: Operation) -> bool:
    return op.op != GET and not (op.op == CAS and op.result is False)


def _gallop(start: int, stop: int, holds: Callable[[int], bool]) -> int:
    """The index nearest `start`, walking towards `stop` (where `holds` is true), at which `holds` turns true:
    steps that double, then bisection, so a boundary near `start` costs few checks."""
    direction = 1 if stop >= start else -1
    passed, probe, step = start - direction, start, 1
    while probe != stop and not holds(probe):
        passed = probe
        probe = stop if abs(stop - probe) <= step else probe + direction * step
        step *= 2
    while abs(probe - passed) > 1:
        middle = passed + direction * (abs(probe - passed) // 2)
        if holds(middle):
            probe = middle
        else:
            passed = middle
    return probe


def _smallest_failure(key: str, ops: list[Operation], furthest: float) -> KeyFailure:
    """The shortest failing prefix ends at the first result no order explains (never before the furthest point
    the full search reached); the stretch then starts as late as the operations from there on still fail,
    whatever the key held before them."""
    returns = sorted(op.ret for op in ops if op.known)
    first = _gallop(bisect.bisect_left(returns, furthest), len(returns) - 1,
                    lambda i: not linearizable(_cut(ops, returns[i])))
    end = returns[first]
    invoked = sum(1 for op in ops if op.call <= end)
    start = _gallop(invoked - 1, 0, lambda i: _fails(ops, i, end))
    stretch, earlier, initial = _window(ops, start, end)
    unexplained = next(op for op in reversed(stretch) if op.ret == end)
    return KeyFailure(key, tuple(stretch), tuple(earlier), unexplained, initial)
