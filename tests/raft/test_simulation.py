"""Seeded simulation of 3- and 5-node Raft clusters with the §1.9 invariants, and the mutation check.

SEEDS=<n> raises the number of seeds (nightly); SEED=<n> replays one seed exactly.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from consulpy.raft import Mutations
from tests.raft.sim import Sim, Violation

SEEDS = int(os.environ.get("SEEDS", "500"))
MUTANT_SEEDS = {"commit_old_term": 1000}


def _seeds() -> range:
    one = os.environ.get("SEED")
    return range(int(one), int(one) + 1) if one else range(SEEDS)


def test_unmutated_core_passes_every_seed() -> None:
    failures = []
    seen: Counter[str] = Counter()
    for seed in _seeds():
        sim = Sim(seed)
        try:
            sim.run()
        except Violation as exc:
            print(exc)
            failures.append(str(exc))
        seen.update(sim.stats)
    assert not failures, failures[:5]
    if len(_seeds()) >= 50:
        exercised = ("SNAPSHOT", "TIMEOUT_NOW", "READ_INDEX", "reads", "crashes", "crash-persist-1", "crash-persist-2",
                     "conf-changes-applied", "compactions", "snapshots-installed", "partitions", "pauses")
        assert all(seen[k] > 0 for k in exercised), seen


def test_a_seed_replays_exactly() -> None:
    runs = []
    for _ in range(2):
        sim = Sim(7)
        sim.run()
        runs.append([(n.id, n.raft.term if n.raft else None, tuple(n.fsm)) for n in sim.nodes.values()])
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    "mutant", ["commit_old_term", "volatile_vote", "truncate_always", "no_prevote_checkquorum", "unconfirmed_reads"]
)
def test_each_mutant_is_caught(mutant: str) -> None:
    """Fig. 8 needs several crashes in a row, so its mutant gets the 1000-seed budget of reliability.md A2."""
    budget = MUTANT_SEEDS.get(mutant, 300)
    for seed in range(budget):
        try:
            Sim(seed, Mutations(**{mutant: True})).run()
        except Violation as exc:
            print(f"{mutant} caught: {exc}")
            return
    pytest.fail(f"mutant {mutant} survived {budget} seeds")
