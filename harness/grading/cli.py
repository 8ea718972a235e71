"""`harness grade`: score a JSONL file of (pred, gold[, task]) cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from harness.io import atomic_write_text, fail, read_jsonl


def _read_cases(path: Path) -> list[dict]:
    from harness.grading import TASKS

    if not path.is_file():
        fail(f"input file not found: {path}")
    try:
        rows = read_jsonl(path, finite=True)  # NaN would pass through into output that is not JSON
    except ValueError as exc:
        fail(str(exc))
    cases = []
    for number, case in rows:
        if "pred" not in case or "gold" not in case:
            fail(f"{path}:{number}: each line needs an object with 'pred' and 'gold'")
        task = case.get("task", "math500")
        if task not in TASKS:
            fail(f"{path}:{number}: unknown task {task!r} (expected one of {', '.join(TASKS)})")
        cases.append(case)
    return cases


def grade(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL with 'pred', 'gold' and optional 'task' per line.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL written atomically: each input object plus correct, "
                                                                "extracted, status.")],
    deadline: Annotated[float, typer.Option(help="Seconds allowed per comparison before it counts as a timeout.")] = 5.0,
    workers: Annotated[int, typer.Option(help="Grading worker processes (default: one per available CPU).")] = 0,
) -> None:
    """Grade predictions against gold answers with the same scorer the eval and trainers use."""
    from harness.grading import GradingPool

    if deadline <= 0:
        fail(f"--deadline must be more than 0 seconds, not {deadline}")
    if workers < 0:
        fail(f"--workers must be 0 (one per available CPU) or more, not {workers}")
    if output.is_dir():
        fail(f"--output {output} is a folder; give a file path")
    cases = _read_cases(input)
    with GradingPool(workers=workers or None, deadline_s=deadline) as pool:
        grades = pool.grade_many((case["pred"], case["gold"], case.get("task", "math500")) for case in cases)
    lines = []
    for case, result in zip(cases, grades):
        lines.append(json.dumps({**case, "correct": result.correct, "extracted": result.extracted, "status": result.status,
                                 **({"extra": result.extra} if result.extra else {})}, ensure_ascii=False))
    try:
        atomic_write_text(output, "\n".join(lines) + ("\n" if lines else ""))
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    scored = [g for g in grades if g.correct is not None]
    accuracy = sum(bool(g.correct) for g in scored) / len(scored) if scored else 0.0
    typer.echo(f"graded {len(grades)} cases: {accuracy:.1%} correct of {len(scored)} scorable -> {output}")
