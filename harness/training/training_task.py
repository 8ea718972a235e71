"""The training task of `train-rl` and `train-em`, loaded once for both, with a guard against training on a test set.

A trainer's ``task`` is a built-in task, a JSONL/parquet query pool or a hub dataset id; any pool
whose rows have a question and a gold answer works (``task_args`` may name the columns:
``question_field`` / ``answer_field``, e.g. ``q`` / ``gold`` for the paper's 119K pool, and ``split``
for a hub id). Its split is decided as follows:

- a procedural task: its generator's ``split`` argument (``arith`` defaults to ``test``);
- a built-in task: the ``split`` its TOML declares; one that declares none is a benchmark, so ``test``;
- a JSONL/parquet file: ``test`` when a part of its file name is ``test`` (``gsm8k_test.jsonl``), else ``unknown``;
- a hub id: the split asked for (``test`` unless ``task_args.split`` says otherwise).

Whatever the split, the samples' questions are compared with every benchmark's by content
(harness/training/split_guard.py): a pool sharing any question with a benchmark is a test split too.
A ``test`` split is refused (``ContaminationError``, one line naming the benchmarks and how many
questions each shares) unless the config sets ``allow_test_split`` (``--allow-test-split``); either way
the decision, the overlap per benchmark and the benchmarks that could not be checked are written to
``OUT/training_task.json`` so a result trained on a benchmark says so.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import tomllib
from pathlib import Path

from harness.io import atomic_write_text
from harness.training.split_guard import benchmark_overlap


class ContaminationError(ValueError):
    """The training task is a test split and the config did not allow it."""


CUSTOM_FIELD_ARGS = ("question_field", "answer_field", "id_field", "split")


def task_split(task, task_args: dict) -> str:
    """``train``, ``test`` or ``unknown`` for a loaded TaskSpec (see the module docstring for the rules)."""
    if task.generator:
        return str(task.generator_args.get("split", "unknown"))
    if "local_file" not in task_args and task.source.endswith(".toml"):
        declared = tomllib.loads(Path(task.source).read_text(encoding="utf-8")).get("split")
        return str(declared or "test")
    if task.local_file:
        parts = re.split(r"[^a-z0-9]+", Path(task.local_file).stem.lower())
        return "test" if "test" in parts else "unknown"
    return str((task.hub or {}).get("split", "unknown"))


def load_training_task(config):
    """(task, samples, method, record) for a trainer config with ``task``, ``task_args``, ``data_dir``, ``method`` and
    ``allow_test_split``; raises ContaminationError on a test split not allowed. The trainer writes ``record`` with
    ``record_training_task`` once its output folder is judged usable, so a refused run overwrites nothing."""
    from harness.eval.methods import load_method
    from harness.eval.tasks import load_samples, load_task

    args = dict(config.task_args)
    task = load_task(config.task, **{k: args[k] for k in CUSTOM_FIELD_ARGS if k in args})
    if task.generator:
        task = dataclasses.replace(task, generator_args={**task.generator_args, **args})
    elif "local_file" in args:
        task = dataclasses.replace(task, local_file=args["local_file"])
    split = task_split(task, args)
    samples, fingerprint = load_samples(task, config.data_dir)
    overlap, unchecked = benchmark_overlap(samples, config.data_dir)
    if unchecked:
        print(f"warning: the training questions were not checked against {', '.join(unchecked)} (no data: "
              "pass data_dir with their files); see unchecked_benchmarks in OUT/training_task.json", file=sys.stderr)
    shared = {name: count for name, count in overlap.items() if count}
    trained_on_test = split == "test" or bool(shared)
    if trained_on_test and not config.allow_test_split:
        raise ContaminationError(_refusal(config.task, split, shared))
    record = {"task": config.task, "name": task.name, "version": task.version, "split": split, "samples": len(samples),
              "data_fingerprint": fingerprint, "benchmark_overlap": overlap, "unchecked_benchmarks": unchecked,
              "allow_test_split": config.allow_test_split, "trained_on_test_split": trained_on_test}
    return task, samples, load_method(config.method), record


def _refusal(task: str, split: str, shared: dict[str, int]) -> str:
    why = f"task {task!r} is a test split" if split == "test" else f"task {task!r}"
    if shared:
        counts = ", ".join(f"{count} with {name}" for name, count in shared.items())
        why += f"{' and' if split == 'test' else ''} shares benchmark questions: {counts}"
    return (f"{why}; train on a training pool (e.g. gsm8k-train) or pass --allow-test-split "
            "(allow_test_split: true) to do it on purpose (it is recorded)")


def record_training_task(out: Path, record: dict) -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(out) / "training_task.json", json.dumps(record, indent=2) + "\n")
