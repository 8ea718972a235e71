"""Two CPU processes (gloo) running train-rl end with the same weights as one process on the same global batch."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.sharding_on_cpu import ENV

from .test_trainer import task_file, tiny_model_dir  # noqa: F401 - shared fixtures

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_workers(world: int, model_dir, task, out: Path, loss_type: str, strategy: str = "ddp", *extra: str) -> dict:
    port = free_port()
    processes = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), ENV: strategy}
        processes.append(subprocess.Popen([sys.executable, "-m", "tests.rl.ddp_worker", str(model_dir), str(task), str(out), loss_type,
                                           *extra],
                                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for process in processes:
        output, _ = process.communicate(timeout=300)  # a hang (a collective one process skips) fails here
        assert process.returncode == 0, output[-3000:]
    return torch.load(out / "weights.pt")


# The default loss; its normaliser spans processes. Marked slow (make test-all) to keep CI within 30 minutes: CI runs
# its superset, the same DDP comparison with RoC dropping rollouts (test_two_processes_shape_as_one_process_does[roc]),
# and the FSDP2 one below.
@pytest.mark.parametrize("loss_type", [pytest.param("dapo", marks=pytest.mark.slow)])
def test_two_processes_end_with_the_weights_of_one(tiny_model_dir, task_file, tmp_path, loss_type):  # noqa: F811
    single = run_workers(1, tiny_model_dir, task_file, tmp_path / "single", loss_type)
    double = run_workers(2, tiny_model_dir, task_file, tmp_path / "double", loss_type)
    assert double["loss"] == pytest.approx(single["loss"], rel=1e-4, abs=1e-6)
    assert_same_weights(single, double, tiny_model_dir)


# RoC (dropped rollouts: the mask and the normaliser across processes) in every CI run; AdaTIR's floor with -m slow.
@pytest.mark.parametrize(("shaper", "wrong_every"), [pytest.param("adatir", 4, marks=pytest.mark.slow), ("roc", 2)])
def test_two_processes_shape_as_one_process_does(tiny_model_dir, task_file, tmp_path, shaper, wrong_every):  # noqa: F811
    """A strategy shapes every process's rollouts together (harness/rl/strategies/hook.py gathers them) and each
    process applies its own slice: AdaTIR's advantage floor, RoC's dropped rollouts (their tokens leave the loss
    and its normaliser, which spans processes). Groups of 4: 3 right for AdaTIR (an easy question, where it
    penalises tool calls), 2 right for RoC (which then keeps one right and one wrong)."""
    options = ("group=4", f"wrong_every={wrong_every}")
    single = run_workers(1, tiny_model_dir, task_file, tmp_path / "single", "dapo", "ddp", f"shaper={shaper}", *options)
    double = run_workers(2, tiny_model_dir, task_file, tmp_path / "double", "dapo", "ddp", f"shaper={shaper}", *options)
    plain = run_workers(1, tiny_model_dir, task_file, tmp_path / "plain", "dapo", "ddp", *options)
    assert double["loss"] == pytest.approx(single["loss"], rel=1e-4, abs=1e-6)
    assert_same_weights(single, double, tiny_model_dir)
    # The strategy changed the update (against plain GRPO on the same rollouts).
    assert any(not torch.allclose(plain["weights"][name], value, atol=1e-6) for name, value in single["weights"].items())


def assert_same_weights(single: dict, other: dict, model_dir) -> None:
    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    moved = max(float((value - start[name]).abs().max()) for name, value in single["weights"].items())
    assert moved > 1e-3
    # Adam divides by sqrt(v): the gradient's summation order (one all-reduce) moves a weight by ~1e-5 here,
    # against updates of ~1e-2; a different batch or normalisation moves it by the update's size.
    for name, value in single["weights"].items():
        assert torch.allclose(other["weights"][name], value, atol=1e-2 * moved, rtol=0), name


def test_two_fsdp2_processes_save_resume_and_end_with_the_weights_of_one(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    """train-rl sharded by FSDP2: every step saves (a collective gather of the weights, each process's own
    optimiser shard), and a run stopped after step 1 and resumed by 2 processes ends where the
    uninterrupted 1-process run ends."""
    single = run_workers(1, tiny_model_dir, task_file, tmp_path / "single", "dapo")
    double = run_workers(2, tiny_model_dir, task_file, tmp_path / "double", "dapo", "fsdp2", "save_every=1")
    step1 = tmp_path / "double" / "checkpoints" / "step-000001"
    assert sorted(p.name for p in step1.glob("trainer_state*.pt")) == ["trainer_state.pt", "trainer_state.rank1.pt"]
    from safetensors.torch import load_file

    assert load_file(step1 / "model.safetensors").keys() == single["weights"].keys()  # the layout a 1-process save has
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "double", resumed, ignore=shutil.ignore_patterns("step-000002", "weights.pt"))
    again = run_workers(2, tiny_model_dir, task_file, resumed, "dapo", "fsdp2", "save_every=1", "resume=1")
    assert_same_weights(single, double, tiny_model_dir)
    assert_same_weights(single, again, tiny_model_dir)


def test_two_fsdp2_processes_generate_their_own_rollouts_without_waiting_on_each_other(tiny_model_dir, task_file, tmp_path):  # noqa: F811
    """Rollouts from the policy itself (no vLLM) under FSDP2: sampled answers end at different lengths on the two
    processes, which would leave sharded forwards out of step (a hang, caught by the timeout). Each process
    generates with an unsharded copy refreshed from the shards, so two processes train on the rollouts one
    process samples and end with its weights."""
    single = run_workers(1, tiny_model_dir, task_file, tmp_path / "single", "dapo", "ddp", "rollouts=real")
    double = run_workers(2, tiny_model_dir, task_file, tmp_path / "double", "dapo", "fsdp2", "rollouts=real")
    assert double["loss"] == pytest.approx(single["loss"], rel=1e-4, abs=1e-6)
    assert_same_weights(single, double, tiny_model_dir)
