"""Benchmark: `consulpy agent -dev` from exec to leader, and idle resident memory (medians of 3).

Agents run from compiled bytecode, as an installed agent does (bench.common.agent_env); one untimed start
fills the cache first. The agent's CPU time up to leader is printed too (neighbours on a shared machine
move it far less than the wall time), and so is the start-up compiling the project from source each time.
Imports: stdlib, bench.common.
"""

from __future__ import annotations

import time

from bench.common import DevAgent, Figure, cpu_seconds, format_figure, median

ADDRESS = "127.0.200.2"
RUNS = 3


def start_and_measure(bytecode_cache: bool) -> tuple[float, float, float]:
    """One fresh agent: seconds from exec to leader, its CPU seconds by then, its RSS (MiB) after 2 s idle."""
    agent = DevAgent(ADDRESS, bytecode_cache)
    try:
        seconds = agent.start()
        assert agent.proc is not None
        cpu = cpu_seconds(agent.proc.pid)
        time.sleep(2)
        rss = agent.rss_mib()
    finally:
        agent.stop()
    print(f"  exec → leader {seconds:.3f} s, agent CPU {cpu:.2f} s, idle RSS {rss:.1f} MiB"
          f"{'' if bytecode_cache else ' (compiling from source)'}", flush=True)
    return seconds, cpu, rss


def main() -> list[Figure]:
    start_and_measure(True)
    cached = [start_and_measure(True) for _ in range(RUNS)]
    from_source = [start_and_measure(False) for _ in range(RUNS)]
    return [("dev agent exec → leader (s)", median([r[0] for r in cached]), "≤ 0.5"),
            ("idle agent RSS (MiB)", median([r[2] for r in cached]), "≤ 50"),
            ("dev agent CPU time until leader (s)", median([r[1] for r in cached]), ""),
            ("dev agent exec → leader, compiling the project from source (s)",
             median([r[0] for r in from_source]), "")]


if __name__ == "__main__":
    for figure in main():
        print(format_figure(figure))
