"""One process of the gloo checks in test_distributed_sft_em.py: SFT, or an EM E-step and M-step.

Run as ``python -m tests.training.distributed_worker sft|sft_resume|em MODEL DATA OUT`` with RANK / WORLD_SIZE /
MASTER_ADDR / MASTER_PORT set (WORLD_SIZE=1: the one-process reference). The main process writes the
final weights; every process writes what it saw of the E-step to ``OUT/estep-rankN.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def sft(model: str, data: str, out: Path, resume: bool = False) -> None:
    from harness.training.sft import SFTConfig, train_sft

    # 3 examples a step over 2 processes: shares of 2 and 1; one row per micro-batch, so the first process runs 2, the other 1 + a dummy.
    train_sft(SFTConfig(model=model, data=data, output=str(out), steps=3, batch_size=3, warmup_steps=1, save_every=2, log_every=1,
                        threads=1, micro_batch_size=1, device="cpu"), log=lambda _: None, resume=resume)


def sft_resume(model: str, data: str, out: Path) -> None:
    sft(model, data, out, resume=True)


def em(model: str, data: str, out: Path) -> None:
    import torch

    from harness.em.config import EMConfig
    from harness.em.trainer import EMTrainer
    from harness.sandbox import SandboxLimits, get_sandbox

    config = EMConfig(model=model, task=data, iterations=1, queries_per_iteration=3, k=1, free_rollouts=1, max_tokens=6,
                      max_tool_calls=1, batch_size=4, micro_batch_size=1, learning_rate=1e-2, kl_weight=0.5, decision_weight=1.0,
                      advantage="sign", save_every=1, output_dir=str(out), device="cpu", sandbox_timeout=2.0)
    trainer = EMTrainer(config)
    with get_sandbox("local", limits=SandboxLimits(timeout_s=2.0)) as sandbox:
        estep = trainer.estep(0, sandbox)  # 3 queries x 3 rollouts = 9 over 2 processes: 5 and 4
    seen = sorted((r["query_index"], r["decision"], r["attempt"]) for r in estep["records"])
    (out / f"estep-rank{trainer.accelerator.process_index}.json").write_text(json.dumps(seen))
    encode = trainer.backend.encode
    texts = ["We compute 2 + 2 = 4. The answer is 4.", "The answer is 5.", "It is 4.", "2 + 2 = 4", "Four."]
    training = [({"query": f"q{i % 3}", "decision": "cot", "prompt_ids": encode("What is 2 + 2?")[: 4 + i], "response_ids": encode(text),
                  "loss_mask": [1] * len(encode(text)), "forced_tokens": 0, "correct": i % 2 == 0, "used_code": False}, 1.0)
                for i, text in enumerate(texts)]
    strategies = {f"q{i}": {"cot": i / 2, "code": 1 - i / 2} for i in range(3)}
    # 5 samples in steps of 4: the second step's single sample leaves the second process only a dummy micro-batch.
    trainer.mstep(0, {"training": training, "strategies": strategies})
    state = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    if trainer.accelerator.is_main_process:
        torch.save({name: tensor.detach().clone() for name, tensor in state.items()}, out / "weights.pt")


if __name__ == "__main__":
    mode, model_dir, data_file, out_dir = sys.argv[1:5]
    {"sft": sft, "sft_resume": sft_resume, "em": em}[mode](model_dir, data_file, Path(out_dir))
