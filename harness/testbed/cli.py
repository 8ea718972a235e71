"""`harness model init`, `harness testbed demos` and `harness testbed warmup` (nothing to a warmed-up tiny model)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from harness.io import fail
from harness.training import options

model_app = typer.Typer(help="Create small models for the testbed.", no_args_is_help=True)
testbed_app = typer.Typer(help="The CPU testbed: arith demonstrations and the one-command warm-up.", no_args_is_help=True)

CodeRatioOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of free-choice (auto prompt) demonstrations that write code.")]
ForcedShareOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of demonstrations under an explicit method (cot, cot-trigger, code-trigger, tir).")]


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
    counts = write_demonstrations(output / "demos.jsonl", demonstration_rows(size, seed=seed, code_ratio=code_ratio, forced_share=forced_share))
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
