"""Time the miniature reproduction (SFT-only, SFT+RL, Base+RL, EM variants, 5 seeds) on this machine.

    .venv/bin/python bench/em/bench_miniature.py --model /tmp/testbed/sft [--iterations 6] [--workers 2]
        [--em-variants q_argmax,pi_q_free,pi_q_prefix_mean] [--threads 1]

Runs ``harness testbed miniature`` as a subprocess (the real command, writing
leaderboards/miniature.{md,png,json}), records its wall time with the machine's load average and
core count beside it (the figure is honest only with those), and writes bench/em/results.json.
The first board's budget was 10 minutes on 2 CPU cores for 3 seeds and 2 rows; the honest board
(5 seeds, two RL rows, one EM row per variant, oracle evaluations) costs about 5/3 x 5/2 of that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the warmed-up tiny model (harness testbed warmup)")
    parser.add_argument("--base", help="un-warmed model for Base+RL (default: init/ beside --model)")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--em-variants", default="q_argmax,pi_q_free,pi_q_prefix_mean")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per (row, seed) job")
    parser.add_argument("--out", type=Path, default=REPO / "leaderboards" / "miniature.md")
    args = parser.parse_args()
    command = [sys.executable, "-m", "harness.cli_main", "testbed", "miniature", "--model", args.model, "--seeds", args.seeds,
               "--iterations", str(args.iterations), "--em-variants", args.em_variants, "--workers", str(args.workers),
               "--threads", str(args.threads), "--out", str(args.out), *(["--base", args.base] if args.base else [])]
    load_before = os.getloadavg()
    began = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = round(time.perf_counter() - began, 1)
    report = {
        "command": " ".join(["harness", *command[3:]]),
        "wall_s": seconds,
        "workers": args.workers,
        "threads_per_job": args.threads,
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    (REPO / "bench" / "em" / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"miniature reproduction: {seconds}s on {os.cpu_count()} cores with {args.workers} workers")


if __name__ == "__main__":
    main()
