"""The metacognition report: does the model know when code helps?

Given a CoT run, a fixed-TIR run and an autonomous run of one model on one task, each problem is
put in one of four groups by which fixed mode solves it (mean correctness over attempts >= 0.5):
CoT only, code only, both, neither. The autonomous run "chose code" on a problem when most of its
attempts executed code. Its choice is right when it picks the mode that solves the problem, and
CoT when both do (as the paper counts it: code costs calls and tokens). Problems neither mode
solves have no right choice and are left out of the selection accuracy. The oracle accuracy is
what a perfect chooser between the two fixed modes would score. Beside them, each mode's efficiency and
tool-trust metrics (harness/eval/efficiency.py) over the same problems.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.eval.attempts import RECORD_FIELDS, RECORD_KEY
from harness.eval.efficiency import efficiency_report
from harness.eval.metrics import by_problem
from harness.eval.results import select
from harness.eval.store import read_samples
from harness.io import atomic_write_text

MODES = ("cot", "tir", "auto")


def _load(run_dir: Path) -> tuple[dict, dict[str, list[dict]]]:
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    return info, by_problem(select(read_samples(run_dir / "samples.jsonl", RECORD_KEY, RECORD_FIELDS), info))


def _solved(attempts: list[dict]) -> bool:
    return sum(bool(a["correct"]) for a in attempts) / len(attempts) >= 0.5


def metacognition(cot_dir: Path, tir_dir: Path, auto_dir: Path) -> dict:
    runs = {mode: _load(path) for mode, path in zip(MODES, (cot_dir, tir_dir, auto_dir))}
    versions = {mode: info["task"]["version"] for mode, (info, _) in runs.items()}
    problems = sorted(set.intersection(*(set(p) for _, p in runs.values())))
    counts = {"cot_only": 0, "code_only": 0, "both": 0, "neither": 0}
    right = judged = auto_solved = 0
    per_problem = []
    for doc in problems:
        cot, tir, auto = (_solved(runs[mode][1][doc]) for mode in MODES)
        group = "both" if cot and tir else "cot_only" if cot else "code_only" if tir else "neither"
        counts[group] += 1
        auto_attempts = runs["auto"][1][doc]
        chose_code = sum(bool(a["tool_calls"]) for a in auto_attempts) / len(auto_attempts) > 0.5
        auto_solved += auto
        if group != "neither":
            judged += 1
            right += chose_code == (group == "code_only")
        per_problem.append({"doc_id": doc, "group": group, "auto_chose_code": chose_code, "auto_solved": auto})
    n = len(problems) or 1
    return {
        "model": runs["auto"][0]["model_name"],
        "task": runs["auto"][0]["task"]["name"],
        "task_versions_match": len(set(versions.values())) == 1,
        "task_versions": versions,
        "problems": len(problems),
        "counts": counts,
        "selection_accuracy": right / judged if judged else None,
        "judged_problems": judged,
        "oracle_accuracy": (counts["cot_only"] + counts["code_only"] + counts["both"]) / n,
        "accuracy": {"cot": (counts["cot_only"] + counts["both"]) / n, "tir": (counts["code_only"] + counts["both"]) / n,
                     "auto": auto_solved / n},
        "auto_code_rate": sum(p["auto_chose_code"] for p in per_problem) / n,
        "efficiency": {mode: efficiency_report([a for doc in problems for a in records[doc]], info["task"]["grader"])
                       for mode, (info, records) in runs.items()},
        "per_problem": per_problem,
    }


def write_if_complete(task_dir: Path) -> dict | None:
    """Write ``<task_dir>/metacognition.json`` when cot, tir and auto runs all exist there."""
    dirs = [task_dir / mode for mode in MODES]
    if not all((d / "run.json").is_file() and (d / "samples.jsonl").is_file() for d in dirs):
        return None
    report = metacognition(*dirs)
    atomic_write_text(task_dir / "metacognition.json", json.dumps(report, indent=2) + "\n")
    return report
