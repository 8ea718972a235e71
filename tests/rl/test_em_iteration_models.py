"""Every EM iteration's model is kept (issue 19, item 6): OUT/iter-N, bf16, evaluable, never rotated away."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig
from typer.testing import CliRunner

from harness.cli import app
from harness.em.trainer import EMTrainer
from harness.training.checkpoint import latest_checkpoint, list_checkpoints, read_weights

from .test_em_trainer import config, length_grade_batch, length_grader  # noqa: F401 - shared fixture
from .test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures


@pytest.fixture(scope="module")
def two_iterations(tiny_model_dir, task_file, tmp_path_factory):  # noqa: F811
    """A 2-iteration run checkpointing every step, so rotation (keep 2) removes most checkpoints."""
    out = tmp_path_factory.mktemp("em-run") / "em"
    with pytest.MonkeyPatch.context() as patch:
        import harness.grading

        patch.setattr(harness.grading, "grade_batch", length_grade_batch)
        # max_tokens above the forced prefixes (22 tokens with this tokenizer), so forced rollouts generate too.
        trainer = EMTrainer(config(tiny_model_dir, task_file, out, iterations=2, batch_size=2, micro_batch_size=2, max_tokens=40))
        trainer.train()
    return out, trainer


def safetensors_payload(path) -> int:
    """A safetensors file's size less its header: the bytes of the tensors themselves."""
    with open(path, "rb") as handle:
        header = struct.unpack("<Q", handle.read(8))[0]
    return path.stat().st_size - 8 - header


def test_each_iteration_leaves_a_bf16_model_that_rotation_keeps(two_iterations):
    out, trainer = two_iterations
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in metrics] == [1, 2]
    assert sorted(p.name for p in out.glob("iter-*")) == ["iter-1", "iter-2"]  # counted as metrics.jsonl counts
    assert sum(row["em/mstep_steps"] for row in metrics) > 2 and len(list_checkpoints(out)) == 2  # rotation removed some
    parameters = sum(p.numel() for p in trainer.model.parameters())  # a tied head once
    for folder in (out / "iter-1", out / "iter-2"):
        assert AutoConfig.from_pretrained(folder).dtype == torch.bfloat16
        assert "chat_template" in (folder / "tokenizer_config.json").read_text() or (folder / "chat_template.jinja").is_file()
        weights = load_file(folder / "model.safetensors")
        assert {tensor.dtype for tensor in weights.values()} == {torch.bfloat16}
        assert safetensors_payload(folder / "model.safetensors") == 2 * parameters
        assert (folder / "samples.jsonl").is_file()  # beside the iteration's E-step
    final = read_weights(latest_checkpoint(out))
    kept = load_file(out / "iter-2" / "model.safetensors")
    assert all(torch.equal(kept[name], final[name].to(torch.bfloat16)) for name in kept)
    assert any(not torch.equal(kept[name], tensor) for name, tensor in load_file(out / "iter-1" / "model.safetensors").items())


def test_harness_eval_runs_on_an_iteration_model(two_iterations, task_file, tmp_path):  # noqa: F811
    out, _ = two_iterations
    result = CliRunner().invoke(app, ["eval", "--model", f"hf:{out}/iter-2", "--task", str(task_file), "--method", "cot",
                                      "--limit", "2", "--max-tokens", "8", "--threads", "1", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [results] = list(tmp_path.rglob("results.json"))
    assert json.loads(results.read_text())["run"]["model"] == "em/iter-2"  # the run's name with the iteration


def test_a_run_stopped_before_its_iteration_model_writes_it_on_resume(two_iterations, tiny_model_dir, task_file, tmp_path):  # noqa: F811
    import shutil

    out, _ = two_iterations
    copy = tmp_path / "em"
    shutil.copytree(out, copy)
    before = load_file(copy / "iter-2" / "model.safetensors")
    for name in ("config.json", "model.safetensors"):
        (copy / "iter-2" / name).unlink()
    EMTrainer(config(tiny_model_dir, task_file, copy, iterations=2, batch_size=2, micro_batch_size=2, max_tokens=40)).train(resume=True)
    after = load_file(copy / "iter-2" / "model.safetensors")
    assert after.keys() == before.keys() and all(torch.equal(after[n], before[n]) for n in before)
