"""`harness train-sft`: supervised warm-up on demonstration JSONL, with checkpoints and resume."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.io import fail

AllowConfigChange = Annotated[bool, typer.Option(
    "--allow-config-change", help="With --resume: accept a config that differs from the run's; both are recorded in provenance.json.")]


def train_sft_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Folder of the model to start from (AutoModelForCausalLM).")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Demonstration JSONL: messages or prompt, and segments or response.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="An empty (or new) folder for checkpoints and the final model.")],
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps in all (a resumed run counts the ones done).")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: Annotated[float, typer.Option("--lr", min=0.0)] = 3e-3,
    warmup_steps: Annotated[int, typer.Option(min=0)] = 50,
    weight_decay: Annotated[float, typer.Option(min=0.0)] = 0.01,
    max_length: Annotated[int, typer.Option(min=2, help="Tokens kept per example (prompt + response).")] = 256,
    save_every: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps.")] = 200,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(min=0, help="torch CPU threads; 0 = every core.")] = 0,
    micro_batch_size: Annotated[int, typer.Option(min=0, help="Most examples per forward/backward pass, per process; 0 = all.")] = 0,
    micro_batch_tokens: Annotated[int, typer.Option(min=0, help="Most padded tokens (rows x longest) per pass; 0 = no limit.")] = 0,
    gradient_checkpointing: Annotated[bool, typer.Option(help="Recompute activations in the backward pass.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(help="Compute precision: auto (bfloat16 on GPU), float32 or bfloat16; weights stay float32.")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue the run in --output from its latest checkpoint.")] = False,
    allow_config_change: AllowConfigChange = False,
) -> None:
    """Fine-tune a model on demonstrations; tool-output tokens are masked out of the loss."""
    from harness.training.policy import PRECISIONS
    from harness.training.sft import SFTConfig, train_sft

    if device not in ("auto", "cpu", "cuda"):
        fail(f"--device must be auto, cpu or cuda (got {device!r})")
    if dtype not in PRECISIONS:
        fail(f"--dtype must be one of {', '.join(PRECISIONS)} (got {dtype!r})")
    if not model.is_dir():
        fail(f"--model {model} is not a folder")
    if not data.is_file():
        fail(f"--data {data} does not exist")
    config = SFTConfig(model=str(model), data=str(data), output=str(output), steps=steps, batch_size=batch_size,
                       learning_rate=learning_rate, warmup_steps=warmup_steps, weight_decay=weight_decay,
                       max_length=max_length, save_every=save_every, seed=seed, threads=threads,
                       micro_batch_size=micro_batch_size, micro_batch_tokens=micro_batch_tokens,
                       gradient_checkpointing=gradient_checkpointing, device=device, dtype=dtype)
    try:
        summary = train_sft(config, log=typer.echo, resume=resume, allow_config_change=allow_config_change)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"wrote {summary['output']} ({summary['steps']} steps, {summary['examples']} demonstrations, {summary['seconds']}s)")


def trainer_config_or_exit(config_class, help_config: bool, preset_name: str | None, config_file: Path | None, **overrides):
    """What train-rl and train-em do with their shared flags: print the fields (with the values the preset,
    YAML and flags given resolve to) and exit, or build the config (preset, YAML, flags) and check it
    names a model folder; every error is one line and exit 2."""
    try:
        if help_config:
            typer.echo(config_class.help_text(preset_name, config_file, **overrides))
            raise typer.Exit(0)
        config = config_class.resolve(preset_name, config_file, **overrides)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    if not config.model or not Path(config.model).is_dir():
        fail(f"--model must be a model folder (got {config.model!r}); make one with `harness model init` and `harness train-sft`")
    return config


def run_folder_or_exit(config, resume: bool, allow_config_change: bool) -> None:
    """Refuse an output folder before a model is loaded (the trainer decides again as it starts, for
    callers other than the CLI); the rule is run_folder.open_run's."""
    from harness.training.run_folder import is_main_process, open_run

    try:  # the lock too: a folder another run holds is refused before the model loads, naming its pid
        open_run(config.output_dir, config.COMMAND, config.to_dict(), config.RESUME_MAY_CHANGE, resume=resume,
                 allow_config_change=allow_config_change, lock=is_main_process()).release()
    except ValueError as exc:
        fail(str(exc))
