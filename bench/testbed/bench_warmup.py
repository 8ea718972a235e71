"""Time the one-command warm-up (nothing to a warmed-up tiny model) and evaluate the result.

    .venv/bin/python bench/testbed/bench_warmup.py [--output /tmp/testbed] [--threads 1] [--skip-eval]

Runs `harness testbed warmup` as a subprocess (the real command: tokenizer, model init,
demonstrations, SFT), records its wall time and the machine's load while it ran (other processes
share the cores; the figure is honest only with that number beside it), then runs `harness eval`
on the arith test split with cot, code-trigger and auto and records accuracy and code rate per kind.
Writes bench/testbed/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESS = str(Path(sys.executable).parent / "harness")
METHODS = ("cot", "code-trigger", "auto")


def eval_command(model: Path, method: str, runs: Path) -> list[str]:
    return [HARNESS, "eval", "--model", f"hf:{model}", "--model-args", "device=cpu,batch_size=64", "--task", "arith",
            "--method", method, "--max-tokens", "128", "--batch-size", "64", "--output-dir", str(runs), "--overwrite"]


def per_kind(results: dict) -> dict:
    breakdown = results.get("breakdown", {}).get("kind", {})
    return {kind: {"accuracy": round(group["accuracy"], 3), "code_rate": round(group.get("code_rate", 0.0), 3)}
            for kind, group in breakdown.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="/tmp/testbed")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--skip-eval", action="store_true")
    args = parser.parse_args()
    output = Path(args.output)
    if output.exists():
        subprocess.run(["rm", "-rf", str(output)], check=True)
    load_before = os.getloadavg()
    began = time.perf_counter()
    subprocess.run([HARNESS, "testbed", "warmup", "--output", str(output), "--threads", str(args.threads)], check=True)
    seconds = round(time.perf_counter() - began, 1)
    report = {
        "command": f"harness testbed warmup --output {output} --threads {args.threads}",
        "wall_s": seconds,
        "stages": json.loads((output / "warmup.json").read_text())["timings"],
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": platform.processor() or platform.machine(),
        "evals": {},
    }
    print(f"warm-up took {seconds}s on {os.cpu_count()} cores (load {report['load_average_after'][0]})")
    for method in () if args.skip_eval else METHODS:
        command = eval_command(output / "sft", method, output / "runs")
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        results = json.loads(next((output / "runs").glob(f"*/arith/{method}/results.json")).read_text())
        report["evals"][method] = {"command": " ".join(command), "accuracy": round(results["metrics"]["accuracy"], 3),
                                   "code_rate": round(results["tools"]["code_rate"], 3), "by_kind": per_kind(results)}
        print(method, json.dumps(report["evals"][method]["by_kind"]))
    (REPO / "bench" / "testbed" / "results.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
