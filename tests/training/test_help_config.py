"""`--help-config` shows the config a command would run with: the preset's values, a YAML file's, the
flags', and which of them set each field that differs from the defaults."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.em.config import EMConfig
from harness.rl.config import RLConfig
from harness.training.sft import SFTConfig

runner = CliRunner()


def field_lines(output: str) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line for line in output.splitlines()}


@pytest.mark.parametrize("command, config_class", [("train-em", EMConfig), ("train-rl", RLConfig), ("train-sft", SFTConfig)])
def test_each_preset_shows_the_values_it_resolves_to(command, config_class):
    defaults = asdict(config_class())
    for preset in config_class.PRESETS:
        result = runner.invoke(app, [command, "--help-config", "--preset", preset])
        assert result.exit_code == 0, result.output
        lines = field_lines(result.output)
        changed = {name: value for name, value in asdict(config_class.preset(preset)).items() if value != defaults[name]}
        assert changed, f"preset {preset} changes nothing, so this test shows nothing"
        for name, value in defaults.items():
            if name in changed:
                assert lines[name].startswith(f"{name} = {changed[name]!r} (set by --preset {preset}; default {value!r})"), lines[name]
            else:
                assert lines[name].startswith(f"{name} (default {value!r})"), lines[name]
        assert f"fields changed from the defaults: {', '.join(changed)}" in result.output


def test_a_yaml_file_and_a_flag_are_named_where_they_set_a_field(tmp_path):
    overrides = tmp_path / "em.yaml"
    overrides.write_text("k: 6\n")
    result = runner.invoke(app, ["train-em", "--help-config", "--preset", "tiny", "--config", str(overrides), "--iterations", "5"])
    assert result.exit_code == 0, result.output
    lines = field_lines(result.output)
    assert lines["k"].startswith(f"k = 6 (set by --config {overrides}; default 8)")
    assert lines["iterations"].startswith("iterations = 5 (set by --iterations; default 2)")


def test_without_a_preset_the_defaults_are_listed_unchanged():
    result = runner.invoke(app, ["train-em", "--help-config"])
    assert result.exit_code == 0
    assert " = " not in result.output.splitlines()[0] and "fields changed" not in result.output
    assert field_lines(result.output)["iterations"].startswith("iterations (default 2)")


def test_an_unknown_preset_is_one_clear_error():
    result = runner.invoke(app, ["train-em", "--help-config", "--preset", "huge"])
    assert (result.exit_code == 2
            and result.output.strip().splitlines() == [f"error: unknown preset 'huge'; choose one of {', '.join(EMConfig.PRESETS)}"])


def test_train_rl_takes_its_strategy_from_the_flag():
    result = runner.invoke(app, ["train-rl", "--help-config", "--strategy", "otc"])
    assert result.exit_code == 0, result.output
    assert field_lines(result.output)["strategy"].startswith("strategy = 'otc' (set by --strategy; default 'none')")
    wrong = runner.invoke(app, ["train-rl", "--help-config", "--strategy", "bogus"])
    assert wrong.exit_code == 2 and "none, otc, adatir, roc" in wrong.output
