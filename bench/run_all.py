"""`make bench`: run every benchmark, print each figure, and write a markdown summary table."""

from __future__ import annotations

from pathlib import Path

from bench import kv_read, startup, wal_append


def main() -> None:
    rows = []
    for bench in (startup, kv_read, wal_append):
        for name, value, target in bench.main():
            print(f"{name}: {value:.3f} (target {target})", flush=True)
            rows.append(f"| {name} | {value:.3f} | {target} |")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    table = "| figure | value | target |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    (out / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
