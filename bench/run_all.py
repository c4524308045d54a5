"""`make bench`: run every benchmark, print each figure (next to its peer's), and write a markdown summary table.

A benchmark whose tools are missing prints a SKIP line and contributes no rows.
"""

from __future__ import annotations

from pathlib import Path

from bench import dns_perf, gossip_sim, health_wrk, kv_read, kv_write, kv_wrk, startup, wal_append
from bench.common import Figure, format_figure


def row(figure: Figure) -> str:
    name, value, target = figure[0], figure[1], figure[2]
    if len(figure) == 4:
        peer = figure[3]
        return f"| {name} | {value:.3f} | {peer:.3f} | {value / peer:.2f} | {target} |"
    return f"| {name} | {value:.3f} | | | {target} |"


def main() -> None:
    rows = []
    for bench in (startup, kv_read, kv_wrk, health_wrk, dns_perf, wal_append, kv_write, gossip_sim):
        for figure in bench.main():
            print(format_figure(figure), flush=True)
            rows.append(row(figure))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    table = "| figure | value | peer | ratio | target |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    (out / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
