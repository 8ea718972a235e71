"""The leaderboard's content as plain records, before any formatting.

- ``main``: one record per (row, task); rows are model x method for our runs ("measured") and the
  published rows ("reported"), which keep their own protocol and source and are never merged with ours;
- ``adaptive``: per model and task, CoT vs fixed TIR vs autonomous, and autonomous minus the best
  fixed mode with a paired standard error over the problems both runs solved or failed;
- ``metacognition``: the cot/tir/auto report of harness.eval.metacognition, computed from samples;
- ``levels``: accuracy per difficulty level (MATH500) per run;
- ``efficiency``: per run, and per difficulty bucket (MATH500 level, testbed kind), the efficiency and
  tool-trust metrics of harness/eval/efficiency.py as results.json holds them;
- ``iterations``: the main records of EM iteration models (a model named ``RUN/iter-N``,
  harness.models.loading.local_model_name) as curves over N, one per EM run x method x task.

Percentages are 0-100. A group of runs that does not fit together carries ``flags`` (reasons).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from harness.leaderboard.reference import ReportedRow
from harness.leaderboard.runs import Run, mismatches

TASK_ORDER = ("gsm8k", "math500", "aime24", "aime25", "amc23")
FIXED_MODES = ("cot", "tir")
ADAPTIVE_MODE = "auto"


@dataclass
class Board:
    tasks: list[str]
    main: list[dict]
    adaptive: list[dict]
    metacognition: list[dict]
    levels: list[dict]
    efficiency: list[dict] = field(default_factory=list)
    iterations: list[dict] = field(default_factory=list)


def ordered_tasks(names) -> list[str]:
    names = set(names)
    return [t for t in TASK_ORDER if t in names] + sorted(names - set(TASK_ORDER))


def _percent(value) -> float | None:
    return None if value is None else 100.0 * value


def _measured(runs: list[Run]) -> list[dict]:
    cells: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        cells[(run.model, run.method, run.task)].append(run)
    task_flags = {task: [f"{task}: {reason}" for reason in mismatches([r for r in runs if r.task == task])]
                  for task in {r.task for r in runs}}
    records = []
    for (model, method, task), group in cells.items():
        for variant, run in enumerate(sorted(group, key=lambda r: str(r.directory))):
            flags = list(task_flags[task])
            if len(group) > 1:
                flags.append(f"{len(group)} runs of {model} / {method} on {task}: shown on separate rows, not merged")
            records.append({
                "kind": "measured", "model": model, "method": method, "variant": variant, "task": task,
                "task_version": run.task_version, "protocol": run.protocol, "source": str(run.directory),
                "accuracy": _percent(run.metrics.get("accuracy")), "stderr": _percent(run.metrics.get("accuracy_stderr")),
                "n": run.problems, "attempts": run.attempts, "code_rate": _percent(run.tools.get("code_rate")),
                "calls_per_problem": run.tools.get("calls_per_problem"), "tokens_per_problem": run.tools.get("tokens_per_problem"),
                "flags": flags,
            })
    return sorted(records, key=lambda r: (r["model"], r["method"], r["variant"], r["task"]))


def _reported(rows: list[ReportedRow], tasks: list[str]) -> list[dict]:
    return [{"kind": "reported", "model": row.model, "method": row.method, "variant": 0, "task": task,
             "task_version": None, "protocol": row.protocol, "source": row.source, "accuracy": row.scores[task],
             "stderr": None, "n": None, "attempts": None, "code_rate": row.code_rate.get(task),
             "calls_per_problem": None, "tokens_per_problem": None, "flags": []}
            for row in rows for task in tasks if task in row.scores]


def _problem_scores(run: Run) -> dict[str, float]:
    """Mean correctness per problem, from the run's samples (the problems a paired comparison needs)."""
    import json

    from harness.eval.metrics import by_problem
    from harness.eval.results import select

    info = json.loads((run.directory / "run.json").read_text(encoding="utf-8"))
    info["config"]["limit"] = run.limit
    # Read-only on purpose: store.read_samples cuts a torn last line off the file, which must not
    # happen to a run that another process is still appending to; here a torn line is just skipped.
    records = []
    for line in (run.directory / "samples.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    problems = by_problem(select(records, info))
    return {doc: sum(bool(a["correct"]) for a in attempts) / len(attempts)
            for doc, attempts in problems.items() if all(a["correct"] is not None for a in attempts)}


def _paired_difference(first: Run, second: Run) -> tuple[float | None, int]:
    """Standard error (points) of first - second over the problems both scored, and how many those are."""
    from harness.eval.metrics import mean_and_stderr

    if not (first.has_samples and second.has_samples):
        return None, 0
    a, b = _problem_scores(first), _problem_scores(second)
    shared = sorted(set(a) & set(b))
    if not shared:
        return None, 0
    return 100.0 * mean_and_stderr([a[doc] - b[doc] for doc in shared])[1], len(shared)


def _adaptive(runs: list[Run]) -> list[dict]:
    groups: dict[tuple, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.method in (*FIXED_MODES, ADAPTIVE_MODE):
            groups[(run.model, run.task)][run.method].append(run)
    records = []
    for (model, task), modes in sorted(groups.items()):
        if len(modes) < 2:
            continue
        flags = [f"{len(found)} {mode} runs: pass one per mode to compare them" for mode, found in modes.items() if len(found) > 1]
        chosen = {mode: found[0] for mode, found in modes.items() if len(found) == 1}
        flags += mismatches(list(chosen.values()))
        accuracy = {mode: _percent(run.metrics.get("accuracy")) for mode, run in chosen.items()}
        fixed = [mode for mode in FIXED_MODES if mode in chosen]
        # A tie goes to CoT: it needs no code execution, as the paper's oracle counts it.
        best = max(fixed, key=lambda mode: (accuracy[mode], mode == "cot")) if fixed else None
        record = {"model": model, "task": task, **{mode: accuracy.get(mode) for mode in (*FIXED_MODES, ADAPTIVE_MODE)},
                  "best_fixed": best, "auto_minus_best_fixed": None, "delta_stderr": None, "paired_problems": None,
                  "auto_code_rate": _percent(chosen[ADAPTIVE_MODE].tools.get("code_rate")) if ADAPTIVE_MODE in chosen else None,
                  "n": max((run.problems for run in chosen.values()), default=0), "flags": flags}
        if best and ADAPTIVE_MODE in chosen and not flags:
            record["auto_minus_best_fixed"] = accuracy[ADAPTIVE_MODE] - accuracy[best]
            record["delta_stderr"], record["paired_problems"] = _paired_difference(chosen[ADAPTIVE_MODE], chosen[best])
        records.append(record)
    return records


def _metacognition(runs: list[Run]) -> list[dict]:
    from harness.eval.metacognition import MODES, metacognition

    groups: dict[tuple, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.method in MODES:
            groups[(run.model, run.task)][run.method].append(run)
    records = []
    for (model, task), modes in sorted(groups.items()):
        if set(modes) != set(MODES):
            continue
        record = {"model": model, "task": task, "problems": None, "cot_only": None, "code_only": None, "both": None,
                  "neither": None, "selection_accuracy": None, "judged": None, "oracle_accuracy": None,
                  "auto_code_rate": None, "flags": []}
        if any(len(modes[mode]) > 1 for mode in MODES):
            record["flags"].append("several runs of one mode: pass one cot, tir and auto run")
        elif not all(modes[mode][0].has_samples for mode in MODES):
            record["flags"].append("samples.jsonl or run.json missing: the per-problem analysis needs them")
        else:
            trio = [modes[mode][0] for mode in MODES]
            report = metacognition(*(run.directory for run in trio))
            record["flags"] += mismatches(trio)
            if report["problems"] < max(run.problems for run in trio):
                record["flags"].append(f"computed on the {report['problems']} problems all three runs share")
            record.update({**report["counts"], "problems": report["problems"], "judged": report["judged_problems"],
                           "selection_accuracy": _percent(report["selection_accuracy"]),
                           "oracle_accuracy": _percent(report["oracle_accuracy"]),
                           "auto_code_rate": _percent(report["auto_code_rate"])})
        records.append(record)
    return records


def _levels(runs: list[Run]) -> list[dict]:
    records, seen = [], defaultdict(int)
    for run in sorted(runs, key=lambda r: (r.task, r.model, r.method, str(r.directory))):
        variant = seen[(run.model, run.method, run.task)]  # numbered as in the main table
        seen[(run.model, run.method, run.task)] += 1
        records += [{"model": run.model, "method": run.method, "variant": variant, "task": run.task, "level": level,
                     "n": cell["n"], "accuracy": _percent(cell["accuracy"]), "stderr": _percent(cell["accuracy_stderr"]),
                     "code_rate": _percent(cell.get("code_rate"))}
                    for level, cell in sorted(run.breakdown.get("level", {}).items())]
    return records


def _efficiency(runs: list[Run]) -> list[dict]:
    from harness.eval.efficiency import METRICS

    records, seen = [], defaultdict(int)
    for run in sorted(runs, key=lambda r: (r.model, r.method, r.task, str(r.directory))):
        variant = seen[(run.model, run.method, run.task)]  # numbered as in the main table
        seen[(run.model, run.method, run.task)] += 1
        row = {"model": run.model, "method": run.method, "variant": variant, "task": run.task}
        if not run.efficiency:
            records.append({**row, "bucket": "all", **dict.fromkeys(METRICS),
                            "flags": ["results.json predates these metrics: `harness score` on the run adds them"]})
            continue
        records.append({**row, "bucket": "all", **{key: run.efficiency.get(key) for key in METRICS}, "flags": []})
        records += [{**row, "bucket": f"{key} {value}", **{name: cell.get(name) for name in METRICS}, "flags": []}
                    for key, cells in run.efficiency.get("by", {}).items() for value, cell in cells.items()]
    return records


def _iterations(main: list[dict]) -> list[dict]:
    from harness.models.loading import iteration_model

    records = []
    for record in main:
        if record["kind"] == "measured" and (found := iteration_model(record["model"])):
            records.append({"run": found[0], "iteration": found[1], **{key: record[key] for key in (
                "kind", "method", "variant", "task", "accuracy", "stderr", "n", "code_rate", "flags")}})
    return sorted(records, key=lambda r: (r["run"], r["method"], r["variant"], r["task"], r["iteration"]))


def build_board(runs: list[Run], reported: list[ReportedRow]) -> Board:
    tasks = ordered_tasks(run.task for run in runs)
    measured = _measured(runs)
    return Board(tasks=tasks, main=measured + _reported(reported, tasks), adaptive=_adaptive(runs),
                 metacognition=_metacognition(runs), levels=_levels(runs), efficiency=_efficiency(runs),
                 iterations=_iterations(measured))
