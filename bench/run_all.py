"""`make bench`: run every benchmark, print each figure (next to its peer's), and write a markdown summary
table (figure, value, target, peer, ratio, met) to bench/results/summary.md and stdout.

A benchmark whose tools are missing prints a SKIP line and contributes no rows. "met" is filled in when the
target is a plain bound on the value (`≥ 14000`, `<= 3 s`) or on the ratio (`ratio ≥ 0.80`).
Imports: stdlib, bench.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench import (
    blocking_hold,
    dns_perf,
    dns_rebuild,
    gossip_sim,
    health_wrk,
    kv_write,
    kv_wrk,
    read_under_hold,
    startup,
    wal_append,
)
from bench.common import Figure, format_figure

_BOUND = re.compile(r"^(ratio )?(≥|>=|≤|<=)\s*([\d,.]+)(?:\s*\S*)?$")


def met(figure: Figure) -> str:
    """✓ or ✗ when the target is a plain bound, else empty."""
    match = _BOUND.match(figure[2].strip())
    if match is None:
        return ""
    on_ratio, op, bound = match.group(1), match.group(2), float(match.group(3).replace(",", ""))
    if on_ratio:
        if len(figure) != 4:
            return ""
        value = figure[1] / figure[3]
    else:
        value = figure[1]
    ok = value >= bound if op in ("≥", ">=") else value <= bound
    return "✓" if ok else "✗"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"


def row(figure: Figure) -> str:
    name, value, target = figure[0], figure[1], figure[2]
    if len(figure) == 4:
        peer = figure[3]
        ratio = f"{value / peer:.2f}" if peer else ""
        return f"| {name} | {_number(value)} | {target} | {_number(peer)} | {ratio} | {met(figure)} |"
    return f"| {name} | {_number(value)} | {target} | | | {met(figure)} |"


def main() -> None:
    rows = []
    for bench in (startup, kv_wrk, health_wrk, dns_perf, dns_rebuild, blocking_hold, read_under_hold, wal_append,
                  kv_write, gossip_sim):
        for figure in bench.main():
            print(format_figure(figure), flush=True)
            rows.append(row(figure))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    table = ("| figure | value | target | peer | ratio | met |\n|---|---|---|---|---|---|\n"
             + "\n".join(rows) + "\n")
    (out / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
