"""Run folders of the RL and EM trainers: a used folder is refused without --resume, a resume keeps the
run's config (or records the change and really uses it), metrics have one line per step, and EM's
reported M-step loss covers the whole M-step across a resume."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.em.mstep import MStep
from harness.em.trainer import EMTrainer
from harness.rl.trainer import RLTrainer
from harness.training.checkpoint import checkpoint_dir, checkpoint_info, list_checkpoints

from .test_em_trainer import config as em_config
from .test_em_trainer import length_grader  # noqa: F401 - fixture
from .test_trainer import config, task_file, tiny_model_dir  # noqa: F401 - shared fixtures


def logged_steps(out) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_into_a_finished_runs_folder_is_refused_and_keeps_that_run(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    RLTrainer(config(tiny_model_dir, task_file, tmp_path, steps=3)).train()
    before = {p.name: checkpoint_info(p) for p in list_checkpoints(tmp_path)}
    with pytest.raises(ValueError, match="not empty .*--resume"):
        RLTrainer(config(tiny_model_dir, task_file, tmp_path, steps=1, seed=5)).train()
    assert {p.name: checkpoint_info(p) for p in list_checkpoints(tmp_path)} == before
    assert logged_steps(tmp_path) == [1, 2, 3]


def test_the_cli_refuses_a_used_folder_before_loading_a_model(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.jsonl").write_text('{"step": 1}\n')
    settings = tmp_path / "rl.yaml"
    settings.write_text(f"task: {task_file}\nsteps: 1\nprompts_per_step: 1\ngroup_size: 2\nmax_tokens: 4\ndevice: cpu\n")
    result = CliRunner().invoke(app, ["train-rl", "--model", str(tiny_model_dir), "--config", str(settings), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and f"error: {tmp_path / 'out'}: not empty (metrics.jsonl)" in result.output
    assert (tmp_path / "out" / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_resume_with_another_learning_rate_is_refused_or_recorded_and_used(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    RLTrainer(config(tiny_model_dir, task_file, tmp_path, steps=1, learning_rate=1e-2)).train()
    changed = config(tiny_model_dir, task_file, tmp_path, steps=2, learning_rate=1e-3)
    with pytest.raises(ValueError, match="learning_rate: 0.01 in the run, 0.001 now"):
        RLTrainer(changed).train(resume=True)
    [metrics] = RLTrainer(changed).train(resume=True, allow_config_change=True)
    assert metrics["step"] == 2 and metrics["learning_rate"] == pytest.approx(1e-3)  # the new rate, not the checkpoint's
    resumed = json.loads((tmp_path / "provenance.json").read_text())["resumes"][-1]
    assert resumed["step"] == 1 and resumed["changed"]["learning_rate"] == [1e-2, 1e-3]
    assert resumed["config_before"]["learning_rate"] == 1e-2
    assert checkpoint_info(checkpoint_dir(tmp_path, 2))["extra"]["config"]["learning_rate"] == 1e-3


def test_metrics_have_one_line_per_step_after_a_resume(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    RLTrainer(config(tiny_model_dir, task_file, tmp_path, steps=3, save_every=2)).train()
    shutil.rmtree(checkpoint_dir(tmp_path, 3))  # as if killed after logging step 3, before its checkpoint
    RLTrainer(config(tiny_model_dir, task_file, tmp_path, steps=3, save_every=2)).train(resume=True)
    assert logged_steps(tmp_path) == [1, 2, 3]


def test_em_mstep_loss_covers_the_whole_m_step_after_a_resume(tiny_model_dir, task_file, tmp_path, monkeypatch, length_grader):  # noqa: F811
    overrides = dict(batch_size=2, micro_batch_size=2, subsample="sample", samples_per_query=2, alpha=float("inf"))
    EMTrainer(em_config(tiny_model_dir, task_file, tmp_path / "straight", **overrides)).train()
    [straight] = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert straight["em/mstep_steps"] >= 2

    real_step, calls = MStep.optimiser_step, {"n": 0}

    def stop_at_the_second_step(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_step(self, *args)

    monkeypatch.setattr(MStep, "optimiser_step", stop_at_the_second_step)
    with pytest.raises(KeyboardInterrupt):
        EMTrainer(em_config(tiny_model_dir, task_file, tmp_path / "resumed", **overrides)).train()
    monkeypatch.setattr(MStep, "optimiser_step", real_step)
    EMTrainer(em_config(tiny_model_dir, task_file, tmp_path / "resumed", **overrides)).train(resume=True)
    [resumed] = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-4)
