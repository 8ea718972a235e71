"""`harness model init`, `harness testbed demos`, `harness testbed warmup` (nothing to a warmed-up tiny model),
`harness testbed miniature` (the miniature reproduction, harness/testbed/miniature.py) and `harness testbed arena`
(every strategy on one board, harness/testbed/arena.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from harness.io import fail
from harness.testbed.arena import DEFAULT_STRATEGIES
from harness.testbed.miniature import DEFAULT_VARIANTS
from harness.training import options

model_app = typer.Typer(help="Create small models for the testbed.", no_args_is_help=True)
testbed_app = typer.Typer(help="The CPU testbed: arith demonstrations, the one-command warm-up, the miniature reproduction "
                                "and the arena.",
                          no_args_is_help=True)

CodeRatioOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of free-choice (auto prompt) demonstrations that write code.")]
ForcedShareOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of demonstrations under an explicit method "
                                                                       "(cot, cot-trigger, code-trigger, tir).")]
# The board commands' (miniature, arena) shared options.
ModelOpt = Annotated[Path, typer.Option(help="The warmed-up model (OUT/sft of `harness testbed warmup`).")]
BaseOpt = Annotated[Path | None, typer.Option(help="The un-warmed model for Base+RL (default: init/ beside --model).")]
SeedsOpt = Annotated[str, typer.Option(help="Comma-separated integers; one (row, seed) job each.")]
IterationsOpt = Annotated[int, typer.Option(min=1, help="EM iterations, and RL's equal rollout budget.")]
QueriesOpt = Annotated[int | None, typer.Option(min=1, help="EM queries per iteration, which sets every row's rollout budget "
                                                            "(RL: the same in whole steps); default train-em's tiny preset (32).")]
TestSizeOpt = Annotated[int, typer.Option(min=3, help="Held-out arith problems, a third of each kind.")]
EmVariantsOpt = Annotated[str, typer.Option(help="name or name:key=value;key=value, comma-separated.")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Processes running (row, seed) jobs in parallel.")]
ThreadsOpt = Annotated[int, typer.Option(min=1, help="torch threads per job, whatever --workers is (results may depend on it).")]
OutOpt = Annotated[Path, typer.Option(help="The board (markdown); .png and .json beside it.")]


@model_app.command("init")
def init_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (model, tokenizer, chat template).")],
    preset: Annotated[str, typer.Option(help="tiny (~0.9M parameters) or small (~4.8M).")] = "tiny",
    seed: Annotated[int, typer.Option(help="Seed for the weights' initialisation.")] = 0,
    vocab_size: Annotated[int, typer.Option(min=300, help="BPE vocabulary cap (digits are always single tokens).")] = 1024,
) -> None:
    """Write a randomly initialised Llama-architecture model with the project's own tokenizer."""
    from harness.testbed.model_init import PRESETS, write_tiny_model

    if preset not in PRESETS:
        fail(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    summary = write_tiny_model(output, preset=preset, seed=seed, vocab_size=vocab_size)
    typer.echo(f"wrote {summary['path']}: {summary['preset']}, {summary['parameters']:,} parameters, vocabulary {summary['vocab']}")


@testbed_app.command("demos")
def demos_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write.")],
    size: Annotated[int, typer.Option(min=1, help="Demonstrations to write (train-split problems).")] = 6000,
    code_ratio: CodeRatioOpt = 0.02,
    forced_share: ForcedShareOpt = 0.5,
    seed: Annotated[int, typer.Option(help="Seed for the problems and which are forced.")] = 0,
) -> None:
    """Write arith demonstrations in both styles (CoT and code with executed output)."""
    from harness.testbed.demos import demonstration_rows, write_demonstrations

    counts = write_demonstrations(output, demonstration_rows(size, seed=seed, code_ratio=code_ratio, forced_share=forced_share))
    typer.echo(f"wrote {output}: {json.dumps(counts)}")


@testbed_app.command("warmup")
def warmup_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for init/, demos.jsonl and the warmed-up model in sft/.")],
    preset: Annotated[str, typer.Option(help="Model size: tiny (~0.9M parameters) or small (~4.8M).")] = "tiny",
    size: Annotated[int, typer.Option(min=1, help="Demonstrations.")] = 6000,
    code_ratio: CodeRatioOpt = 0.02,
    forced_share: ForcedShareOpt = 0.5,
    steps: options.Steps = None,
    batch_size: Annotated[int | None, typer.Option(help="Demonstrations per optimiser step.")] = None,
    learning_rate: options.LearningRate = None,
    threads: Annotated[int, typer.Option(min=0, help="torch CPU threads; 0 = every core.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed for the model, the demonstrations and SFT.")] = 0,
    old_lr: options.OldLr = None,
) -> None:
    """Nothing to a warmed-up tiny model: tokenizer + model init, demonstrations, SFT (times each stage)."""
    from harness.testbed.demos import demonstration_rows, write_demonstrations
    from harness.testbed.model_init import PRESETS, write_tiny_model
    from harness.training.sft import SFTConfig, train_sft

    if preset not in PRESETS:
        fail(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    timings, began = {}, time.perf_counter()
    model_summary = write_tiny_model(output / "init", preset=preset, seed=seed)
    timings["init_s"] = round(time.perf_counter() - began, 1)
    counts = write_demonstrations(output / "demos.jsonl",
                                  demonstration_rows(size, seed=seed, code_ratio=code_ratio, forced_share=forced_share))
    timings["demos_s"] = round(time.perf_counter() - began - timings["init_s"], 1)
    try:
        config = SFTConfig.preset("tiny").updated(
            model=str(output / "init"), data=str(output / "demos.jsonl"), output_dir=str(output / "sft"), steps=steps,
            batch_size=batch_size, learning_rate=options.either(learning_rate, old_lr), seed=seed, threads=threads)
        config = config.updated(save_every=max(config.steps // 3, 1))
        sft_summary = train_sft(config, log=typer.echo, resume=True)  # a rerun continues its own sft/ run
    except ValueError as exc:
        fail(str(exc))
    timings["sft_s"] = sft_summary["seconds"]
    timings["total_s"] = round(time.perf_counter() - began, 1)
    report = {"model": model_summary, "demonstrations": counts, "sft": sft_summary, "timings": timings}
    (output / "warmup.json").write_text(json.dumps(report, indent=2))
    typer.echo(f"warmed-up model: {output / 'sft'}  ({timings['total_s']}s: {json.dumps(timings)})")


@testbed_app.command("miniature")
def miniature_command(
    model: ModelOpt,
    base: BaseOpt = None,
    seeds: SeedsOpt = "0,1,2,3,4",
    iterations: IterationsOpt = 2,
    queries: QueriesOpt = None,
    test_size: TestSizeOpt = 60,
    em_variants: EmVariantsOpt = DEFAULT_VARIANTS,
    workers: WorkersOpt = 1,
    threads: ThreadsOpt = 1,
    out: OutOpt = Path("leaderboards/miniature.md"),
) -> None:
    """SFT only, SFT+RL, Base+RL and EM variants on arith at an equal rollout budget, over seeds: the board."""
    from harness.testbed.miniature import write_board

    settings, variants, command = _board_settings("miniature", model, base, seeds, iterations, queries, test_size, em_variants,
                                                  workers, threads, out)
    seconds = _with_progress("miniature jobs", lambda progress: write_board(settings, variants, out, command, progress))
    typer.echo(f"wrote {out} and {out.with_suffix('.png')} in {seconds:.0f} s")


@testbed_app.command("arena")
def arena_command(
    model: ModelOpt,
    base: BaseOpt = None,
    strategies: Annotated[str, typer.Option(help="RL strategies with a row each (otc, adatir, roc), comma-separated.")]
    = DEFAULT_STRATEGIES,
    seeds: SeedsOpt = "0,1,2,3,4",
    iterations: IterationsOpt = 2,
    queries: QueriesOpt = None,
    test_size: TestSizeOpt = 60,
    em_variants: EmVariantsOpt = DEFAULT_VARIANTS,
    workers: WorkersOpt = 1,
    threads: ThreadsOpt = 1,
    out: OutOpt = Path("leaderboards/arena.md"),
) -> None:
    """Every strategy (SFT only, SFT+RL, Base+RL, EM variants, RL+OTC/AdaTIR/RoC) from the same warmed-up model at
    an equal budget, with the efficiency and trust metrics and a Pareto plot: a benchmark, not a test."""
    from harness.testbed.arena import parse_strategies, write_board

    try:
        rows = parse_strategies(strategies)
    except ValueError as error:
        fail(str(error))
    settings, variants, command = _board_settings("arena", model, base, seeds, iterations, queries, test_size, em_variants,
                                                  workers, threads, out)
    command = command.replace(" --seeds", f" --strategies {strategies} --seeds", 1)
    seconds = _with_progress("arena jobs", lambda progress: write_board(settings, variants, rows, out, command, progress))
    typer.echo(f"wrote {out}, {out.with_suffix('.png')} and {out.with_suffix('.json')} in {seconds:.0f} s")


def _board_settings(name: str, model: Path, base: Path | None, seeds: str, iterations: int, queries: int | None, test_size: int,
                    em_variants: str, workers: int, threads: int, out: Path):
    """The board commands' checked settings, EM variants and the command line that reproduces the board."""
    from harness.testbed.miniature import Settings, parse_variants

    base = base or model.parent / "init"
    try:
        seed_list = [int(seed) for seed in seeds.split(",")]
    except ValueError:
        fail(f"--seeds must be comma-separated integers, not {seeds!r}")
    for option, path in (("--model", model), ("--base", base)):
        if not (path / "config.json").is_file():
            fail(f"{option} {path} is not a model folder (no config.json)")
    try:
        variants = parse_variants(em_variants)
    except (ValueError, TypeError) as error:
        fail(str(error))
    budget = f" --queries {queries}" if queries else ""
    command = (f"harness testbed {name} --model {model} --base {base} --seeds {seeds} --iterations {iterations}{budget} "
               f"--test-size {test_size} --em-variants {em_variants} --workers {workers} --threads {threads} --out {out}")
    return Settings(str(model), str(base), seed_list, iterations, test_size, workers, threads, queries), variants, command


def _with_progress(label: str, run):
    """``run(progress)`` under a progress bar over the jobs; ``progress(done, total)`` moves it. Returns what run returns."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                  TimeRemainingColumn()) as bar:
        task = bar.add_task(label, total=None)
        return run(lambda done, total: bar.update(task, completed=done, total=total))
