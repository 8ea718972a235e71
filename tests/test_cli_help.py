"""Every command's `--help` at 80 columns: each option it declares has a help line and is printed whole,
no line is wider than the terminal (the trainers' option names were once cut: `--allow-config-ch…`). The
commands are walked from the app, so a new one is covered without editing this."""

from __future__ import annotations

import re

import pytest
import typer
from rich.cells import cell_len
from typer.testing import CliRunner

from harness.cli import app

WIDTH = 80
runner = CliRunner()


def command_paths(command, path: tuple[str, ...] = ()) -> list:
    """(argv prefix, command) for the command and every command under it (Typer ships its own click,
    so groups are told by their sub-commands, not by class)."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += command_paths(sub, (*path, name))
    return found


COMMANDS = command_paths(typer.main.get_command(app))


def test_the_walk_reaches_nested_commands():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"eval", "train-sft", "train-rl", "train-em", "sandbox doctor", "model init"} <= names


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(path) or "harness" for path, _ in COMMANDS])
def test_help_at_80_columns_shows_every_option_name_whole(path, command):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH)}, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    too_wide = [line for line in result.output.splitlines() if cell_len(line) > WIDTH]
    assert not too_wide, too_wide
    for param in command.params:
        if param.param_type_name == "option" and not param.hidden:
            assert param.help, f"{param.opts[0]} has no help line"
            for name in [*param.opts, *param.secondary_opts]:
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", result.output), f"{name} is cut or missing"
