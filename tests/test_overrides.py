"""HARNESS_OVERRIDES (harness/overrides.py): a rehearsal's settings per command, applied over preset, --config and
flags, for trainers and eval alike; a bad file is a one-line error."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.em.config import EMConfig
from harness.overrides import ENV, overrides_for
from harness.rl.config import RLConfig


def rehearse(monkeypatch, tmp_path, settings) -> None:
    path = tmp_path / "rehearsal.yaml"
    path.write_text(yaml.safe_dump(settings) if not isinstance(settings, str) else settings)
    monkeypatch.setenv(ENV, str(path))


def test_a_trainer_takes_its_section_last_and_only_its_own(monkeypatch, tmp_path, capsys):
    rehearse(monkeypatch, tmp_path, {"train-em": {"iterations": 2, "k": 1}, "train-rl": {"steps": 3}})
    config = EMConfig.resolve("paper-7b", None, k=5, learning_rate=1e-4)
    assert (config.iterations, config.k, config.learning_rate) == (2, 1, 1e-4)  # over preset and flag; other flags stay
    assert config.queries_per_iteration == EMConfig.preset("paper-7b").queries_per_iteration
    assert "train-em takes iterations=2, k=1" in capsys.readouterr().err  # never silent
    assert RLConfig.resolve("qwen2.5-7b", None).steps == 3


def test_the_line_is_said_once_however_often_the_config_is_resolved(monkeypatch, tmp_path, capsys):
    settings = tmp_path / "em.yaml"
    settings.write_text("k: 3\n")
    rehearse(monkeypatch, tmp_path, {"train-em": {"iterations": 2}})
    EMConfig.help_text("paper-7b", settings, learning_rate=1e-4)  # resolves once per layer: preset, file, flags
    assert capsys.readouterr().err.count("train-em takes iterations=2") == 1


def test_without_the_variable_nothing_changes(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert overrides_for("train-em") == {}
    assert EMConfig.resolve("paper-7b", None) == EMConfig.preset("paper-7b")


@pytest.mark.parametrize(("settings", "message"), [
    ({"train-em": {"itrations": 2}}, "HARNESS_OVERRIDES: train-em has no field 'itrations'"),
    ({"train-em": {"k": 0}}, "HARNESS_OVERRIDES: .*must be at least 1"),
    ({"train-xx": {"k": 1}}, "unknown command 'train-xx'"),
    ("- a list", "must map command names to mappings of settings"),
])
def test_a_bad_file_is_refused(monkeypatch, tmp_path, settings, message):
    rehearse(monkeypatch, tmp_path, settings)
    with pytest.raises(ValueError, match=message):
        EMConfig.resolve(None, None)


@pytest.fixture
def tiny_eval_model(tmp_path):
    from tests.models.tiny_models import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    build_model("llama", tokenizer).save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def test_eval_takes_its_section_and_records_it(monkeypatch, tmp_path, tiny_eval_model):
    rehearse(monkeypatch, tmp_path, {"eval": {"limit": 1, "max_tokens": 4}})
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["eval", "--model", f"hf:{tiny_eval_model}", "--task", "gsm8k", "--limit", "5",
                                      "--model-args", "device=cpu", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    (results,) = [json.loads(p.read_text()) for p in out.rglob("results.json")]
    assert results["metrics"]["problems"] == 1 and results["config"]["max_tokens"] == 4
    rehearse(monkeypatch, tmp_path, {"eval": {"limt": 1}})
    result = CliRunner().invoke(app, ["eval", "--model", f"hf:{tiny_eval_model}", "--task", "gsm8k", "--output-dir", str(out)])
    assert result.exit_code != 0 and "HARNESS_OVERRIDES: eval has no setting 'limt'" in result.output
