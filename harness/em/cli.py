"""`harness train-em`: the paper's EM method (E-step structured exploration, M-step off-policy RL)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.io import fail
from harness.training.cli import AllowConfigChange


def train_em_command(
    model: Annotated[str | None, typer.Option(help="Policy to start from (a warmed-up Hugging Face model folder).")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="YAML file with EMConfig fields.")] = None,
    preset_name: Annotated[str | None, typer.Option("--preset", help="tiny (testbed) or paper-7b (the paper's recipe, real GPUs).")] = None,
    task: Annotated[str | None, typer.Option(help="Training task (built-in name or JSONL path).")] = None,
    iterations: Annotated[int | None, typer.Option(min=1)] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --output-dir from its last checkpoint (iteration or M-step step).")] = False,
    allow_config_change: AllowConfigChange = False,
    help_config: Annotated[bool, typer.Option("--help-config", help="List every config field and exit.")] = False,
) -> None:
    """EM for adaptive tool use: per query, K rollouts per decision (code forced by a prefix), Q̂ and s*,
    a subsampled training set, then truncated-IS policy gradient + KL + decision cross-entropy."""
    from harness.em.config import EMConfig
    from harness.training.cli import run_folder_or_exit, trainer_config_or_exit

    config = trainer_config_or_exit(EMConfig, help_config, preset_name, config_file, model=model, task=task, iterations=iterations,
                                    seed=seed, device=device, output_dir=str(output_dir) if output_dir else None)
    run_folder_or_exit(config, resume, allow_config_change)
    from harness.em.trainer import EMTrainer

    try:
        reports = EMTrainer(config).train(resume=resume, allow_config_change=allow_config_change)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    for report in reports:
        typer.echo(f"iteration {report['iteration']}: accuracy {report['accuracy']} code rate {report['code_rate']} "
                   f"selection accuracy {report['selection_accuracy']} dropped {report['dropped_share']:.0%}")
    typer.echo(f"done: report.jsonl, E-step samples and checkpoints in {config.output_dir}")
