"""`train-em`'s configuration: one dataclass, YAML-loadable, with presets.

What the paper leaves unknown is a flag here, with the released v1 code's choice as the default:
the exact subsampling equation (``subsample``), α in the final version (``alpha``; ``inf`` = v1's
argmax), how π(c|x) is estimated (``policy_estimate``), the warm-up recipe (``harness train-sft``),
and the number of iterations (``iterations``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path


def _field(default, help: str):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class EMConfig:
    model: str = _field("", "policy to start from: a Hugging Face model folder (warmed up so it can write code)")
    task: str = _field("arith", "training task: a built-in task or a JSONL path")
    task_args: dict = _field({}, "generator arguments (procedural tasks) or {local_file: ...}")
    data_dir: str | None = _field(None, "folder with the tasks' local JSONL files")
    method: str = _field("auto", "prompt the policy is trained under (the paper: the bare query)")
    iterations: int = _field(2, "EM iterations (E-step then M-step); unknown in the paper, v1 shows 2")
    queries_per_iteration: int = _field(64, "queries rolled out per E-step (paper: 7K)")
    k: int = _field(8, "rollouts per decision per query (paper: 8, so 16 per query)")
    free_rollouts: int = _field(4, "unforced rollouts per query, for the free code rate and the report")
    cot_prefix: str = _field("Let's reason step by step.\n", "response prefix that forces chain of thought")
    code_prefix: str = _field("Let's write a program.\n", "response prefix that forces code (v1's trigger)")
    alpha: float = _field(math.inf, "s*(c|x) ∝ exp(alpha·π(c|x)·Q̂(x,c)); inf = argmax with ties to CoT (v1)")
    policy_estimate: str = _field("prefix_logprob", "π(c|x): prefix_logprob (renormalised over the two prefixes) or free_rollouts")
    subsample: str = _field("sample", "training-set rule: sample (draw by s*), argmax, or weight")
    samples_per_query: int = _field(4, "rollouts drawn per kept query with subsample=sample")
    advantage: str = _field("whiten", "sign (±1) or whiten (per-query, clipped to [-2, 2]; all-wrong dropped)")
    rho_cap: float = _field(1.2, "cap on the importance weight pi/pi_old")
    kl_weight: float = _field(0.5, "weight of the k1 KL to the E-step policy")
    kl_discount: float = _field(0.1, "KL weight multiplier on wrong samples")
    decision_weight: float = _field(1.0, "weight of the cross-entropy pulling π(c|x) toward s*")
    learning_rate: float = _field(2e-5, "AdamW learning rate (v1: 2e-5, cosine)")
    warmup_ratio: float = _field(0.03, "linear warmup as a share of each M-step's optimiser steps")
    batch_size: int = _field(128, "sequences per optimiser step (v1: 128)")
    micro_batch_size: int = _field(8, "sequences per forward/backward pass")
    max_tokens: int = _field(2000, "response token budget per rollout (v1 max length 2000)")
    max_tool_calls: int = _field(4, "executed code cells per rollout")
    temperature: float = _field(1.0, "rollout temperature (v1: 1.0)")
    top_p: float = _field(0.95, "rollout nucleus sampling (v1: 0.95)")
    seed: int = _field(0, "seed for query choice, rollouts and subsampling")
    output_dir: str = _field("runs/em", "E-step samples, checkpoints, report.jsonl and the final model")
    save_every: int = _field(10, "M-step optimiser steps between checkpoints (and at each iteration's end)")
    sandbox: str = _field("local", "local or docker")
    sandbox_timeout: float = _field(5.0, "seconds per code cell")
    device: str = _field("auto", "auto, cpu or cuda")
    dtype: str = _field("auto", "auto (bfloat16 on GPU, float32 on CPU), float32 or bfloat16")

    def __post_init__(self) -> None:
        self.alpha = float(self.alpha)
        checks = {
            "policy_estimate": self.policy_estimate in ("prefix_logprob", "free_rollouts"),
            "subsample": self.subsample in ("sample", "argmax", "weight"),
            "advantage": self.advantage in ("sign", "whiten"),
            "k": self.k >= 1,
            "iterations": self.iterations >= 1,
            "alpha": self.alpha >= 0,
        }
        if self.policy_estimate == "free_rollouts" and self.free_rollouts < 1:
            checks["free_rollouts"] = False
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid {name}: {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: dict) -> EMConfig:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)} (see `harness train-em --help-config`)")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, base: EMConfig | None = None) -> EMConfig:
        import yaml

        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config file is a mapping of field: value")
        return cls.from_dict({**(base.to_dict() if base else {}), **values})

    def updated(self, **overrides) -> EMConfig:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


def help_text() -> str:
    defaults = EMConfig().to_dict()
    return "\n".join(f"{f.name} (default {defaults[f.name]!r}): {f.metadata['help']}" for f in fields(EMConfig))


PRESETS = {
    "tiny": dict(task="arith", task_args={"split": "train", "size": 2000}, iterations=3, queries_per_iteration=32, k=4,
                 free_rollouts=2, samples_per_query=4, learning_rate=3e-4, batch_size=32, micro_batch_size=32,
                 max_tokens=96, max_tool_calls=1, sandbox_timeout=2.0),
    "paper-7b": dict(task="gsm8k", iterations=3, queries_per_iteration=7000, k=8, free_rollouts=0,
                     policy_estimate="prefix_logprob", cot_prefix="Let's reason step by step.\n",
                     code_prefix="Let's first analyze the problem, then consider if python code could help.\n",
                     learning_rate=2e-5, warmup_ratio=0.03, batch_size=128, micro_batch_size=2, max_tokens=2000,
                     temperature=1.0, top_p=0.95, rho_cap=1.2, kl_weight=0.5, kl_discount=0.1, dtype="bfloat16"),
}


def preset(name: str) -> EMConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return EMConfig.from_dict(PRESETS[name])
