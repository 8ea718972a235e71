"""Throughput of harness's grader against calling math-verify directly, on the same cases, same run.

    .venv/bin/python bench/grading/bench_grading.py [--workload grader-cases|math500-solutions] [--repeat 1]

Workloads: ``grader-cases`` (the 418 public-suite cases; agreement on the ``core`` ones) and
``math500-solutions`` (the 500 MATH500 reference solutions as responses against their answers: a
realistic eval workload, where every verdict should be "correct").

math-verify is called the way the notes measured it (bare answers wrapped in $...$, boxed priority 0,
its own timeouts on: it runs in this main thread), one pair after another, as harnesses call it.
harness runs its worker pool (one worker per core) with the default 5 s deadline. Both are judged
against the cases' expected verdicts on the `core` subset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_cases(data_dir: Path, workload: str) -> list[dict]:
    if workload == "grader-cases":
        return [json.loads(line) for line in (data_dir / "grader_cases.jsonl").read_text().splitlines() if line.strip()]
    rows = [json.loads(line) for line in (data_dir / "math500.jsonl").read_text().splitlines() if line.strip()]
    return [{"pred": row["solution"], "gold": row["answer"], "expected": True, "core": True,
             "pred_kind": "response", "gold_kind": "answer"} for row in rows]


def run_math_verify(cases: list[dict]) -> tuple[list[bool], list[float]]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]

    def wrap(text: str, kind: str) -> str:
        return text if kind == "response" or "$" in text else f"${text}$"

    verdicts, seconds = [], []
    for case in cases:
        start = time.perf_counter()
        try:
            gold = parse(wrap(case["gold"], case["gold_kind"]), config)
            pred = parse(wrap(case["pred"], case["pred_kind"]), config)
            verdicts.append(bool(verify(gold, pred)))
        except Exception:  # noqa: BLE001 - count a crash as a wrong verdict, as a harness would
            verdicts.append(False)
        seconds.append(time.perf_counter() - start)
    return verdicts, seconds


def run_harness(cases: list[dict]) -> tuple[list[bool | None], float, float, float]:
    from harness.grading import GradingPool

    start = time.perf_counter()
    pool = GradingPool()
    pool.grade("1", "1")  # wait until the workers are up: start-up is reported apart
    startup = time.perf_counter() - start
    slowest = 0.0

    def timed(case: dict):
        nonlocal slowest
        t0 = time.perf_counter()
        result = pool.grade(case["pred"], case["gold"])
        slowest = max(slowest, time.perf_counter() - t0)
        return result

    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with ThreadPoolExecutor(pool.workers) as executor:
        grades = list(executor.map(timed, cases))
    elapsed = time.perf_counter() - start
    pool.close()
    return [g.correct for g in grades], elapsed, startup, slowest


def agreement(cases: list[dict], verdicts: list) -> float:
    core = [(c, v) for c, v in zip(cases, verdicts) if c["core"]]
    return sum(v == c["expected"] for c, v in core) / len(core)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--workload", choices=["grader-cases", "math500-solutions"], default="grader-cases")
    parser.add_argument("--repeat", type=int, default=1, help="pass over the cases this many times")
    args = parser.parse_args()
    cases = load_cases(args.data_dir, args.workload) * args.repeat

    mv_verdicts, mv_seconds = run_math_verify(cases)
    hv_verdicts, hv_elapsed, hv_startup, hv_slowest = run_harness(cases)
    mv_elapsed = sum(mv_seconds)
    report = {
        "workload": args.workload,
        "cases": len(cases),
        "cores": os.cpu_count(),
        "math_verify": {
            "pairs_per_s": round(len(cases) / mv_elapsed, 1),
            "slowest_call_s": round(max(mv_seconds), 3),
            "median_call_ms": round(1000 * statistics.median(mv_seconds), 2),
            "core_agreement": round(agreement(cases, mv_verdicts), 4),
        },
        "harness": {
            "pairs_per_s": round(len(cases) / hv_elapsed, 1),
            "slowest_call_s": round(hv_slowest, 3),
            "pool_startup_s": round(hv_startup, 2),
            "core_agreement": round(agreement(cases, hv_verdicts), 4),
        },
    }
    report["speedup"] = round(report["harness"]["pairs_per_s"] / report["math_verify"]["pairs_per_s"], 2)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
