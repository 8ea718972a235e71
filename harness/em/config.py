"""`train-em`'s configuration: one dataclass, YAML-loadable, with presets.

What the paper leaves unknown is a flag here, with the released v1 code's choice as the default:
the exact subsampling equation (``subsample``), α in the final version (``alpha``; ``inf`` = v1's
argmax), the E-step's decision rule and how π(c|x) enters it (``decision_rule``, harness/em/estep.py),
the warm-up recipe (``harness train-sft``) and the number of iterations (``iterations``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from harness.em.estep import CONTENT_LABELS, DECISION_RULES
from harness.training import shared_fields as shared
from harness.training.config import option


@dataclass
class EMConfig(shared.RolloutTrainerFields):
    COMMAND: ClassVar[str] = "train-em"
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset({"iterations", "save_every", "output_dir", "report_to", "device",
                                                             "vllm_server_url", "vllm_server_timeout", "vllm_group_port"})
    # The fields that do not shape what an E-step stores (its rollouts, π, training set and π_old): how the
    # M-step optimises, and where and how fast the run computes. Every other field does, and the E-step's hash
    # (trainer.estep_hash) covers it, so a resume that changes only these (--allow-config-change for those
    # beyond RESUME_MAY_CHANGE) carries on with the iteration's stored E-step.
    OUTSIDE_ESTEP: ClassVar[frozenset[str]] = RESUME_MAY_CHANGE | frozenset({
        "learning_rate", "lr_schedule", "warmup_ratio", "batch_size", "micro_batch_size", "micro_batch_tokens",
        "gradient_checkpointing", "rho_cap", "kl_weight", "kl_discount", "decision_weight", "vllm_tensor_parallel",
        "vllm_gpu_memory_utilization"})

    method: str = option("auto", "prompt the policy is trained under (the paper: the bare query)")
    iterations: int = option(2, "EM iterations (E-step then M-step); unknown in the paper, v1 shows 2", minimum=1)
    queries_per_iteration: int = option(64, "queries rolled out per E-step (paper: 7K)", minimum=1)
    k: int = option(8, "rollouts per decision per query (paper: 8, so 16 per query)", minimum=1)
    free_rollouts: int = option(4, "unforced rollouts per query, for the free code rate and the report", minimum=0)
    cot_prefix: str = option("Let's reason step by step.\n", "response prefix that forces chain of thought")
    code_prefix: str = option("Let's write a program.\n", "response prefix that forces code (v1's trigger)")
    decision_rule: str = option("q_argmax", "E-step rule: q_argmax (v1 code: argmax of Q̂, ties to CoT), pi_q_free "
                                "(π from the free-rollout code rate) or pi_q_prefix_mean (π from mean prefix log-probs)",
                                choices=DECISION_RULES)
    alpha: float = option(math.inf, "pi_q_* rules: s*(c|x) ∝ exp(alpha·π(c|x)·Q̂(x,c)); inf = argmax with ties to CoT (v1)", minimum=0)
    content_labels: str = option("relabel", "forced rollout whose content contradicts its decision: relabel (v1), drop or off",
                                 choices=CONTENT_LABELS)
    subsample: str = option("sample", "training-set rule: sample (draw by s*), argmax, or weight", choices=("sample", "argmax", "weight"))
    samples_per_query: int = option(4, "rollouts drawn per kept query with subsample=sample", minimum=1)
    advantage: str = option("whiten", "sign (±1) or whiten (per-query, clipped to [-2, 2]; all-wrong dropped)", choices=("sign", "whiten"))
    rho_cap: float = option(1.2, "cap on the importance weight pi/pi_old", above=0)
    kl_weight: float = option(0.5, "weight of the k1 KL to the E-step policy", minimum=0)
    kl_discount: float = option(0.1, "KL weight multiplier on wrong samples", minimum=0)
    decision_weight: float = option(1.0, "weight of the cross-entropy pulling π(c|x) toward s*", minimum=0)
    learning_rate: float = shared.learning_rate(2e-5, " (v1: 2e-5, cosine)")
    lr_schedule: str = shared.lr_schedule("cosine", ", over each M-step (v1: cosine)")
    warmup_ratio: float = option(0.03, "linear warmup as a share of each M-step's optimiser steps (0: none)", minimum=0, maximum=1)
    batch_size: int = option(128, "sequences per optimiser step (v1: 128)", minimum=1)
    micro_batch_size: int = option(8, "most sequences per forward/backward pass (per process)", minimum=1)
    micro_batch_tokens: int = shared.micro_batch_tokens()
    max_tokens: int = shared.max_tokens(2000, " (v1 max length 2000)")
    top_p: float = shared.top_p(0.95, " (v1: 0.95)")
    output_dir: str = shared.output_dir("runs/em")
    save_every: int = shared.save_every(10, " (and one at each M-step's end)")
    dtype: str = shared.dtype("weights and AdamW states stay float32")
    # The E-step's generator (harness/em/rollout_backend.py).
    rollout_backend: str = option("hf", "E-step generator: hf (the trained model, in this process), vllm (a vLLM engine in each "
                                  "process on the iteration's weights, saved to OUT/rollout-model) or vllm-server (a vLLM server "
                                  "on other GPUs, sent the weights over NCCL each E-step); both vllm ones need vLLM installed",
                                  choices=("hf", "vllm", "vllm-server"))
    vllm_tensor_parallel: int = option(1, "rollout_backend vllm: GPUs per engine (tensor_parallel_size); 1 under a "
                                       "multi-process launch, where each rank runs its own engine on its GPU", minimum=1)
    vllm_gpu_memory_utilization: float = option(0.5, "rollout_backend vllm: share of each GPU the engine may take (weights + "
                                                "KV cache); the policy stays on the GPU during the E-step, leave it room",
                                                above=0, maximum=1)
    vllm_max_model_len: int = option(0, "rollout_backend vllm: tokens per sequence the engine allocates for (prompt, "
                                     "response and tool output); vllm-server: set it to the server's --max_model_len, "
                                     "so longer prompts are refused before they reach it; 0 = the model's own context",
                                     minimum=0)
    vllm_dtype: str = option("bfloat16", "rollout_backend vllm: the engine's weights, saved in this dtype each E-step (float32 "
                             "where the engine supports it, for rollouts at the training precision)",
                             choices=("bfloat16", "float16", "float32"))
    vllm_args: dict = option({}, "rollout_backend vllm: further vllm.LLM arguments (enforce_eager, kv_cache_dtype, ...)")
    vllm_server_url: str = option("http://localhost:8000", "rollout_backend vllm-server: the server's base URL (how to start it: "
                                  "docs/training-at-scale.md)")
    vllm_server_timeout: float = option(240.0, "rollout_backend vllm-server: seconds to wait for the server to answer at the start",
                                        above=0)
    vllm_group_port: int = option(51216, "rollout_backend vllm-server: port of the NCCL group the main process sends the "
                                  "weights over", minimum=1, maximum=65535)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decision_rule == "pi_q_free" and self.free_rollouts < 1:
            raise ValueError("free_rollouts: must be at least 1 with decision_rule pi_q_free")


PRESETS = {
    # The testbed; its learning rate, schedule (constant, no warm-up) and top_p match train-rl's tiny preset.
    "tiny": dict(task="arith", task_args={"split": "train", "size": 2000}, iterations=3, queries_per_iteration=32, k=4,
                 free_rollouts=2, samples_per_query=4, learning_rate=3e-4, lr_schedule="constant", warmup_ratio=0.0,
                 top_p=1.0, batch_size=32, micro_batch_size=32, max_tokens=96, max_tool_calls=1, sandbox_timeout=2.0),
    # The paper's setting (tests/test_paper_fidelity.py holds each value against ../shared/notes/paper.md; the
    # differences and their reasons are in docs/fidelity.md). kl_weight 1.0 is v1's effective weight: its example
    # script's 0.5, summed over a per-device micro-batch of 2, where ours is averaged.
    "paper-7b": dict(task="paper-pool", iterations=3, queries_per_iteration=7000, k=8, free_rollouts=0,
                     decision_rule="q_argmax", cot_prefix="Let's reason step by step.\n",
                     code_prefix="Let's first analyze the problem, then consider if python code could help.\n",
                     learning_rate=2e-5, warmup_ratio=0.03, batch_size=128, micro_batch_size=2, max_tokens=2000,
                     micro_batch_tokens=8192, gradient_checkpointing=True,
                     temperature=1.0, top_p=0.95, rho_cap=1.2, kl_weight=1.0, kl_discount=0.1, dtype="bfloat16",
                     rollout_backend="vllm"),  # the 7B E-step's fast path: one engine per process (docs/training-at-scale.md)
}

EMConfig.PRESETS = PRESETS


def preset(name: str) -> EMConfig:
    return EMConfig.preset(name)
