"""Sandbox load bench: 1, 10 and 100 concurrent sessions per backend, and the neighbour slowdown.

    .venv/bin/python bench/sandbox/run_load.py [--sessions 1 10 100] [--cells 5] [--containers 16]
        [--backends local docker] [--output bench/sandbox/load.json]

Docker sessions beyond --containers wait for a free container (the pool is the global concurrency limit):
that wait is their queue time. The Docker rows run when an engine answers (scripts/docker-up.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harness.sandbox.load_bench import format_rows, run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--cells", type=int, default=5, help="cells per session")
    parser.add_argument("--containers", type=int, default=16, help="Docker pool size")
    parser.add_argument("--backends", nargs="+", default=["local", "docker"])
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    backends = list(args.backends)
    if "docker" in backends:
        try:
            import docker

            docker.from_env(timeout=10).ping()
        except Exception as exc:  # noqa: BLE001
            print(f"WARNING: no Docker engine, skipping the Docker rows ({exc.__class__.__name__})", file=sys.stderr)
            backends.remove("docker")
    load_before = os.getloadavg()
    rows = run_load(backends, args.sessions, args.cells, args.containers)
    load_after = os.getloadavg()
    print(format_rows(rows))
    print(f"\nload average (1, 5, 15 min) before {load_before}, after {load_after}; {os.cpu_count()} CPUs")
    if args.output:
        args.output.write_text(json.dumps({"rows": rows, "load_before": load_before, "load_after": load_after,
                                           "cpus": os.cpu_count()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
