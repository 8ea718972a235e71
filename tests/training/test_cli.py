"""The testbed and training commands: one-line errors for bad input, and the demos command's counts."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def test_train_sft_refuses_missing_inputs(tmp_path):
    result = runner.invoke(app, ["train-sft", "--model", str(tmp_path / "nope"), "--data", "x.jsonl", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "error: --model" in result.output
    (tmp_path / "m").mkdir()
    result = runner.invoke(app, ["train-sft", "--model", str(tmp_path / "m"), "--data", "x.jsonl", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.strip() == "error: --data must be a demonstration JSONL file (got 'x.jsonl')"


def test_train_sft_names_the_bad_line(tmp_path):
    from harness.testbed.model_init import write_tiny_model

    write_tiny_model(tmp_path / "m")
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "x", "response": "y"}\n{"prompt": "x"}\n')
    result = runner.invoke(app, ["train-sft", "--model", str(tmp_path / "m"), "--data", str(data), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and f"error: {data}:2:" in result.output


def test_model_init_refuses_an_unknown_preset(tmp_path):
    result = runner.invoke(app, ["model", "init", "--preset", "huge", "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "error: unknown preset 'huge'" in result.output


def test_demos_writes_the_requested_mix(tmp_path):
    path = tmp_path / "demos.jsonl"
    result = runner.invoke(app, ["testbed", "demos", "-o", str(path), "--size", "400", "--code-ratio", "0.25", "--forced-share", "0"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 400 and all(row["method"] == "auto" for row in rows)
    assert 60 < sum(row["style"] == "code" for row in rows) < 140


# ---------------------------------------------------------------- trainer configs: one error line, exit 2


def config_error(tmp_path, command: str, text: str | bytes) -> str:
    path = tmp_path / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = runner.invoke(app, [command, "--config", str(path), "--model", str(tmp_path)])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"error: {path}: "), line
    return line


def test_trainer_config_values_of_the_wrong_type_or_out_of_bounds_name_file_and_field(tmp_path):
    assert config_error(tmp_path, "train-rl", 'steps: "5"\n').endswith("steps: must be an integer (got '5', a str)")
    assert "steps: must be an integer (got True" in config_error(tmp_path, "train-rl", "steps: true\n")
    assert config_error(tmp_path, "train-rl", "save_every: 0\n").endswith("save_every: must be at least 1 (got 0)")
    assert config_error(tmp_path, "train-rl", "prompts_per_step: -3\n").endswith("prompts_per_step: must be at least 1 (got -3)")
    assert config_error(tmp_path, "train-rl", "loss_type: bnpo\n").endswith("loss_type: must be one of grpo, dapo, dr_grpo (got 'bnpo')")
    assert config_error(tmp_path, "train-em", "batch_size: -4\n").endswith("batch_size: must be at least 1 (got -4)")
    assert config_error(tmp_path, "train-em", "learning_rate: 0\n").endswith("learning_rate: must be above 0 (got 0.0)")


def test_unreadable_trainer_config_files_are_one_error_line_naming_the_file(tmp_path):
    assert "not valid YAML" in config_error(tmp_path, "train-rl", "steps: [1,\n")
    assert "not UTF-8 text" in config_error(tmp_path, "train-em", "cot_prefix: caf\xe9\n".encode("latin-1"))
    assert "a config file is a mapping" in config_error(tmp_path, "train-rl", "- steps\n")


def test_a_bad_flag_value_names_the_flag(tmp_path):
    result = runner.invoke(app, ["train-rl", "--device", "tpu", "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --device: device: must be one of auto, cpu, cuda (got 'tpu')"


def test_float_fields_take_yaml_1_2_numbers_and_ints(tmp_path):
    from harness.em.config import EMConfig
    from harness.rl.config import RLConfig

    path = tmp_path / "rl.yaml"
    path.write_text("learning_rate: 1e-6\nsandbox_timeout: 3\n")
    loaded = RLConfig.from_yaml(path)
    assert loaded.learning_rate == 1e-6 and isinstance(loaded.sandbox_timeout, float)
    assert EMConfig.from_dict({"alpha": 2}).alpha == 2.0


# ---------------------------------------------------------------- train-sft run folders


def test_train_sft_refuses_a_used_folder_and_resumes_only_the_same_config(tmp_path):
    from harness.testbed.demos import demonstration_rows
    from harness.testbed.model_init import write_tiny_model

    write_tiny_model(tmp_path / "m")
    data = tmp_path / "demos.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in demonstration_rows(8, seed=1, code_ratio=0.5, forced_share=0.5)))
    out = tmp_path / "out"
    base = ["train-sft", "--model", str(tmp_path / "m"), "--data", str(data), "-o", str(out), "--batch-size", "2",
            "--threads", "1", "--warmup-steps", "1", "--save-every", "2"]
    assert runner.invoke(app, [*base, "--steps", "4"]).exit_code == 0
    weights = (out / "model.safetensors").read_bytes()

    again = runner.invoke(app, [*base, "--steps", "4"])
    assert again.exit_code == 2 and f"error: {out}: not empty" in again.output
    assert (out / "model.safetensors").read_bytes() == weights

    other_lr = runner.invoke(app, [*base, "--steps", "4", "--learning-rate", "0.01", "--resume"])
    assert other_lr.exit_code == 2 and "learning_rate: 0.003 in the run, 0.01 now" in other_lr.output

    import shutil

    shutil.rmtree(out / "checkpoints" / "step-000004")  # as if killed after step 4's log line, before its checkpoint
    resumed = runner.invoke(app, [*base, "--steps", "4", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [4]
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["command"] == "train-sft" and provenance["resumes"][0]["step"] == 2
