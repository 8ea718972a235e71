"""`harness train-sft`: supervised warm-up on demonstration JSONL, with checkpoints and resume."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.io import fail
from harness.training import options


@options.trainer_command
def train_sft_command(
    shared: dict,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Demonstration JSONL "
                                                                  "(prompt or messages, response or segments).")] = None,
    steps: options.Steps = None,
    batch_size: Annotated[int | None, typer.Option(help="Demonstrations per optimiser step.")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="Linear warm-up steps before the cosine decay.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay (not on norms and biases).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens kept per example (prompt + response).")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads; 0 = every core.")] = None,
    micro_batch_size: Annotated[int | None, typer.Option(help="Most examples per pass, per process; 0 = all.")] = None,
    micro_batch_tokens: Annotated[int | None, typer.Option(help="Most padded tokens (rows x longest) per pass; 0 = no limit.")] = None,
    old_output: options.OldOutput = None,
    old_lr: options.OldLr = None,
    old_model: options.OldModel = None,
) -> None:
    """Fine-tune a model on demonstrations; tool-output tokens are masked out of the loss."""
    from harness.training.sft import SFTConfig, train_sft

    shared.update(model=options.either(shared["model"], old_model), output_dir=options.either(shared["output_dir"], old_output),
                  learning_rate=options.either(shared["learning_rate"], old_lr))
    config = trainer_config_or_exit(SFTConfig, shared, data=data, steps=steps, batch_size=batch_size, warmup_steps=warmup_steps,
                                    weight_decay=weight_decay, max_length=max_length, threads=threads,
                                    micro_batch_size=micro_batch_size, micro_batch_tokens=micro_batch_tokens)
    if not Path(config.data).is_file():
        fail(f"--data must be a demonstration JSONL file (got {config.data!r})")
    try:
        summary = train_sft(config, log=typer.echo, resume=shared["resume"], allow_config_change=shared["allow_config_change"])
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"wrote {summary['output']} ({summary['steps']} steps, {summary['examples']} demonstrations, {summary['seconds']}s)")


def trainer_config_or_exit(config_class, shared: dict, **own):
    """What every trainer command does with its flags (``shared``, trainer_command's, and its ``own``):
    print the fields (with the values the preset, YAML and flags given resolve to) and exit, or build the
    config (preset, YAML, flags) and check it names a model folder; every error is one line and exit 2."""
    fields = options.given(**{name: value for name, value in shared.items() if name not in options.COMMAND_ONLY}, **own)
    try:
        if shared["help_config"]:
            typer.echo(config_class.help_text(shared["preset_name"], shared["config_file"], **fields))
            raise typer.Exit(0)
        config = config_class.resolve(shared["preset_name"], shared["config_file"], **fields)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    if not config.model or not Path(config.model).is_dir():
        fail(f"--model must be a model folder (got {config.model!r}); make one with `harness model init` and `harness train-sft`")
    return config


def run_folder_or_exit(config, shared: dict) -> None:
    """Refuse an output folder before a model is loaded (the trainer decides again as it starts, for
    callers other than the CLI); the rule is run_folder.open_run's."""
    from harness.training.run_folder import is_main_process, open_run

    try:  # the lock too: a folder another run holds is refused before the model loads, naming its pid
        open_run(config.output_dir, config.COMMAND, config.to_dict(), config.RESUME_MAY_CHANGE, resume=shared["resume"],
                 allow_config_change=shared["allow_config_change"], lock=is_main_process()).release()
    except ValueError as exc:
        fail(str(exc))
