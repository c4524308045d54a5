"""Benchmark: `consulpy agent -dev` from exec to leader, and idle resident memory (medians of 3)."""

from __future__ import annotations

import time

from bench.common import DevAgent, median

ADDRESS = "127.0.200.2"


def main() -> list[tuple[str, float, str]]:
    startups, memory = [], []
    for _ in range(3):
        agent = DevAgent(ADDRESS)
        try:
            startups.append(agent.start())
            time.sleep(2)
            memory.append(agent.rss_mib())
        finally:
            agent.stop()
    return [("dev agent exec → leader (s)", median(startups), "≤ 0.5"),
            ("idle agent RSS (MiB)", median(memory), "≤ 50")]


if __name__ == "__main__":
    for name, value, target in main():
        print(f"{name}: {value:.3f} (target {target})")
