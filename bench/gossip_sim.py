"""Benchmark: failure-detection and dissemination times of the gossip core, 100 simulated members with
memberlist's LAN defaults, at 0 % and 10 % packet loss, next to memberlist's model (performance.md 2.7, G3).

Each trial crashes one member and, at the same moment, broadcasts a user message from another; it
records when the first member declares the crash (declared dead), when the last live member has
(every member knows), and when the message has reached every live member. Seeded and simulated
(tests/gossip/sim.py), so it measures protocol timing, not this machine. `python -m bench.gossip_sim [trials]`.
Imports: stdlib, consulpy.gossip, tests.gossip.sim.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field

from bench.common import Figure, format_figure
from consulpy.gossip import MemberEventKind
from consulpy.gossip.state import push_pull_interval
from tests.gossip.sim import Sim

MEMBERS = 100
TRIALS = 30
CRASHES_PER_RUN = 10
TRIAL_SECONDS = 25.0
# memberlist's model at 100 members (performance.md 2.7): declared dead p50 / p99, everyone knows p50 / p99;
# the Serf convergence model (G3 / reliability.md 1.6): 99.99 % reached at 0 % and 10 % loss.
MODEL_DECLARED = (9.7, 13.1)
MODEL_ALL_KNOW = (10.4, 14.0)
MODEL_SPREAD = {0.0: 2.0, 0.1: 2.2}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Samples:
    declared: list[float] = field(default_factory=list)  # crash -> first member declares it failed
    all_know: list[float] = field(default_factory=list)  # crash -> the last live member has too
    spread: list[float] = field(default_factory=list)  # broadcast -> the last live member has it
    pairs: int = 0  # (member, broadcast) pairs
    pairs_in_3s: int = 0


def _run(seed: int, loss: float, crashes: int, samples: Samples) -> None:
    pick = random.Random(seed)
    sim = Sim(seed, MEMBERS, loss=loss)
    sim.join_all()
    if not sim.run_until_true(sim.converged, push_pull_interval(sim.config.push_pull_interval, MEMBERS) + 15.0):
        raise RuntimeError(f"{sim.describe()}: join did not converge")
    sim.run_until(sim.now + 10.0)
    sent: dict[bytes, float] = {}
    for trial in range(crashes):
        victim, origin = pick.sample(sorted(m.name for m in sim.live()), 2)
        start = sim.now
        payload = f"bench-{seed}-{trial}".encode()
        sim.crash(victim)
        sim.broadcast(origin, payload)
        sent[payload] = start
        sim.run_until(start + TRIAL_SECONDS)
        seen = [d.at for d in sim.declared if d.subject == victim and d.kind == MemberEventKind.FAIL]
        if len({d.observer for d in sim.declared if d.subject == victim}) < len(sim.live()):
            raise RuntimeError(f"{sim.describe()}: {victim} not declared failed by all in {TRIAL_SECONDS:g} s")
        samples.declared.append(min(seen) - start)
        samples.all_know.append(max(seen) - start)
    # A broadcast that gossip missed someone with reaches them at a push-pull: wait for those too.
    if not sim.run_until_true(lambda: all(p in m.received for p in sent for m in sim.live()), sim.now + 200.0):
        raise RuntimeError(f"{sim.describe()}: a broadcast never reached everyone")
    for payload, start in sent.items():
        arrivals = [m.received[payload] - start for m in sim.live()]
        samples.spread.append(max(arrivals))
        samples.pairs += len(arrivals)
        samples.pairs_in_3s += sum(1 for t in arrivals if t <= 3.0)


def main(trials: int = TRIALS) -> list[Figure]:
    figures: list[Figure] = []
    for loss in (0.0, 0.1):
        samples = Samples()
        seed = 0
        while len(samples.declared) < trials:
            _run(seed, loss, min(CRASHES_PER_RUN, trials - len(samples.declared)), samples)
            seed += 1
        tag = f"gossip {MEMBERS} members {loss:.0%} loss"
        figures += [
            (f"{tag}: crash declared dead p50 s (peer: memberlist model)", percentile(samples.declared, 50),
             "model p99 + 20 %", MODEL_DECLARED[0]),
            (f"{tag}: crash declared dead p99 s (peer: memberlist model)", percentile(samples.declared, 99),
             f"<= {MODEL_DECLARED[1] * 1.2:.1f} s", MODEL_DECLARED[1]),
            (f"{tag}: every member knows p50 s (peer: memberlist model)", percentile(samples.all_know, 50),
             "declared + <= 2 s", MODEL_ALL_KNOW[0]),
            (f"{tag}: every member knows p99 s (peer: memberlist model)", percentile(samples.all_know, 99),
             f"<= {MODEL_ALL_KNOW[1] * 1.2:.1f} s", MODEL_ALL_KNOW[1]),
            (f"{tag}: broadcast reaches all p50 s (peer: Serf model 99.99 %)", percentile(samples.spread, 50),
             "~2 s", MODEL_SPREAD[loss]),
            (f"{tag}: broadcast reaches all p99 s (peer: Serf model 99.99 %)", percentile(samples.spread, 99),
             "<= 3 s, push-pull for the rare member gossip misses", MODEL_SPREAD[loss]),
            (f"{tag}: members a broadcast had not reached at 3 s, per 10,000",
             10_000 * (samples.pairs - samples.pairs_in_3s) / samples.pairs, "<= 1 (99.99 %, reliability.md A3)"),
        ]
        print(f"  {tag}: {len(samples.declared)} trials", flush=True)
    return figures


if __name__ == "__main__":
    for figure in main(int(sys.argv[1]) if len(sys.argv) > 1 else TRIALS):
        print(format_figure(figure), flush=True)
