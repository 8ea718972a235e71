"""Two CPU processes over gloo train SFT and EM's M-step to the same weights as one process, with work
that does not divide evenly (3 examples a step, 9 E-step rollouts, a last M-step of one sample); the
E-step split over the processes reaches every one of them whole; a 2-process resume is exact. Each runs
under DDP and under FSDP2 (each process holds a shard: tests/sharding_on_cpu.py switches accelerate to
FSDP2 on CPU), the sharded path of the 7B recipes. A refused EM resume is one error on every process, and
every process uses one π."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.sharding_on_cpu import ENV

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The DDP twins are marked slow (make test-all runs them) to keep CI within 30 minutes: under DDP
# test_two_processes_hand_the_optimiser_the_one_process_gradient still checks both trainers' gradients, and
# the E-step's split is the same code under both strategies.
STRATEGIES = (pytest.param("ddp", marks=pytest.mark.slow), "fsdp2")


def launch(mode: str, world: int, model: Path, data: Path, out: Path, strategy: str = "ddp", timeout: float = 240) -> None:
    """``world`` worker processes; one process runs here (saves two interpreter start-ups). A hang (collectives
    out of step) fails after ``timeout`` seconds, the workers killed."""
    out.mkdir(parents=True, exist_ok=True)
    if world == 1:
        from tests.training import distributed_worker

        getattr(distributed_worker, mode)(str(model), str(data), out)
        return
    port, processes = free_port(), []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), ENV: strategy}
        processes.append(subprocess.Popen([sys.executable, "-m", "tests.training.distributed_worker", mode, str(model), str(data),
                                           str(out)],
                                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for process in processes:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for worker in processes:
                worker.kill()
            pytest.fail(f"{mode}: the processes did not finish in {timeout} s (a hang)")
        assert process.returncode == 0, output[-4000:]


def assert_same_weights(one: dict, two: dict) -> None:
    """Equal up to summation order: AdamW's first steps move weights by ~lr (3e-3 here) and normalise
    each gradient element, so a ~1e-9 difference in a near-zero gradient shows as ~1e-6."""
    assert one.keys() == two.keys()
    for name, tensor in one.items():
        assert torch.allclose(two[name], tensor, atol=2e-5, rtol=1e-4), name


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_process_sft_equals_one_process(tmp_path, strategy):
    from safetensors.torch import load_file

    from harness.testbed.demos import demonstration_rows
    from harness.testbed.model_init import write_tiny_model

    write_tiny_model(tmp_path / "init")
    rows = demonstration_rows(9, seed=1, code_ratio=0.5, forced_share=0.5)
    (tmp_path / "demos.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    for world in (1, 2):
        launch("sft", world, tmp_path / "init", tmp_path / "demos.jsonl", tmp_path / f"world{world}", strategy)
    one, two = (load_file(tmp_path / f"world{w}" / "model.safetensors") for w in (1, 2))
    assert_same_weights(one, two)
    initial = load_file(tmp_path / "init" / "model.safetensors")
    assert any(not torch.equal(initial[name], tensor) for name, tensor in one.items())
    assert sorted(p.name for p in (tmp_path / "world2" / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
    # A sharded optimiser is saved by each process (its own shard); a replicated one once.
    shards = sorted(p.name for p in (tmp_path / "world2" / "checkpoints" / "step-000002").glob("trainer_state*.pt"))
    assert shards == (["trainer_state.pt", "trainer_state.rank1.pt"] if strategy == "fsdp2" else ["trainer_state.pt"])
    # Killed after step 2 and resumed by 2 processes: the same weights as the uninterrupted run.
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "world2" / "checkpoints" / "step-000002", resumed / "checkpoints" / "step-000002")
    shutil.copy(tmp_path / "world2" / "provenance.json", resumed / "provenance.json")
    launch("sft_resume", 2, tmp_path / "init", tmp_path / "demos.jsonl", resumed, strategy)
    assert_same_weights(two, load_file(resumed / "model.safetensors"))


def tiny_model_and_sums(tmp_path):
    """A tiny qwen2 model in tmp_path/model and six 'a + a' questions; returns the task file."""
    from tests.models.tiny_models import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    build_model("qwen2", tokenizer).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    task = tmp_path / "sums.jsonl"
    task.write_text("".join(json.dumps({"question": f"What is {a} + {a}?", "answer": 2 * a}) + "\n" for a in range(1, 7)))
    return task


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_process_em_equals_one_process_with_uneven_shares(tmp_path, strategy):
    task = tiny_model_and_sums(tmp_path)
    for world in (1, 2):
        launch("em", world, tmp_path / "model", task, tmp_path / f"world{world}", strategy)
    held = [json.loads((tmp_path / "world2" / f"held-rank{r}.json").read_text()) for r in (0, 1)]
    expected = ("DistributedType.FSDP", "DTensor") if strategy == "fsdp2" else ("DistributedType.MULTI_CPU", "Parameter")
    assert [(h["distributed_type"], h["parameter"]) for h in held] == [expected, expected]
    seen = [json.loads((tmp_path / f"world{w}" / f"estep-rank{r}.json").read_text()) for w, r in ((1, 0), (2, 0), (2, 1))]
    assert len(seen[0]) == 9 and seen[0] == seen[1] == seen[2]  # every process sees the whole E-step
    assert len((tmp_path / "world2" / "iter-1" / "samples.jsonl").read_text().splitlines()) == 9  # written once
    from safetensors.torch import load_file

    one, two = (torch.load(tmp_path / f"world{w}" / "weights.pt") for w in (1, 2))
    assert_same_weights(one, two)
    # The iteration's model: the full weights (gathered from the shards under FSDP) in bf16, written once.
    kept = load_file(tmp_path / "world2" / "iter-1" / "model.safetensors")
    assert kept.keys() <= two.keys() and all(torch.equal(kept[name], two[name].to(torch.bfloat16)) for name in kept)
    assert not list(tmp_path.glob("world2/*.model-partial"))


def test_a_refused_em_resume_is_one_error_on_every_process(tmp_path):
    """A resume whose E-step was made under another temperature: the main process finds it out, and every
    process raises the same one-line error instead of the others waiting for the main one forever."""
    task = tiny_model_and_sums(tmp_path)
    out = tmp_path / "run"
    launch("em_stopped_in_m_step", 1, tmp_path / "model", task, out)
    launch("em_resume_other_temperature", 2, tmp_path / "model", task, out, timeout=120)
    errors = [(out / f"error-rank{rank}.txt").read_text() for rank in (0, 1)]
    assert errors[0] == errors[1] and "\n" not in errors[0]
    assert "iteration 1's E-step was made with other temperature" in errors[0]


def test_every_process_uses_the_main_process_pi(tmp_path):
    """pi_q_prefix_mean's π measured differently on the second process (prefix log-probs swapped): both
    processes still hold the main process's π and so the same s*."""
    task = tiny_model_and_sums(tmp_path)
    launch("em_policy", 2, tmp_path / "model", task, tmp_path / "run", timeout=120)
    seen = [json.loads((tmp_path / "run" / f"policy-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert seen[0] == seen[1] and len(seen[0]["strategies"]) == 3


def test_two_fsdp2_processes_roll_out_on_engines_fed_the_gathered_weights_in_bf16(tmp_path):
    """The 7B E-step's path: vLLM under FSDP. The shards are gathered (a collective), the main process writes the
    folder in bf16, and each process's engine (a fake: an hf backend on that folder, tests/rl/fake_vllm.py)
    rolls out its share; no unsharded generation copy is made beside the engine. The records equal those of
    one process with one engine."""
    from safetensors.torch import load_file

    task = tiny_model_and_sums(tmp_path)
    for world in (1, 2):
        launch("em_vllm", world, tmp_path / "model", task, tmp_path / f"world{world}", "fsdp2")
    folder = tmp_path / "world2" / "rollout-model"
    reports = [json.loads((tmp_path / "world2" / f"engine-rank{r}.json").read_text()) for r in (0, 1)]
    for report in reports:
        assert report["generation_copy"] is False
        assert report["engines"] == [{"folder": str(folder), "dtype": "bfloat16", "closed": True, "weight_dtypes": ["torch.bfloat16"]}]
    initial = load_file(tmp_path / "model" / "model.safetensors")
    saved = load_file(folder / "model.safetensors")
    assert saved.keys() == initial.keys()
    assert all(torch.equal(saved[name], tensor.to(torch.bfloat16)) for name, tensor in initial.items())
    seen = [json.loads((tmp_path / f"world{w}" / f"estep-rank{r}.json").read_text()) for w, r in ((1, 0), (2, 0), (2, 1))]
    assert len(seen[0]) == 9 and seen[0] == seen[1] == seen[2]

    def records(world: int) -> list:
        rows = [json.loads(line) for line in (tmp_path / f"world{world}" / "iter-1" / "samples.jsonl").read_text().splitlines()]
        return sorted(({k: v for k, v in row.items() if k not in ("seconds", "config_hash")} for row in rows), key=json.dumps)

    assert records(1) == records(2)


def test_two_fsdp2_processes_roll_out_through_one_server_sent_the_gathered_weights(tmp_path):
    """The E-step on rollout GPUs of their own: TRL's server mode (a fake client whose hf model starts as noise,
    tests/rl/fake_vllm.py). The shards are gathered tensor by tensor and only the main process holds a client
    and sends them; every process's requests are generated by that client, including in a round where one
    process has nothing to generate. Greedy, the records equal one process's in-process hf E-step: the server
    sampled from the trainer's weights, and each process got its own rollouts back."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    task = tiny_model_and_sums(tmp_path)
    launch("em_greedy", 1, tmp_path / "model", task, tmp_path / "hf")
    launch("em_vllm_server", 2, tmp_path / "model", task, tmp_path / "server", "fsdp2")
    reports = [json.loads((tmp_path / "server" / f"server-rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["clients"] == [{"url": "http://localhost:8000", "syncs": 1, "prefix_cache_resets": 1, "prompts": 9}]
    assert reports[1]["clients"] == []
    assert not any(r["generation_copy"] or r["engine_folder"] for r in reports)  # nothing unsharded kept, nothing written
    [synced] = torch.load(tmp_path / "server" / "synced.pt")
    initial = load_file(tmp_path / "model" / "model.safetensors")
    assert set(synced) == {n for n, _ in AutoModelForCausalLM.from_pretrained(tmp_path / "model").named_parameters()}
    assert all(torch.equal(tensor, initial[name]) for name, tensor in synced.items())

    def records(run: str) -> list:
        rows = [json.loads(line) for line in (tmp_path / run / "iter-1" / "samples.jsonl").read_text().splitlines()]
        return sorted(({k: v for k, v in row.items() if k not in ("seconds", "config_hash")} for row in rows), key=json.dumps)

    assert len(records("server")) == 9 and records("server") == records("hf")


def test_two_processes_hand_the_optimiser_the_one_process_gradient(tmp_path):
    """Each process scales its loss by the process count so that DDP's average is the one-process gradient of
    the step's mean. Compared before the optimiser (AdamW's normalisation hides a constant factor, which the
    weight comparisons above cannot see), for EM's M-step and for SFT, with uneven shares."""
    task = tiny_model_and_sums(tmp_path)
    for world in (1, 2):
        launch("gradients", world, tmp_path / "model", task, tmp_path / f"world{world}")
    one, two = (torch.load(tmp_path / f"world{w}" / "gradients.pt") for w in (1, 2))
    assert 0 < one["em"].norm() < 0.9  # under EM's fixed clip at norm 1, which would rescale both to the same norm
    for trainer in ("em", "sft"):
        assert torch.allclose(two[trainer], one[trainer], rtol=1e-4, atol=1e-7), (trainer, float(two[trainer].norm() / one[trainer].norm()))
