"""One convention for `train-sft`, `train-rl` and `train-em`: the options they share are declared once (same
names, help and defaults), their config fields too, the old spellings of `train-sft` still work for one
release with a deprecation line, and a run folder from before this convention resumes or is refused in
one line."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
import typer
from typer.testing import CliRunner

from harness.cli import app
from harness.defaults import EVAL_SANDBOX_TIMEOUT_S, MAX_TOOL_CALLS, TRAIN_SANDBOX_TIMEOUT_S
from harness.em.config import EMConfig
from harness.rl.config import RLConfig
from harness.training.run_folder import PROVENANCE_FILE
from harness.training.sft import SFTConfig
from harness.training.shared_fields import HELP

runner = CliRunner()
TRAINERS = {"train-sft": SFTConfig, "train-rl": RLConfig, "train-em": EMConfig}
COMMAND_ONLY = {"preset_name", "config_file", "resume", "allow_config_change", "help_config"}


def options_of(command: str) -> dict:
    return {param.name: param for param in typer.main.get_command(app).commands[command].params if not param.hidden}


def test_the_trainer_commands_share_their_common_options_name_help_and_default():
    commands = {command: options_of(command) for command in TRAINERS}
    shared = set.intersection(*(set(options) for options in commands.values()))
    assert shared >= {"model", "output_dir", "preset_name", "config_file", "seed", "learning_rate", "save_every", "device",
                      "dtype", "report_to", "gradient_checkpointing", "resume", "allow_config_change", "help_config"}
    for pair in (("train-sft", "train-rl"), ("train-rl", "train-em")):
        shared |= set(commands[pair[0]]) & set(commands[pair[1]])  # --steps, --task
    for name in shared:
        declared = {(tuple(o.opts), tuple(o.secondary_opts), o.help, o.default)
                    for options in commands.values() if name in options for o in [options[name]]}
        assert len(declared) == 1, (name, declared)


@pytest.mark.parametrize("command", TRAINERS)
def test_every_trainer_flag_is_a_config_field_of_the_same_name(command):
    names = {f.name for f in fields(TRAINERS[command])}
    for name, option in options_of(command).items():
        assert option.help, f"{command} {option.opts} has no help line"
        if name not in COMMAND_ONLY:
            assert name in names and option.opts[0] == "--" + name.replace("_", "-"), (command, option.opts)


def test_config_fields_shared_by_trainers_read_their_help_and_default_from_one_place():
    for name, help_text in HELP.items():
        holders = [cls for cls in TRAINERS.values() if name in {f.name for f in fields(cls)}]
        assert holders, f"{name} is in shared_fields.HELP but no trainer has it"
        for cls in holders:
            assert {f.name: f for f in fields(cls)}[name].metadata["help"].startswith(help_text), (cls.__name__, name)
    same_default = ("model", "seed", "report_to", "device", "dtype", "gradient_checkpointing", "task", "task_args",
                    "allow_test_split", "max_tool_calls", "temperature", "sandbox", "sandbox_timeout")
    for name in same_default:
        assert len({json.dumps(getattr(cls(), name)) for cls in TRAINERS.values() if hasattr(cls(), name)}) == 1, name


def test_eval_and_training_take_the_rollout_limits_from_harness_defaults():
    from harness.eval.runner import EvalConfig

    assert RLConfig().max_tool_calls == EMConfig().max_tool_calls == EvalConfig().max_tool_calls == MAX_TOOL_CALLS
    assert RLConfig().sandbox_timeout == EMConfig().sandbox_timeout == TRAIN_SANDBOX_TIMEOUT_S
    assert EvalConfig().sandbox_timeout == EVAL_SANDBOX_TIMEOUT_S
    eval_options = options_of("eval")
    assert (eval_options["max_tool_calls"].default, eval_options["sandbox_timeout"].default) == (MAX_TOOL_CALLS, EVAL_SANDBOX_TIMEOUT_S)


def test_train_sft_has_presets_and_help_config_like_the_others():
    result = runner.invoke(app, ["train-sft", "--help-config", "--preset", "tiny", "--learning-rate", "0.01"])
    assert result.exit_code == 0, result.output
    lines = {line.split(" ", 1)[0]: line for line in result.output.splitlines()}
    assert lines["steps"].startswith("steps = 2000 (set by --preset tiny; default 1000)")
    assert lines["learning_rate"].startswith("learning_rate = 0.01 (set by --learning-rate; default 0.003)")
    assert result.output.splitlines()[0] == "train-sft presets: tiny, qwen2.5-7b (--help-config --preset NAME shows one)"


@pytest.mark.parametrize("old, new, field, value", [("--lr", "--learning-rate", "learning_rate", "0.01"),
                                                     ("--output", "--output-dir", "output_dir", "elsewhere"),
                                                     ("-m", "--model", "model", "some-model")])
def test_old_train_sft_spellings_still_work_and_say_they_are_deprecated(old, new, field, value):
    result = runner.invoke(app, ["train-sft", "--help-config", old, value])
    assert result.exit_code == 0, result.output
    assert f"warning: {old} is deprecated and will be removed in the next release; use {new}" in result.output
    line = next(line for line in result.output.splitlines() if line.startswith(f"{field} "))
    assert line.startswith(f"{field} = {float(value) if field == 'learning_rate' else value!r} (set by --"), line
    assert old not in runner.invoke(app, ["train-sft", "--help"], terminal_width=80).output.split()


def test_the_new_spellings_print_no_deprecation_line():
    result = runner.invoke(app, ["train-sft", "--help-config", "--learning-rate", "0.01", "-o", "x", "--model", "m"])
    assert result.exit_code == 0 and "deprecated" not in result.output


def test_report_to_takes_a_comma_separated_list_checked_against_the_loggers():
    result = runner.invoke(app, ["train-em", "--help-config", "--report-to", "jsonl,tensorboard"])
    assert "report_to = ['jsonl', 'tensorboard'] (set by --report-to" in result.output
    bad = runner.invoke(app, ["train-rl", "--help-config", "--report-to", "mlflow"])
    assert bad.exit_code == 2 and bad.output.strip() == (
        "error: --report-to: report_to: must be one of jsonl, tensorboard, wandb (got 'mlflow')")


# ---------------------------------------------------------------- run folders written before this convention


def old_run(tmp_path, command: str, config: dict):
    """A run folder as the previous release left it: provenance.json with its config, a checkpoint folder."""
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    (out / PROVENANCE_FILE).write_text(json.dumps({"command": command, "config": config, "resumes": []}))
    return out


def test_an_sft_run_from_before_the_convention_is_refused_in_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    data = tmp_path / "demos.jsonl"
    data.write_text("{}\n")
    # The previous release's SFTConfig: `output` for output_dir, no report_to; it logged to train_log.jsonl.
    config = {name: value for name, value in SFTConfig(model=str(tmp_path / "m"), data=str(data)).to_dict().items()
              if name not in ("output_dir", "report_to")}
    out = old_run(tmp_path, "train-sft", {**config, "output": str(tmp_path / "out")})
    (out / "train_log.jsonl").write_text('{"step": 25, "loss": 1.0, "lr": 0.003, "seconds": 1.0}\n')
    result = runner.invoke(app, ["train-sft", "--model", str(tmp_path / "m"), "--data", str(data), "-o", str(out), "--resume"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {out / PROVENANCE_FILE}: a train-sft run of another harness version (its config had output; lacks "
        f"output_dir, report_to); resume it with that version, or pass --allow-config-change to continue it under this one"]


def test_an_em_run_from_before_the_convention_is_refused_in_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    config = EMConfig.preset("tiny").updated(model=str(tmp_path / "m"), output_dir=str(tmp_path / "out")).to_dict()
    del config["report_to"]  # the previous release's EMConfig had none
    out = old_run(tmp_path, "train-em", config)
    result = runner.invoke(app, ["train-em", "--preset", "tiny", "--model", str(tmp_path / "m"), "-o", str(out), "--resume"])
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.endswith("a train-em run of another harness version (its config lacks report_to); resume it with that "
                         "version, or pass --allow-config-change to continue it under this one")


def test_an_rl_run_from_before_the_convention_resumes_unless_it_relied_on_the_old_tool_call_default(tmp_path):
    from harness.training.run_folder import open_run

    (tmp_path / "m").mkdir()
    config = RLConfig.preset("tiny").updated(model=str(tmp_path / "m"), output_dir=str(tmp_path / "out")).to_dict()
    out = old_run(tmp_path, "train-rl", config)  # RLConfig's fields are unchanged, and the preset sets max_tool_calls
    assert open_run(out, "train-rl", config, RLConfig.RESUME_MAY_CHANGE, resume=True, lock=False).resuming
    defaults = RLConfig().updated(model=str(tmp_path / "m"), output_dir=str(out)).to_dict()
    (out / PROVENANCE_FILE).write_text(json.dumps({"command": "train-rl", "config": {**defaults, "max_tool_calls": 2}}))
    result = runner.invoke(app, ["train-rl", "--model", str(tmp_path / "m"), "-o", str(out), "--resume"])
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert "max_tool_calls: 2 in the run, 4 now" in line and line.endswith("unless --allow-config-change")


# ---------------------------------------------------------------- the trainer commands the docs show


def documented_trainer_commands() -> list[tuple[str, list[str]]]:
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = []
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for line in page.read_text(encoding="utf-8").splitlines():
            for match in re.finditer(r"(?:harness|harness\.cli_main) (train-(?:sft|rl|em)\b[^#`|\n]*)", line):
                found.append((page.name, shlex.split(match.group(1).replace("...", "M"))))
    return found


def test_every_trainer_command_in_the_docs_parses_with_the_current_spellings():
    commands = documented_trainer_commands()
    assert {argv[0] for _, argv in commands} == set(TRAINERS)
    group = typer.main.get_command(app)
    for page, argv in commands:
        command = group.commands[argv[0]]
        deprecated = {opt for param in command.params if param.hidden for opt in param.opts}
        assert not deprecated & set(argv), (page, argv)
        command.make_context(argv[0], argv[1:])  # a UsageError (unknown flag, missing value) fails the test
