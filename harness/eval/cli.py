"""`harness eval`, `harness score` and `harness tasks`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from harness.defaults import EVAL_SANDBOX_TIMEOUT_S, MAX_TOOL_CALLS
from harness.io import fail

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="hf:PATH, vllm:NAME, openai:MODEL@URL, or smollm2 (the embedded default).")]
ModelArgsOpt = Annotated[str, typer.Option("--model-args", help="Backend arguments as k=v,k=v (e.g. device=cpu,dtype=float32).")]
TaskOpt = Annotated[str, typer.Option("--task", "-t", help="Comma-separated built-in tasks (see `harness tasks`), "
                                                          "or a JSONL/parquet path or hub id.")]
MethodOpt = Annotated[str, typer.Option("--method", help="cot, tir, tora, auto, code-trigger, cot-trigger, or a prompt file (.toml).")]
OutputOpt = Annotated[Path, typer.Option("--output-dir", "-o", help="Runs go to OUTPUT_DIR/<model>/<task>/<method>/.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", envvar="HARNESS_DATA_DIR", help="Folder with the tasks' local JSONL files.")]


def parse_model_args(text: str) -> dict[str, str]:
    args = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--model-args item {item!r} is not k=v")
        args[key.strip()] = value.strip()
    return args


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int, int], None]]:
    """One run's bar: problems done of all, accuracy so far, time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()) as bar:
        bar_task = bar.add_task(label, total=None, acc="-")

        def report(done: int, total: int, correct: int) -> None:
            bar.update(bar_task, completed=done, total=total, acc=f"{correct / done:.1%}" if done else "-")

        yield report


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def _summary_row(results: dict) -> list:
    metrics, tools, run = results["metrics"], results["tools"], results["run"]
    return [run["task"]["name"], run["method"]["name"], metrics.get("problems", 0),
            f"{100 * metrics.get('accuracy', 0):.1f} ± {100 * metrics.get('accuracy_stderr', 0):.1f}",
            f"{100 * tools.get('code_rate', 0):.0f}%", f"{tools.get('calls_per_problem', 0):.2f}",
            f"{tools.get('tokens_per_problem', 0):.0f}", f"{tools.get('seconds_per_problem', 0):.2f}"]


SUMMARY_HEADERS = ["task", "method", "n", "accuracy %", "code rate", "calls/problem", "tokens/problem", "s/problem"]


def eval_command(
    model: ModelOpt = "smollm2",
    model_args: ModelArgsOpt = "",
    task: TaskOpt = "gsm8k",
    method: MethodOpt = "cot",
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Attempts per problem (avg@n, maj@n, pass@k).")] = 1,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling; 1 = off.")] = 1.0,
    max_tokens: Annotated[int, typer.Option(min=1, help="Response token budget per attempt (model and tool tokens).")] = 1024,
    max_tool_calls: Annotated[int, typer.Option(min=0, help="Executed code cells per attempt.")] = MAX_TOOL_CALLS,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first L problems of each task.")] = None,
    seed: Annotated[int, typer.Option(help="Run seed; each attempt's seed derives from it.")] = 0,
    sandbox: Annotated[str, typer.Option(help="local or docker.")] = "local",
    sandbox_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per code cell.")] = EVAL_SANDBOX_TIMEOUT_S,
    batch_size: Annotated[int, typer.Option(min=1, help="Problems per generation batch (and per checkpoint).")] = 16,
    output_dir: OutputOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a run of another configuration in the same folder.")] = False,
    question_field: Annotated[str | None, typer.Option(help="Custom task: the question column.")] = None,
    answer_field: Annotated[str | None, typer.Option(help="Custom task: the answer column.")] = None,
    id_field: Annotated[str | None, typer.Option(help="Custom task: a unique id column.")] = None,
    threads: Annotated[int, typer.Option(min=0, help="Torch CPU threads; 0 = the CPUs this process may use (affinity, cgroup quota).")] = 0,
) -> None:
    """Run a model on math tasks with a method; resumable, graded, with code-usage statistics."""
    from tabulate import tabulate

    from harness.eval.evaluation import EVAL_ERRORS, Evaluation
    from harness.eval.runner import EvalConfig
    from harness.eval.tasks import task_data_dir

    data_dir = task_data_dir(data_dir)  # resolved once, so run.json records the folder the data came from
    if sandbox not in ("local", "docker"):
        fail(f"--sandbox must be local or docker, not {sandbox!r}")
    config = EvalConfig(model=model, model_args=parse_model_args(model_args), task=task, method=method,
                        samples=samples, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                        max_tool_calls=max_tool_calls, seed=seed, sandbox=sandbox, sandbox_timeout=sandbox_timeout,
                        limit=limit, batch_size=batch_size, output_dir=str(output_dir),
                        data_dir=str(data_dir) if data_dir else None)
    config = _rehearsed(config)
    columns = {"question_field": question_field, "answer_field": answer_field, "id_field": id_field}
    rows = []
    try:
        with Evaluation(config, threads, **columns) as evaluation:
            for run, results in evaluation.runs(overwrite, progress=_progress_bar, warn=_warn):
                rows.append(_summary_row(results))
                typer.echo(f"wrote {run.directory}/results.json")
    except EVAL_ERRORS as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("interrupted: finished samples are saved; run the same command again to resume", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"\nmodel: {evaluation.backend.name}\n" + tabulate(rows, headers=SUMMARY_HEADERS, tablefmt="github"))


def _rehearsed(config):
    """``config`` with a rehearsal's HARNESS_OVERRIDES ``eval`` section applied (harness/overrides.py)."""
    from dataclasses import fields, replace

    from harness.overrides import ENV, overrides_for

    try:
        rehearsal = overrides_for("eval")
    except ValueError as exc:
        fail(str(exc))
    if unknown := sorted(set(rehearsal) - {spec.name for spec in fields(config)}):
        fail(f"{ENV}: eval has no setting {unknown[0]!r}")
    return replace(config, **rehearsal)


def _run_dirs_under(paths: list[Path]) -> list[Path]:
    """Each path that is a run (holds run.json), else every run in the tree under it, in sorted order."""
    found = []
    for path in paths:
        if not path.exists():
            fail(f"{path} does not exist")
        runs = [path] if (path / "run.json").is_file() else sorted(p.parent for p in path.rglob("run.json"))
        if not runs:
            fail(f"no run under {path} (no run.json in it or below it): run `harness eval` first")
        found += [run for run in runs if run not in found]
    return found


def score_command(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH", help="Run folders (with run.json and samples.jsonl), "
                                                                     "or folders to search for them.")],
    columns: Annotated[list[str] | None, typer.Option("--columns", help="Add a column set (repeatable): efficiency (tool errors, "
                                                                       "productivity, cost per correct answer, tool trust).")] = None,
) -> None:
    """Grade stored responses again with the current grader and recompute every metric, without generating:
    one line per run."""
    from tabulate import tabulate

    from harness.eval.efficiency import CELL_HEADERS, display_cells
    from harness.eval.results import rescore
    from harness.eval.run_lock import RunLockedError

    if unknown := sorted(set(columns or []) - {"efficiency"}):
        fail(f"--columns: unknown column set {unknown[0]!r}; choose from efficiency")
    efficiency = bool(columns)
    rows, failed = [], 0
    for directory in _run_dirs_under(paths):
        try:
            results, warning = rescore(directory)
        except (RunLockedError, OSError) as exc:
            problem = str(exc)
        except (KeyError, ValueError) as exc:
            problem = f"{directory}: cannot re-score ({type(exc).__name__}: {exc})"
        else:
            problem = None
        if problem:
            # One bad run does not keep the others from being scored; the exit status still says so.
            typer.echo(f"error: {problem}", err=True)
            failed += 1
            continue
        if warning:
            typer.echo(f"warning: {warning}", err=True)
        rows.append([str(directory), *_summary_row(results), *(display_cells(results["efficiency"]) if efficiency else [])])
    if rows:
        typer.echo(tabulate(rows, headers=["run", *SUMMARY_HEADERS, *(CELL_HEADERS if efficiency else [])], tablefmt="github",
                            disable_numparse=True))
    if failed:
        raise typer.Exit(2)


def tasks_command(data_dir: DataDirOpt = None) -> None:
    """List the built-in tasks with their sizes and sources; sizes come from the data folder `harness eval` would use."""
    from tabulate import tabulate

    from harness.eval.tasks import TaskError, available_tasks, load_samples, load_task, resolve_data_dir

    directory, origin = resolve_data_dir(data_dir)
    rows, unknown = [], False
    for name in available_tasks():
        spec = load_task(name)
        # Counting never reaches the hub: only generated tasks and local files that are there are read (a
        # generated pool with a local_file folder, paper-pool, is built from data: not counted).
        local = directory / spec.local_file if directory is not None and spec.local_file else None
        if (spec.generator and not spec.local_file) or (local is not None and local.is_file()):
            try:
                size = len(load_samples(spec, directory)[0])
            except TaskError:
                size = "unreadable"
        else:
            size, unknown = "?", True
        rows.append([name, size, spec.version, spec.local_file, spec.hub["path"] if spec.hub else "", spec.description])
    typer.echo(tabulate(rows, headers=["task", "size", "version", "local file", "hub", "description"], tablefmt="github"))
    missing = " (does not exist)" if directory is not None and not directory.is_dir() else ""
    typer.echo(f"\ndata folder: {origin}{missing}")
    if unknown:
        typer.echo("size ?: the local file is not in the data folder; `harness eval` would load the hub dataset")
