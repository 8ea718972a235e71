"""The harness's own overhead in `harness eval`: wall time spent outside the model's forward passes.

    .venv/bin/python bench/eval/bench_eval_overhead.py [--limit 16] [--max-tokens 128] [--method tir]

Runs the embedded SmolLM2 on gsm8k through the real pipeline (EvalRun: prompts, the rollout engine
with the local sandbox, grading, samples.jsonl), times every forward call of the model with hooks,
and reports overhead = (whole run - forward passes) / whole run, with a breakdown. Loading the model
is excluded (it is a start-up cost, not per-problem work).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--method", default="tir")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from harness.eval.evaluation import environment
    from harness.eval.methods import load_method
    from harness.eval.runner import EvalConfig, EvalRun
    from harness.eval.tasks import load_samples, load_task
    from harness.grading.pool import shared_pool
    from harness.models import load_backend
    from harness.sandbox import SandboxLimits, get_sandbox

    backend = load_backend("smollm2")
    forward_s = 0.0
    started: list[float] = []

    def before(*_):
        started.append(time.perf_counter())

    def after(*_):
        nonlocal forward_s
        forward_s += time.perf_counter() - started.pop()

    backend.model.register_forward_pre_hook(before)
    backend.model.register_forward_hook(after)
    method = load_method(args.method)
    task = load_task("gsm8k")
    samples, fingerprint = load_samples(task, args.data_dir)
    shared_pool()  # the graders start in the background, as in `harness eval`
    with tempfile.TemporaryDirectory() as out, get_sandbox("local", limits=SandboxLimits(timeout_s=10)) as sandbox:
        config = EvalConfig(model="smollm2", task="gsm8k", method=method.name, max_tokens=args.max_tokens,
                            limit=args.limit, batch_size=args.batch_size, output_dir=out)
        run = EvalRun(config, task, method, samples, fingerprint, backend, sandbox)
        begin = time.perf_counter()
        records = run.execute(environment())
        total = time.perf_counter() - begin
    stats = run.engine_stats
    report = {
        "problems": len(records),
        "method": method.name,
        "max_tokens": args.max_tokens,
        "generated_tokens": sum(r["tokens"] for r in records),
        "code_cells": stats.cells,
        "wall_s": round(total, 2),
        "forward_s": round(forward_s, 2),
        "backend_outside_forward_s": round(stats.generate_s - forward_s, 2),
        "tool_s": round(stats.tool_s, 2),
        "harness_outside_backend_s": round(total - stats.generate_s - stats.tool_s, 2),
        "overhead_fraction": round((total - forward_s) / total, 4),
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
