"""`harness train-em`: the paper's EM method (E-step structured exploration, M-step off-policy RL)."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.io import fail
from harness.training import options


@options.trainer_command
def train_em_command(
    shared: dict,
    task: options.Task = None,
    allow_test_split: options.AllowTestSplit = None,
    iterations: Annotated[int | None, typer.Option(help="EM iterations (E-step then M-step) in all.")] = None,
) -> None:
    """EM for adaptive tool use: per query, K rollouts per decision (code forced by a prefix), Q̂ and s*,
    a subsampled training set, then truncated-IS policy gradient + KL + decision cross-entropy."""
    from harness.em.config import EMConfig
    from harness.training.cli import run_folder_or_exit, trainer_config_or_exit

    config = trainer_config_or_exit(EMConfig, shared, task=task, allow_test_split=allow_test_split, iterations=iterations)
    run_folder_or_exit(config, shared)
    from harness.em.trainer import EMTrainer

    try:
        lines = EMTrainer(config).train(resume=shared["resume"], allow_config_change=shared["allow_config_change"])
    except (ValueError, OSError) as exc:
        fail(str(exc))
    for line in lines:
        accuracy = {name.removeprefix("em/accuracy/"): round(value, 3) for name, value in line.items()
                    if name.startswith("em/accuracy/")}
        typer.echo(f"iteration {line['em/iteration']}: reward {line['reward']:.3f} accuracy {accuracy} code rate "
                   f"{line['code_rate']:.3f} selection accuracy {line['em/selection_accuracy']} "
                   f"dropped {line['em/dropped_share']:.0%}")
    typer.echo(f"done: metrics.jsonl, E-step samples and checkpoints in {config.output_dir}")
