"""Every command shown in README.md or docs/*.md parses: `harness ...` (also behind `accelerate launch -m
harness.cli_main`) through the real Typer app; any other `python -m MODULE ...` must name a module that exists
(no harness module has its own parser any more: every command is the Typer app's). Parsing, not `--help` (which
short-circuits validation): an unknown option, a missing argument or a bad
value fails; nothing is run. Shown means in a fenced block, or inline with options but no syntax summary
(`[--all]`, `local|docker`, `...`)."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import typer

from harness.cli import app

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`((?:harness|python -m) [^`]*?--[^`]*)`(?!`)")
SYNTAX_SUMMARY = re.compile(r"\[|\||\.\.\.|^harness [A-Z]+ ")  # [--all], local|docker, PATH..., harness COMMAND
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "(", ")"}


def shell_commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, comments dropped, each without its leading VAR=value words."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in SHELL_OPERATORS:
            commands.append(current)
            current = []
        elif current or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
            current.append(token)
    return [command for command in commands + [current] if command]


def entry_point(words: list[str]) -> tuple[str, list[str]] | None:
    """("harness", args) or (module, args) for a command this test checks, else None (make, bench scripts...)."""
    if Path(words[0]).name == "harness":
        return "harness", words[1:]
    if "-m" in words[:-1] and (Path(words[0]).name.startswith("python") or words[0] == "accelerate"):
        module = words[words.index("-m") + 1]
        args = words[words.index("-m") + 2:]
        return ("harness", args) if module == "harness.cli_main" else (module, args)
    return None


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(where, program, args) for each checked command, `\\` continuations joined."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        where = lambda offset: f"{path.relative_to(REPO)}:{text.count(chr(10), 0, offset) + 1}"  # noqa: E731
        for block in FENCE.finditer(text):
            offset = block.start(1)
            for line in re.split(r"(?<!\\)\n", block.group(1)):
                for words in shell_commands(line.replace("\\\n", " ")):
                    if entry := entry_point(words):
                        found.append((where(offset), *entry))
                offset += len(line) + 1
        prose = FENCE.sub(lambda block: re.sub(r"[^\n]", " ", block.group(0)), text)  # same offsets, no blocks
        for span in INLINE.finditer(prose):
            if not SYNTAX_SUMMARY.search(span.group(1)):
                commands = map(entry_point, shell_commands(span.group(1)))
                found += [(where(span.start()), *entry) for entry in commands if entry]
    return found


COMMANDS = documented_commands()


def parse_harness(args: list[str]) -> None:
    """Resolve the command path of `harness ARGS` and parse its arguments as click would, without invoking it."""
    command, context, rest = typer.main.get_command(app), None, list(args)
    name = "harness"
    while True:
        try:
            context = command.make_context(name, rest, parent=context, resilient_parsing=False)
        except typer.Exit as stopped:  # an eager option (--help, --help-config) printed and stopped
            assert stopped.exit_code == 0
            return
        if not hasattr(command, "commands"):
            return
        rest = [*context._protected_args, *context.args]  # left for the sub-command (as typer's completion reads it)
        assert rest, f"`{name}` needs a sub-command"
        name, command, rest = command.resolve_command(context, rest)


def module_exists(module: str) -> None:
    assert importlib.util.find_spec(module) is not None, f"no module {module}"


def test_the_docs_show_harness_commands_in_their_code_blocks():
    programs = [program for where, program, _ in COMMANDS if where.startswith("README.md")]
    assert programs.count("harness") >= 5
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("args", [["eval", "--no-such-option"], ["eval", "--samples", "zero"],
                                  ["eval", "--samples", "0"], ["sandbox", "run"], ["no-such-command"], ["testbed"]])
def test_a_wrong_command_fails_to_parse(args):
    with pytest.raises(Exception) as caught:
        parse_harness(args)
    assert not isinstance(caught.value, typer.Exit)


def test_a_module_that_is_gone_fails():
    with pytest.raises(AssertionError):
        module_exists("harness.em.miniature")  # `harness testbed miniature` since issue 18


@pytest.mark.parametrize("where, program, args", COMMANDS, ids=[f"{where} {program}" for where, program, _ in COMMANDS])
def test_documented_command_parses(where, program, args):
    if program == "harness":
        parse_harness(args)
    else:
        module_exists(program)
