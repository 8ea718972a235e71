"""The EM E-step on a vLLM engine (harness/em/rollout_backend.py), with a fake engine (tests/rl/fake_vllm.py): an
hf backend loaded from the folder the trainer saved, so what it generates comes from the saved files alone. The
real engine runs in the opt-in suite (scripts/vllm-suite.sh, tests/models/vllm_em_iteration.py); two sharded
processes in tests/training/test_distributed_sft_em.py."""

from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

import harness.em.rollout_backend as rollout_backend
from harness.em.config import EMConfig
from harness.em.mstep import MStep
from harness.em.trainer import EMTrainer

from .fake_vllm import FakeEngine
from .test_em_trainer import (
    config,
    length_grader,  # noqa: F401 - fixture
)
from .test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures


@pytest.fixture
def fake_vllm(monkeypatch):
    engines: list[FakeEngine] = []

    def start(folder, engine_args):
        engines.append(FakeEngine(folder, engine_args))
        return engines[-1]

    monkeypatch.setattr(rollout_backend, "vllm_installed", lambda: True)
    monkeypatch.setattr(rollout_backend, "start_vllm_engine", start)
    return engines


def samples(out, iteration: int) -> list[dict]:
    """The E-step's records without the run's config hash (the two runs' configs differ in rollout_backend) and
    the time each took."""
    records = [json.loads(line) for line in (out / f"iter-{iteration + 1}" / "samples.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if k not in ("config_hash", "seconds")} for record in records]


def weights(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_each_e_step_runs_on_that_iterations_saved_weights_and_is_closed_before_the_m_step(
        tiny_model_dir, task_file, tmp_path, fake_vllm, monkeypatch):  # noqa: F811
    # float32 (the default engine dtype is bf16): the records can then equal an hf run's record for record.
    trainer = EMTrainer(config(tiny_model_dir, task_file, tmp_path / "vllm", iterations=2, rollout_backend="vllm",
                               vllm_dtype="float32", vllm_args={"enforce_eager": True}))
    at_estep = [weights(trainer.model)]
    real_mstep = MStep.run

    def mstep(self, *args, **kwargs):
        assert fake_vllm and all(engine.closed for engine in fake_vllm), "the engine must be shut down before the M-step"
        result = real_mstep(self, *args, **kwargs)
        at_estep.append(weights(self.model))
        return result

    monkeypatch.setattr(MStep, "run", mstep)
    trainer.train()
    assert len(fake_vllm) == 2
    for engine, expected in zip(fake_vllm, at_estep):
        assert engine.folder == str(tmp_path / "vllm" / "rollout-model")
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(engine.files)
        assert engine.engine_args == {"dtype": "float32", "tensor_parallel_size": 1, "gpu_memory_utilization": 0.5,
                                      "seed": 0, "enforce_eager": True}
        assert all(torch.equal(engine.weights[name], value) for name, value in expected.items())
    assert any(not torch.equal(fake_vllm[0].weights[n], fake_vllm[1].weights[n]) for n in at_estep[0])  # reloaded, not reused
    assert not list((tmp_path / "vllm").glob("rollout-model.*"))  # nothing half-written left beside it

    # Same weights, same request seeds: the E-step on the reloaded copy equals the in-process hf E-step record for record.
    EMTrainer(config(tiny_model_dir, task_file, tmp_path / "hf", iterations=1)).train()
    assert samples(tmp_path / "vllm", 0) == samples(tmp_path / "hf", 0)


def test_the_engine_gets_the_weights_in_bf16_by_default(tiny_model_dir, task_file, tmp_path, fake_vllm):  # noqa: F811
    from safetensors.torch import load_file

    from harness.sandbox import get_sandbox

    trainer = EMTrainer(config(tiny_model_dir, task_file, tmp_path, rollout_backend="vllm"))
    with get_sandbox("local") as sandbox:
        trainer.estep(0, sandbox)
    (engine,) = fake_vllm
    assert engine.engine_args["dtype"] == "bfloat16"
    saved = load_file(tmp_path / "rollout-model" / "model.safetensors")
    trained = trainer.model.state_dict()
    assert saved and all(tensor.dtype == torch.bfloat16 for tensor in saved.values())
    assert all(torch.equal(tensor, trained[name].to(torch.bfloat16)) for name, tensor in saved.items())
    assert json.loads((tmp_path / "rollout-model" / "config.json").read_text())["dtype"] == "bfloat16"
    assert next(trainer.model.parameters()).dtype == torch.float32  # the trainer's own weights stay fp32


def test_a_finished_e_step_starts_no_engine_on_resume(tiny_model_dir, task_file, tmp_path, fake_vllm):  # noqa: F811
    settings = config(tiny_model_dir, task_file, tmp_path, rollout_backend="vllm")
    trainer = EMTrainer(settings)
    from harness.sandbox import get_sandbox

    with get_sandbox("local") as sandbox:
        trainer.estep(0, sandbox)
        assert len(fake_vllm) == 1 and fake_vllm[0].closed
        trainer.estep(0, sandbox)  # everything is in samples.jsonl already
    assert len(fake_vllm) == 1


def test_rollout_backend_vllm_without_vllm_is_a_one_line_error(tiny_model_dir, task_file, tmp_path, monkeypatch):  # noqa: F811
    from harness.cli import app

    monkeypatch.setattr(rollout_backend, "vllm_installed", lambda: False)
    settings = tmp_path / "em.yaml"
    settings.write_text(f"task: {task_file}\ndevice: cpu\nrollout_backend: vllm\n")
    result = CliRunner().invoke(app, ["train-em", "--model", str(tiny_model_dir), "--config", str(settings), "-o", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1].startswith("error: rollout_backend vllm needs vLLM in this environment: pip install vllm")


def test_bad_vllm_settings_are_refused():
    with pytest.raises(ValueError, match="rollout_backend: must be one of hf, vllm, vllm-server"):
        EMConfig.from_dict({"rollout_backend": "sglang"})
    with pytest.raises(ValueError, match="vllm_group_port: must be at most 65535"):
        EMConfig.from_dict({"vllm_group_port": 70000})
    with pytest.raises(ValueError, match="vllm_gpu_memory_utilization: must be at most 1"):
        EMConfig.from_dict({"vllm_gpu_memory_utilization": 1.5})
    assert "vllm_tensor_parallel (default 1)" in EMConfig.help_text()


def test_vllm_args_may_not_repeat_a_field():
    from harness.training.layout import refuse_unsupported

    settings = EMConfig.from_dict({"rollout_backend": "vllm", "vllm_args": {"tensor_parallel_size": 2}})
    with pytest.raises(ValueError, match="vllm_args: set tensor_parallel_size with the vllm_tensor_parallel field"):
        refuse_unsupported(settings, "single", 1)


@pytest.mark.parametrize("rank", [0, 1])
def test_under_two_ranks_each_engine_gets_its_own_gpu(tmp_path, monkeypatch, rank):
    """Which rank writes the folder (the main one, after gathering the shards) is checked with two real
    processes in tests/training/test_distributed_sft_em.py."""
    events = []
    monkeypatch.setattr(rollout_backend, "vllm_installed", lambda: True)
    monkeypatch.setattr(rollout_backend, "rank_and_world", lambda: (rank, 2))
    monkeypatch.setattr(rollout_backend, "start_vllm_engine", lambda folder, args: events.append(os.environ["CUDA_VISIBLE_DEVICES"]))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    settings = EMConfig.from_dict({"rollout_backend": "vllm"})
    rollout_backend.RolloutBackend(settings, None, None, None, None, tmp_path)._start()
    assert events == ["45"[rank]]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5"
    from harness.training.layout import refuse_unsupported

    refuse_unsupported(settings.updated(vllm_tensor_parallel=2), "single", 1)  # one process: tensor parallel is fine
    with pytest.raises(ValueError, match="vllm_tensor_parallel: must be 1 under a multi-process launch"):
        refuse_unsupported(settings.updated(vllm_tensor_parallel=2), "ddp", 2)


@pytest.fixture
def fake_server(tiny_model_dir):  # noqa: F811
    from .fake_vllm import serve_with_fakes

    undo, made = serve_with_fakes(str(tiny_model_dir))
    yield made
    undo()


def test_each_e_step_samples_on_a_server_sent_that_iterations_weights(tiny_model_dir, task_file, tmp_path, fake_server, monkeypatch):  # noqa: F811
    """rollout_backend vllm-server in one process: one client for the run; before each E-step the policy's
    tensors are streamed to it (every one, in the trainer's fp32) and its prefix cache is cleared; nothing is
    written to disk for it. Greedy, its records equal the in-process hf E-step's."""
    trainer = EMTrainer(config(tiny_model_dir, task_file, tmp_path / "server", iterations=2, rollout_backend="vllm-server",
                               temperature=0.0, max_tokens=40, vllm_server_url="http://rollouts:9000"))
    at_estep = [weights(trainer.model)]
    real_mstep = MStep.run

    def mstep(self, *args, **kwargs):
        result = real_mstep(self, *args, **kwargs)
        at_estep.append(weights(self.model))
        return result

    monkeypatch.setattr(MStep, "run", mstep)
    trainer.train()
    [server] = fake_server
    assert (server.base_url, server.group_port, server.communicator_device) == ("http://rollouts:9000", 51216, "cpu")
    assert len(server.syncs) == 2 and server.prefix_cache_resets == 2
    for sent, expected in zip(server.syncs, at_estep):
        assert sent.keys() == expected.keys()
        assert all(torch.equal(sent[name], value) for name, value in expected.items())
    assert any(not torch.equal(server.syncs[0][n], server.syncs[1][n]) for n in at_estep[0])  # the M-step's update was sent
    assert sum(server.prompts_per_call) >= 2 * 3 * (2 + 2 + 1)  # every rollout of both E-steps
    assert not (tmp_path / "server" / "rollout-model").exists()

    EMTrainer(config(tiny_model_dir, task_file, tmp_path / "hf", iterations=1, temperature=0.0, max_tokens=40)).train()
    assert samples(tmp_path / "server", 0) == samples(tmp_path / "hf", 0)


def test_no_server_at_the_url_is_a_one_line_error(tiny_model_dir, task_file, tmp_path, fake_server, monkeypatch):  # noqa: F811
    import requests
    import trl.generation.vllm_generation as trl_generation

    from harness.cli import app

    def unreachable(base_url=None, **_):
        raise requests.ConnectionError(f"The vLLM server can't be reached at {base_url} after 1 seconds.")

    monkeypatch.setattr(trl_generation, "VLLMClient", unreachable)
    settings = tmp_path / "em.yaml"
    settings.write_text(f"task: {task_file}\ndevice: cpu\nrollout_backend: vllm-server\nvllm_server_url: http://nowhere:1\n"
                        f"vllm_server_timeout: 1\n")
    result = CliRunner().invoke(app, ["train-em", "--model", str(tiny_model_dir), "--config", str(settings), "-o", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == ("error: rollout_backend vllm-server (http://nowhere:1): The vLLM server "
                                                      "can't be reached at http://nowhere:1 after 1 seconds.")
