"""`harness train-rl`: the vanilla RL baseline (TRL's GRPOTrainer, code execution inside rollouts)."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.io import fail
from harness.training import options

# The choices live in harness.rl.strategies, which the command imports only when it runs (--help stays instant).
Strategy = Annotated[str | None, typer.Option(help="Reward/advantage shaper on GRPO: none, otc, adatir or roc (docs/rl.md).")]


@options.trainer_command
def train_rl_command(shared: dict, task: options.Task = None, allow_test_split: options.AllowTestSplit = None,
                     steps: options.Steps = None, strategy: Strategy = None) -> None:
    """On-policy RL with outcome reward and real tool calls in the rollouts; logs TRL's metric names."""
    from harness.rl.config import RLConfig
    from harness.training.cli import run_folder_or_exit, trainer_config_or_exit

    config = trainer_config_or_exit(RLConfig, shared, task=task, allow_test_split=allow_test_split, steps=steps, strategy=strategy)
    run_folder_or_exit(config, shared)
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
            trainer.train(resume=shared["resume"], on_step=show, allow_config_change=shared["allow_config_change"])
        except ValueError as exc:
            fail(str(exc))
    typer.echo(f"done: {config.steps} steps; checkpoints and metrics.jsonl in {config.output_dir}")
