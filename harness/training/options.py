"""The command-line options `train-sft`, `train-rl` and `train-em` share, declared once (as lighteval does):
``trainer_command`` adds them to each command, which declares only its own (``steps: options.Steps =
None``). A flag left out is None, so the value comes from the preset, the ``--config`` file or the
config's default, in that order (TrainerConfig.resolve); a flag's name is its config field's, and its
help is the field's (harness/training/shared_fields.py).

Old spellings of `train-sft` and `harness testbed warmup` (``--output``, ``--lr``, ``-m``) still work for
one release, hidden from ``--help``, and print a deprecation line (``deprecated``)."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Annotated

import typer

from harness.training.shared_fields import HELP


def _help(name: str) -> str:
    return HELP[name][0].upper() + HELP[name][1:] + "."


def _report_to(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",") if item.strip()] if value is not None else None


Model = Annotated[str | None, typer.Option("--model", help=_help("model"))]
OutputDir = Annotated[Path | None, typer.Option("--output-dir", "-o", help=_help("output_dir"))]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML file of config fields (--help-config lists them).")]
Preset = Annotated[str | None, typer.Option("--preset", help="Named config to start from; --help-config names the presets.")]
Steps = Annotated[int | None, typer.Option(help="Optimiser steps in all (a resumed run counts those done).")]
Task = Annotated[str | None, typer.Option(help=_help("task"))]
AllowTestSplit = Annotated[bool | None, typer.Option("--allow-test-split", help=_help("allow_test_split"))]
Seed = Annotated[int | None, typer.Option(help=_help("seed"))]
LearningRate = Annotated[float | None, typer.Option("--learning-rate", help=_help("learning_rate"))]
SaveEvery = Annotated[int | None, typer.Option(help=_help("save_every"))]
ReportTo = Annotated[str | None, typer.Option(
    callback=_report_to, help="Comma-separated " + _help("report_to").lower())]
Device = Annotated[str | None, typer.Option(help=_help("device"))]
Dtype = Annotated[str | None, typer.Option(help=_help("dtype"))]
GradientCheckpointing = Annotated[bool | None, typer.Option(help=_help("gradient_checkpointing"))]
Resume = Annotated[bool, typer.Option(help="Continue the run in --output-dir from its latest checkpoint.")]
AllowConfigChange = Annotated[bool, typer.Option(
    "--allow-config-change", help="With --resume: accept a config that differs from the run's; both are recorded in provenance.json.")]
HelpConfig = Annotated[bool, typer.Option(
    "--help-config", help="List every config field (with --preset, --config or flags: the values they give) and exit.")]


def deprecated(old: str, new: str):
    """A hidden option for ``old``, an earlier spelling of ``new``: it prints the deprecation line when given."""

    def warn(value):
        if value is not None:
            typer.echo(f"warning: {old} is deprecated and will be removed in the next release; use {new}", err=True)
        return value

    return typer.Option(old, hidden=True, callback=warn, help=f"Deprecated: {new}.")


OldOutput = Annotated[Path | None, deprecated("--output", "--output-dir")]
OldLr = Annotated[float | None, deprecated("--lr", "--learning-rate")]
OldModel = Annotated[str | None, deprecated("-m", "--model")]


# The options of every trainer command, around the command's own (trainer_command): these first ...
LEADING = {"model": (Model, None), "output_dir": (OutputDir, None), "preset_name": (Preset, None),
           "config_file": (ConfigFile, None)}
# ... and these last.
TRAILING = {"learning_rate": (LearningRate, None), "save_every": (SaveEvery, None), "seed": (Seed, None),
            "gradient_checkpointing": (GradientCheckpointing, None), "device": (Device, None), "dtype": (Dtype, None),
            "report_to": (ReportTo, None), "resume": (Resume, False), "allow_config_change": (AllowConfigChange, False),
            "help_config": (HelpConfig, False)}

COMMAND_ONLY = ("preset_name", "config_file", "resume", "allow_config_change", "help_config")  # not config fields


def trainer_command(command):
    """``command`` as a Typer command with every trainer option besides its own: it declares its own
    options and a ``shared`` parameter, which receives the shared options' values as a dict."""
    hints = typing.get_type_hints(command, include_extras=True)
    own = [parameter.replace(annotation=hints[parameter.name]) for parameter in inspect.signature(command).parameters.values()
           if parameter.name != "shared"]
    leading, trailing = ([inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
                          for name, (kind, default) in group.items()] for group in (LEADING, TRAILING))
    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in (*leading, *own, *trailing)]

    def run(**values):
        return command(shared={name: values.pop(name) for name in (*LEADING, *TRAILING)}, **values)

    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(run, attribute, getattr(command, attribute))
    run.__signature__ = inspect.Signature(parameters)
    run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return run


def given(**flags) -> dict:
    """Flags as config overrides: a path as text, None (not given) kept, so resolve() skips it."""
    return {name: str(value) if isinstance(value, Path) else value for name, value in flags.items()}


def either(new, old):
    """The value of a flag or, when only its deprecated spelling was given, of that."""
    return new if new is not None else old
