"""`harness train-em`: the paper's EM method (E-step structured exploration, M-step off-policy RL)."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.io import fail
from harness.training import options


def train_em_command(
    model: options.Model = None,
    output_dir: options.OutputDir = None,
    preset_name: options.Preset = None,
    config_file: options.ConfigFile = None,
    task: options.Task = None,
    iterations: Annotated[int | None, typer.Option(help="EM iterations (E-step then M-step) in all.")] = None,
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
    """EM for adaptive tool use: per query, K rollouts per decision (code forced by a prefix), Q̂ and s*,
    a subsampled training set, then truncated-IS policy gradient + KL + decision cross-entropy."""
    from harness.em.config import EMConfig
    from harness.training.cli import run_folder_or_exit, trainer_config_or_exit

    config = trainer_config_or_exit(EMConfig, help_config, preset_name, config_file, **options.given(
        model=model, output_dir=output_dir, task=task, iterations=iterations, learning_rate=learning_rate,
        save_every=save_every, seed=seed, gradient_checkpointing=gradient_checkpointing, device=device, dtype=dtype,
        report_to=report_to))
    run_folder_or_exit(config, resume, allow_config_change)
    from harness.em.trainer import EMTrainer

    try:
        lines = EMTrainer(config).train(resume=resume, allow_config_change=allow_config_change)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    for line in lines:
        accuracy = {name.removeprefix("em/accuracy/"): round(value, 3) for name, value in line.items() if name.startswith("em/accuracy/")}
        typer.echo(f"iteration {line['em/iteration']}: reward {line['reward']:.3f} accuracy {accuracy} code rate "
                   f"{line['code_rate']:.3f} selection accuracy {line['em/selection_accuracy']} dropped {line['em/dropped_share']:.0%}")
    typer.echo(f"done: metrics.jsonl, E-step samples and checkpoints in {config.output_dir}")
