"""One process of the gloo checks in test_distributed_sft_em.py: SFT, an EM E-step and M-step, or one step's gradients.

Run as ``python -m tests.training.distributed_worker sft|sft_resume|em|em_vllm|gradients MODEL DATA OUT`` with RANK / WORLD_SIZE /
MASTER_ADDR / MASTER_PORT set (WORLD_SIZE=1: the one-process reference), and ``HARNESS_TEST_SHARDING=fsdp2`` for
FSDP2 instead of DDP (tests/sharding_on_cpu.py). The main process writes the final weights; every process writes
what it saw of the E-step to ``OUT/estep-rankN.json`` and how its model was held to ``OUT/held-rankN.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def sft(model: str, data: str, out: Path, resume: bool = False) -> None:
    from harness.training.sft import SFTConfig, train_sft

    # 3 examples a step over 2 processes: shares of 2 and 1; one row per micro-batch, so the first process runs 2, the other 1 + a dummy.
    train_sft(SFTConfig(model=model, data=data, output_dir=str(out), steps=3, batch_size=3, warmup_steps=1, save_every=2, log_every=1,
                        threads=1, micro_batch_size=1, device="cpu"), log=lambda _: None, resume=resume)


def sft_resume(model: str, data: str, out: Path) -> None:
    sft(model, data, out, resume=True)


def em_estep(model: str, data: str, out: Path, **settings):
    """A tiny EM trainer and its first E-step (3 queries x 3 rollouts = 9, over 2 processes: 5 and 4); every
    process writes what it saw of it to ``OUT/estep-rankN.json``."""
    from harness.em.config import EMConfig
    from harness.em.trainer import EMTrainer
    from harness.sandbox import SandboxLimits, get_sandbox

    config = EMConfig(model=model, task=data, iterations=1, queries_per_iteration=3, k=1, free_rollouts=1, max_tokens=6,
                      max_tool_calls=1, batch_size=4, micro_batch_size=1, learning_rate=1e-2, kl_weight=0.5, decision_weight=1.0,
                      advantage="sign", save_every=1, output_dir=str(out), device="cpu", sandbox_timeout=2.0, **settings)
    trainer = EMTrainer(config)
    with get_sandbox("local", limits=SandboxLimits(timeout_s=2.0)) as sandbox:
        estep = trainer.estep(0, sandbox)
    seen = sorted((r["doc_id"], r["decision"], r["attempt"]) for r in estep["records"])
    (out / f"estep-rank{trainer.accelerator.process_index}.json").write_text(json.dumps(seen))
    return trainer


def em_vllm(model: str, data: str, out: Path) -> None:
    """The E-step on (fake) vLLM engines, one per process, each on the folder the trainer wrote; every process
    writes what its engine got to ``OUT/engine-rankN.json``."""
    import harness.em.rollout_backend as rollout_backend
    from tests.rl.fake_vllm import FakeEngine

    engines, real = [], (rollout_backend.vllm_installed, rollout_backend.start_vllm_engine)
    rollout_backend.vllm_installed = lambda: True
    rollout_backend.start_vllm_engine = lambda folder, args: engines.append(FakeEngine(folder, args)) or engines[-1]
    try:  # the one-process reference runs inside pytest's process: put the real functions back
        trainer = em_estep(model, data, out, rollout_backend="vllm")
    finally:
        rollout_backend.vllm_installed, rollout_backend.start_vllm_engine = real
    report = {"engines": [{"folder": e.folder, "dtype": e.engine_args["dtype"], "closed": e.closed,
                           "weight_dtypes": sorted({str(w.dtype) for w in e.weights.values()})} for e in engines],
              "generation_copy": trainer.generation_copy is not None}
    (out / f"engine-rank{trainer.accelerator.process_index}.json").write_text(json.dumps(report))


def em(model: str, data: str, out: Path) -> None:
    import torch

    from tests.rl.em_records import em_record

    trainer = em_estep(model, data, out)
    encode = trainer.backend.encode
    texts = ["We compute 2 + 2 = 4. The answer is 4.", "The answer is 5.", "It is 4.", "2 + 2 = 4", "Four."]
    training = [(em_record(f"q{i % 3}", encode("What is 2 + 2?")[: 4 + i], encode(text), correct=i % 2 == 0), 1.0)
                for i, text in enumerate(texts)]
    strategies = {f"q{i}": {"cot": i / 2, "code": 1 - i / 2} for i in range(3)}
    # 5 samples in steps of 4: the second step's single sample leaves the second process only a dummy micro-batch.
    trainer.mstep.run(0, {"training": training, "strategies": strategies})
    from harness.training.distributed import full_weights

    parameter = next(trainer.model.parameters())
    held = {"distributed_type": str(trainer.accelerator.distributed_type), "parameter": type(parameter).__name__}
    (out / f"held-rank{trainer.accelerator.process_index}.json").write_text(json.dumps(held))
    state = full_weights(trainer.accelerator, trainer.model)  # a collective under FSDP
    if trainer.accelerator.is_main_process:
        torch.save({name: tensor.detach().clone() for name, tensor in state.items()}, out / "weights.pt")


class GradientRecorder:
    """Stands in for the optimiser: keeps the gradient it is asked to apply (after the trainer's clipping),
    changes nothing. AdamW would hide a constant factor on the gradient; this shows it."""

    def __init__(self, model) -> None:
        self.model, self.gradient = model, None

    def step(self) -> None:
        import torch

        self.gradient = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in self.model.parameters()])

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.model.zero_grad(set_to_none=set_to_none)


def gradients(model: str, data: str, out: Path) -> None:
    """The gradient one EM step (MStep.optimiser_step) and one SFT step (sft_step) hand the optimiser, from the same
    weights, with shares that do not divide evenly (3 samples, 3 demonstrations, one row per micro-batch)."""
    import torch

    from harness.em.config import EMConfig
    from harness.em.trainer import EMTrainer
    from harness.training.sequences import encode_example
    from harness.training.sft import SFTConfig, sft_step
    from tests.rl.em_records import em_record

    # Small advantages and weights keep the EM gradient's norm (~0.25) under the trainer's fixed clip at 1, which
    # would otherwise rescale both runs to the same norm; SFT's clip is set out of reach.
    trainer = EMTrainer(EMConfig(model=model, task=data, kl_weight=1e-3, decision_weight=1e-3, batch_size=3, micro_batch_size=1,
                                 output_dir=str(out), device="cpu"))
    encode = trainer.backend.encode
    texts = ["We compute 2 + 2 = 4. The answer is 4.", "The answer is 5.", "It is 4."]
    rollouts = [em_record(f"q{i % 2}", encode("What is 2 + 2?")[: 4 + i], encode(text), correct=i != 1) for i, text in enumerate(texts)]
    (out / "iter-0").mkdir(exist_ok=True)
    old = trainer.mstep._pi_old(0, rollouts)
    recorder = GradientRecorder(trainer.model)
    trainer.mstep.optimiser_step([(r, 1e-3 if r["correct"] else -1e-3) for r in rollouts], old,
                            {"q0": {"cot": 0.25, "code": 0.75}, "q1": {"cot": 1.0, "code": 0.0}}, recorder)
    em_gradient = recorder.gradient
    tokenizer = trainer.tokenizer
    demonstrations = [encode_example(tokenizer, {"prompt": "What is 2 + 2?", "response": text}) for text in texts]
    sft_step(trainer.model, recorder, trainer.accelerator, demonstrations, tokenizer.pad_token_id,
             SFTConfig(model=model, data=data, output_dir=str(out), micro_batch_size=1, max_grad_norm=1e9, device="cpu"))
    if trainer.accelerator.is_main_process:
        torch.save({"em": em_gradient, "sft": recorder.gradient}, out / "gradients.pt")


if __name__ == "__main__":
    from tests.sharding_on_cpu import install_if_asked

    install_if_asked()
    mode, model_dir, data_file, out_dir = sys.argv[1:5]
    {"sft": sft, "sft_resume": sft_resume, "em": em, "em_vllm": em_vllm, "gradients": gradients}[mode](model_dir, data_file, Path(out_dir))
