"""results.json: a superset of lm-eval's results layout, built only from run.json and the sample records.

lm-eval keys (``results.<task>.<metric>,<filter>``, ``versions``, ``n-samples``, ``config``,
``git_hash``, ...) are kept so existing tooling reads our files; our own keys sit beside them:
``metrics`` (flat, unprefixed), ``tools`` (code usage), ``efficiency`` (tool errors, productivity, cost per
correct answer and tool trust, harness/eval/efficiency.py), ``breakdown`` (per level/subject) and
``run`` (the run's identity: config hash, task and method versions, dataset fingerprint).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from harness.eval.efficiency import efficiency_report
from harness.eval.metrics import accuracy_metrics, breakdown, tool_metrics
from harness.eval.store import RunStore
from harness.io import atomic_write_text

_NOT_METRICS = ("problems", "unscorable_problems", "samples_per_problem")


def select(records: list[dict], run_info: dict) -> list[dict]:
    """The records the run's current limit and sample count cover (a run can be resumed with fewer)."""
    config = run_info["config"]
    limit = config.get("limit")
    ids: list[str] = []
    for record in records:
        if record["doc_id"] not in ids:
            ids.append(record["doc_id"])
    keep = set(ids[:limit] if limit else ids)
    return [r for r in records if r["doc_id"] in keep and r["attempt"] < config["samples"]]


def build_results(run_info: dict, records: list[dict], elapsed_s: float | None = None) -> dict:
    records = select(records, run_info)
    task = run_info["task"]["name"]
    accuracy = accuracy_metrics(records)
    tools = tool_metrics(records)
    lm_eval_style = {"alias": task}
    for name, value in accuracy.items():
        if name not in _NOT_METRICS:
            lm_eval_style[f"{name},none"] = value
    keys = sorted({key for record in records for key in record.get("metadata", {})})
    return {
        "results": {task: lm_eval_style},
        "versions": {task: run_info["task"]["version"]},
        "n-samples": {task: {"original": run_info.get("dataset_size"), "effective": accuracy.get("problems", 0)}},
        "higher_is_better": {task: {name: True for name in accuracy if name not in _NOT_METRICS and not name.endswith("_stderr")}},
        "config": {**run_info["config"], "model_name": run_info["model_name"]},
        "git_hash": run_info.get("git_commit"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "harness_version": run_info.get("harness_version"),
        "total_evaluation_time_seconds": elapsed_s,
        "run": {
            "config_hash": run_info["config_hash"],
            "model": run_info["model_name"],
            "task": run_info["task"],
            "method": {key: run_info["method"][key] for key in ("name", "version", "tools")},
            "dataset_fingerprint": run_info["dataset_fingerprint"],
        },
        "metrics": accuracy,
        "tools": tools,
        "efficiency": efficiency_report(records, run_info["task"]["grader"]),
        "breakdown": breakdown(records, keys),
    }


def rescore(directory: Path) -> tuple[dict, str | None]:
    """Grade every stored response again with the current grader; rewrite samples and results.
    Returns the results and a warning when bad lines were set aside."""
    from harness.eval.attempts import RECORD_FIELDS, RECORD_KEY
    from harness.grading import grade_batch

    store = RunStore(directory, key=RECORD_KEY, required=RECORD_FIELDS)
    if not store.run_file.is_file():
        raise FileNotFoundError(f"{directory} is not a run directory (no run.json)")
    try:
        run_info = json.loads(store.run_file.read_text(encoding="utf-8"))
        records = store.load()
        # An attempt refused before generation has no response to grade: it keeps its verdict.
        graded = [r for r in records if r["status"] != "prompt_too_long"]
        grades = iter(grade_batch([(r["response"], r["gold"], run_info["task"]["grader"]) for r in graded]))
        records = [record if record["status"] == "prompt_too_long" else {**record, **next(grades).to_dict()} for record in records]
        atomic_write_text(store.samples_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        previous = json.loads(store.results_file.read_text(encoding="utf-8")) if store.results_file.is_file() else {}
        results = build_results(run_info, records, previous.get("total_evaluation_time_seconds"))
        store.write_results(results)
    finally:
        store.close()
    return results, store.rejected_summary()
