"""Rollouts/s and updates/s of `train-rl`'s tiny preset on this CPU.

    .venv/bin/python bench/rl/bench_rl.py --model PATH_TO_WARMED_UP_TINY_MODEL [--steps 3] [--method code-trigger]

Runs the real trainer (rollout engine, local sandbox, grader, update) for a few steps of the ``tiny``
preset and reports, per step, rollouts generated per second of rollout time and optimiser updates per
second of update time, with their medians. The first step is reported apart (it pays one-off costs:
sandbox zygote start-up, grader workers warming). ``--method code-trigger`` makes every rollout write
and run a program, the sandbox-heavy case (the warmed-up model rarely chooses code under ``auto``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--method", default="auto")
    args = parser.parse_args()

    from harness.rl.config import preset
    from harness.rl.trainer import RLTrainer

    with tempfile.TemporaryDirectory() as out:
        config = preset("tiny").updated(model=args.model, method=args.method, steps=args.steps, output_dir=out, save_every=10_000,
                                        device="cpu")
        history = RLTrainer(config).train()
    rollouts = config.prompts_per_step * config.group_size
    steps = [{"rollouts_per_s": rollouts / h["time/rollout_s"], "updates_per_s": 1 / (h["step_time"] - h["time/rollout_s"]),
              "generate_s": h["time/generate_s"], "tools_s": h["time/tools_s"], "code_rate": h["code_rate"]} for h in history]
    later = steps[1:] or steps
    report = {
        "preset": "tiny",
        "method": args.method,
        "rollouts_per_step": rollouts,
        "first_step": steps[0],
        "median_rollouts_per_s": round(statistics.median(s["rollouts_per_s"] for s in later), 2),
        "median_updates_per_s": round(statistics.median(s["updates_per_s"] for s in later), 3),
        "steps": steps,
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
