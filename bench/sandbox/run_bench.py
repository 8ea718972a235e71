"""Sandbox bench: per-cell p50/p95 and cells/s of every execution path, measured in one run.

    .venv/bin/python bench/sandbox/run_bench.py [--cells 200] [--output bench/sandbox/results.json]

Same figures as `harness sandbox bench`; the Docker paths run when an engine answers (scripts/docker-up.sh).
Goals (issue 3): local >= 10x the fresh-subprocess throughput with isolation on; pooled Docker p50 <= 5 ms.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.sandbox.bench import format_table, run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    figures = run_bench(cells=args.cells)
    print(format_table(figures))
    by_path = {(row["workload"], row["path"]): row for row in figures}
    fresh = by_path[("sympy", "fresh")]["cells_per_s"]
    local = by_path[("sympy", "local")]["cells_per_s"]
    print(f"\nlocal vs fresh subprocess (sympy cell): {local / fresh:.0f}x (goal >= 10x)")
    if ("sympy", "docker") in by_path:
        print(f"pooled Docker REPL p50 (sympy cell): {by_path[('sympy', 'docker')]['p50_ms']:.2f} ms (goal <= 5 ms)")
    if args.output:
        args.output.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
