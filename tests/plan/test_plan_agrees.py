"""`harness plan` and the trainers lay a run out alike: for every preset of train-em and train-rl and every
launch, the plan's strategy, rollout backend and dtypes are the ones the trainer builds its run from (or both
refuse it, with the same line); and each trainer refuses before it loads anything."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.em.config import EMConfig
from harness.rl.config import RLConfig
from harness.training.layout import accelerator_layout, launched_layout

PRESETS = [(EMConfig, name) for name in EMConfig.PRESETS] + [(RLConfig, name) for name in RLConfig.PRESETS]
LAUNCHES = [("fsdp", 8), ("ddp", 8), ("ddp", 1), ("fsdp", 2), ("ddp", 3)]
HEADER = re.compile(r", (?P<strategy>\w+), rollouts (?P<rollout>[\w-]+), compute (?P<compute>\w+), weights (?P<weights>\w+)$")


@pytest.fixture
def on_gpus(monkeypatch):
    """A launch on GPU machines: ``dtype: auto`` resolves as it does there."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)


def trainer_layout(config_class, config, strategy: str, gpus: int, monkeypatch):
    """What the trainer lays its run out from: train-em from the Accelerator it builds (make_accelerator),
    train-rl from the launch's environment (TRL builds the Accelerator later)."""
    from accelerate.utils import DistributedType

    if config_class is EMConfig:
        kind = DistributedType.FSDP if strategy == "fsdp" else DistributedType.MULTI_GPU if gpus > 1 else DistributedType.NO
        return accelerator_layout(config, SimpleNamespace(distributed_type=kind, num_processes=gpus))
    monkeypatch.setenv("WORLD_SIZE", str(gpus))
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true" if strategy == "fsdp" else "false")
    return launched_layout(config)


def planned(config_class, name: str, strategy: str, gpus: int, *extra: str):
    return CliRunner().invoke(app, ["plan", "--trainer", config_class.COMMAND, "--preset", name, "--strategy", strategy,
                                    "--gpus", str(gpus), "--gpu-memory", "100000", *extra])


@pytest.mark.parametrize(("config_class", "name"), PRESETS, ids=[f"{c.COMMAND}-{n}" for c, n in PRESETS])
def test_plan_lays_out_every_preset_as_its_trainer_does(config_class, name, on_gpus, monkeypatch):
    for strategy, gpus in LAUNCHES:
        result = planned(config_class, name, strategy, gpus)
        try:
            layout = trainer_layout(config_class, config_class.preset(name), strategy, gpus, monkeypatch)
        except ValueError as refusal:
            assert result.exit_code == 2 and result.output.strip() == f"error: {refusal}", (strategy, gpus, result.output)
            continue
        assert result.exit_code == 0, (strategy, gpus, result.output)
        header = HEADER.search(result.output.splitlines()[0]).groupdict()
        assert header == {"strategy": layout.strategy, "rollout": layout.rollout, "compute": layout.compute_dtype,
                          "weights": layout.weight_dtype}, (strategy, gpus)
        assert layout.strategy == ("single" if (strategy, gpus) == ("ddp", 1) else strategy)  # accelerate's rule


def test_plan_and_train_em_refuse_tensor_parallel_engines_under_several_processes(on_gpus, tmp_path):
    """train-em refuses before any loading (the model folder does not exist, which would be another error),
    and the plan refuses with the same line."""
    from accelerate.utils import DistributedType

    from harness.em.trainer import EMTrainer

    config = EMConfig.preset("paper-7b").updated(rollout_backend="vllm", vllm_tensor_parallel=2, model=str(tmp_path / "none"))
    ddp = SimpleNamespace(distributed_type=DistributedType.MULTI_GPU, num_processes=8)
    with pytest.raises(ValueError) as refusal:
        EMTrainer(config, accelerator=ddp)
    assert str(refusal.value).startswith("vllm_tensor_parallel: must be 1 under a multi-process launch")
    result = planned(EMConfig, "paper-7b", "ddp", 8, "--set", "rollout_backend=vllm", "--set", "vllm_tensor_parallel=2")
    assert result.exit_code == 2 and result.output.strip() == f"error: {refusal.value}"


def test_the_vllm_e_step_under_fsdp_is_planned_as_train_em_runs_it():
    """An engine per process in its share of the GPU, no generation copy, the weights gathered one tensor at a time."""
    result = planned(EMConfig, "paper-7b", "fsdp", 8, "--set", "rollout_backend=vllm")
    assert result.exit_code == 0, result.output
    assert "vLLM (0.5 of the GPU)" in result.output and "weight sync (one gathered tensor)" in result.output
    assert "generation copy" not in result.output and "E-step refresh" not in result.output


def test_train_rl_refuses_a_batch_its_launch_cannot_split_before_loading(on_gpus, monkeypatch, tmp_path):
    from harness.rl.trainer import RLTrainer

    monkeypatch.setenv("WORLD_SIZE", "3")
    config = RLConfig.preset("tiny").updated(model=str(tmp_path / "none"))
    with pytest.raises(ValueError) as refusal:
        RLTrainer(config)
    assert str(refusal.value) == "prompts_per_step × group_size = 64 does not split over 3 processes"
    result = planned(RLConfig, "tiny", "ddp", 3)
    assert result.exit_code == 2 and result.output.strip() == f"error: {refusal.value}"
