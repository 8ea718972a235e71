"""`harness train-rl`: the vanilla RL baseline (TRL's GRPOTrainer, code execution inside rollouts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.io import fail
from harness.training.cli import AllowConfigChange


def train_rl_command(
    model: Annotated[str | None, typer.Option(help="Policy to start from (a Hugging Face model folder).")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="YAML file with RLConfig fields.")] = None,
    preset_name: Annotated[str | None, typer.Option("--preset", help="tiny (testbed) or qwen2.5-7b (real GPUs).")] = None,
    task: Annotated[str | None, typer.Option(help="Training task (built-in name or JSONL path).")] = None,
    steps: Annotated[int | None, typer.Option(min=1)] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --output-dir from its latest checkpoint.")] = False,
    allow_config_change: AllowConfigChange = False,
    help_config: Annotated[bool, typer.Option("--help-config", help="List every config field and exit.")] = False,
) -> None:
    """On-policy RL with outcome reward and real tool calls in the rollouts; logs TRL's metric names."""
    from harness.rl.config import RLConfig
    from harness.training.cli import run_folder_or_exit, trainer_config_or_exit

    config = trainer_config_or_exit(RLConfig, help_config, preset_name, config_file, model=model, task=task, steps=steps,
                                    seed=seed, device=device, output_dir=str(output_dir) if output_dir else None)
    run_folder_or_exit(config, resume, allow_config_change)
    from harness.rl.trainer import RLTrainer

    try:
        trainer = RLTrainer(config)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    from rich.progress import Progress

    with Progress() as progress:
        bar = progress.add_task("train-rl", total=config.steps)

        def show(metrics: dict) -> None:
            # a step that reuses earlier rollouts (steps_per_generation > 1) logs no reward of its own
            if "reward" in metrics:
                progress.update(bar, description=f"train-rl reward {metrics['reward']:.2f} code {metrics['code_rate']:.2f}")
            progress.update(bar, completed=metrics["step"])

        try:
            trainer.train(resume=resume, on_step=show, allow_config_change=allow_config_change)
        except ValueError as exc:
            fail(str(exc))
    typer.echo(f"done: {config.steps} steps; checkpoints and metrics.jsonl in {config.output_dir}")
