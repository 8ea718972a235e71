"""`harness train-rl`: the vanilla RL baseline (TRL's GRPOTrainer, code execution inside rollouts)."""

from __future__ import annotations

import typer

from harness.io import fail
from harness.training import options


def train_rl_command(
    model: options.Model = None,
    output_dir: options.OutputDir = None,
    preset_name: options.Preset = None,
    config_file: options.ConfigFile = None,
    task: options.Task = None,
    steps: options.Steps = None,
    learning_rate: options.LearningRate = None,
    save_every: options.SaveEvery = None,
    seed: options.Seed = None,
    gradient_checkpointing: options.GradientCheckpointing = None,
    device: options.Device = None,
    dtype: options.Dtype = None,
    report_to: options.ReportTo = None,
    resume: options.Resume = False,
    allow_config_change: options.AllowConfigChange = False,
    help_config: options.HelpConfig = False,
) -> None:
    """On-policy RL with outcome reward and real tool calls in the rollouts; logs TRL's metric names."""
    from harness.rl.config import RLConfig
    from harness.training.cli import run_folder_or_exit, trainer_config_or_exit

    config = trainer_config_or_exit(RLConfig, help_config, preset_name, config_file, **options.given(
        model=model, output_dir=output_dir, task=task, steps=steps, learning_rate=learning_rate, save_every=save_every,
        seed=seed, gradient_checkpointing=gradient_checkpointing, device=device, dtype=dtype, report_to=report_to))
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
