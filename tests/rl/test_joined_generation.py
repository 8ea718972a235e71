"""train-rl's rollouts on TRL's vLLM where a generation call must be joined by several processes (harness/rl/
trl_vllm.py: JoinedGeneration), with two gloo processes whose rollouts take different numbers of rounds: in
server mode only the main process holds TRL's client; with colocated tensor parallelism both processes' engines
must see the same prompts. A process out of step would hang: each run has a hard timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.training.test_distributed_sft_em import REPO, free_port


def run_two(mode: str, out) -> list[dict]:
    port, processes = free_port(), []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        processes.append(subprocess.Popen([sys.executable, "-m", "tests.rl.joined_generation_worker", mode, str(out)], cwd=REPO, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


EXPECTED = [[[[3, 2, 1], [5, 4]]], [[[11, 10]], [[14, 13, 12]], [[15]]]]  # each process gets its own prompts, reversed


def test_server_mode_generates_every_process_rollouts_through_the_main_process_client(tmp_path):
    zero, one = run_two("server", tmp_path)
    assert [zero["got"], one["got"]] == EXPECTED
    assert one["engine_calls"] is None  # TRL gives the client to the main process only
    # Round 1 joins both processes' prompts; rounds 2-3 serve the second process while the first waits in finish().
    assert zero["engine_calls"] == [[[1, 2, 3], [4, 5], [10, 11]], [[12, 13, 14]], [[15]]]


def test_colocated_tensor_parallel_engines_get_the_same_prompts(tmp_path):
    zero, one = run_two("tp", tmp_path)
    assert [zero["got"], one["got"]] == EXPECTED
    assert zero["engine_calls"] == one["engine_calls"] == [[[1, 2, 3], [4, 5], [10, 11]], [[12, 13, 14]], [[15]]]


@pytest.mark.parametrize("weights_sleeping", [True, False])
def test_sleep_mode_re_pushes_discarded_weights_wakes_the_cache_and_sleeps_again(weights_sleeping):
    from types import SimpleNamespace

    from harness.rl.trl_vllm import trl_engine
    from tests.models.tiny_models import build_tokenizer

    events = []
    llm = SimpleNamespace(wake_up=lambda tags: events.append(("wake", tags)), sleep=lambda level: events.append(("sleep", level)),
                          llm_engine=SimpleNamespace(model_config=SimpleNamespace(hf_config=SimpleNamespace(eos_token_id=None))))
    handle = SimpleNamespace(mode="colocate", llm=llm, enable_sleep_mode=True, tensor_parallel_size=1,
                             _llm_weights_sleeping=weights_sleeping, sync_weights=lambda: events.append(("sync",)))
    with trl_engine(handle, build_tokenizer(), True):
        events.append(("generate",))
    assert events == [("sync",)] * weights_sleeping + [("wake", ["kv_cache"]), ("generate",), ("sleep", 2)]
    assert handle._llm_weights_sleeping
