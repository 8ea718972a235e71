"""One process of the gloo checks in test_distributed_sft_em.py: SFT, an EM E-step (in process, on vLLM engines or
through a vLLM server) and M-step, one step's gradients, an EM resume refused, or the E-step's π.

Run as ``python -m tests.training.distributed_worker MODE MODEL DATA OUT`` (MODE: a function below) with RANK / WORLD_SIZE /
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


def em_config(model: str, data: str, out: Path, **overrides):
    from harness.em.config import EMConfig

    return EMConfig(**{**dict(model=model, task=data, iterations=1, queries_per_iteration=3, k=1, free_rollouts=1, max_tokens=6,
                              max_tool_calls=1, batch_size=4, micro_batch_size=1, learning_rate=1e-2, kl_weight=0.5,
                              decision_weight=1.0, advantage="sign", save_every=1, output_dir=str(out), device="cpu",
                              sandbox_timeout=2.0), **overrides})


def em_estep(model: str, data: str, out: Path, **settings):
    """A tiny EM trainer and its first E-step (3 queries x 3 rollouts = 9, over 2 processes: 5 and 4); every
    process writes what it saw of it to ``OUT/estep-rankN.json``."""
    from harness.em.trainer import EMTrainer
    from harness.sandbox import SandboxLimits, get_sandbox

    trainer = EMTrainer(em_config(model, data, out, **settings))
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
    trainer._save_iteration_model(0)  # gathered from the shards under FSDP, written by the main process
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
    (out / "iter-1").mkdir(exist_ok=True)  # iteration 0's folder (em.mstep.iteration_folder)
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


def em_stopped_in_m_step(model: str, data: str, out: Path) -> None:
    """An EM run killed after its first E-step (one process, in the test's own)."""
    from harness.em.mstep import MStep
    from harness.em.trainer import EMTrainer

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    real_run, MStep.run = MStep.run, killed
    try:
        EMTrainer(em_config(model, data, out)).train()
    except KeyboardInterrupt:
        pass
    finally:
        MStep.run = real_run


def em_resume_other_temperature(model: str, data: str, out: Path) -> None:
    """Resume that run with a temperature its E-step was not made with; each process records the error it raised."""
    from harness.em.trainer import EMTrainer

    trainer = EMTrainer(em_config(model, data, out, temperature=0.5))
    try:
        trainer.train(resume=True, allow_config_change=True)
        raised = "nothing"
    except ValueError as error:
        raised = str(error)
    (out / f"error-rank{trainer.accelerator.process_index}.txt").write_text(raised)


def em_policy(model: str, data: str, out: Path) -> None:
    """π by pi_q_prefix_mean where the second process measures the prefixes the other way round (as numerics
    apart could make it, at a near tie): every process must still use one π and one s*."""
    from harness.em.trainer import EMTrainer

    trainer = EMTrainer(em_config(model, data, out, decision_rule="pi_q_prefix_mean", alpha=float("inf")))
    rank = trainer.accelerator.process_index
    measured = trainer.mstep.prefix_logprobs
    if rank == 1:
        trainer.mstep.prefix_logprobs = lambda *args, **kwargs: {q: pair[::-1] for q, pair in measured(*args, **kwargs).items()}
    prompt = trainer.backend.encode("What is 2 + 2?")
    # Both decisions equally good on every query: s* follows π alone.
    records = [{"doc_id": f"q{q}", "attempt": a, "decision": d, "used_code": d == "code", "correct": a % 2 == 0, "status": "ok",
                "prompt_ids": prompt[: 3 + q], "metadata": {}} for q in range(3) for a, d in enumerate(["cot", "cot", "code", "code"])]
    reference = trainer._reference(0, records, 0.0)
    (out / f"policy-rank{rank}.json").write_text(json.dumps({key: reference[key] for key in ("policy", "strategies")}))

def em_greedy(model: str, data: str, out: Path) -> None:
    em_estep(model, data, out, temperature=0.0, max_tokens=40)


def em_vllm_server(model: str, data: str, out: Path) -> None:
    """The E-step through one (fake) vLLM server, in rounds of 2 rollouts so that one process has a round with
    nothing to generate while the other generates; the main process saves what the server was sent to
    ``OUT/synced.pt``, and every process writes how it took part to ``OUT/server-rankN.json``."""
    import torch

    import harness.em.trainer as em_trainer
    from tests.rl.fake_vllm import serve_with_fakes

    undo, made = serve_with_fakes(model)
    em_trainer.ESTEP_ROUND = 2
    try:
        trainer = em_estep(model, data, out, rollout_backend="vllm-server", temperature=0.0, max_tokens=40)
    finally:
        undo()
    rank = trainer.accelerator.process_index
    if made:
        torch.save(made[0].syncs, out / "synced.pt")
    report = {"clients": [{"url": c.base_url, "syncs": len(c.syncs), "prefix_cache_resets": c.prefix_cache_resets,
                           "prompts": sum(c.prompts_per_call)} for c in made],
              "generation_copy": trainer.generation_copy is not None, "engine_folder": (out / "rollout-model").exists()}
    (out / f"server-rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    from tests.sharding_on_cpu import install_if_asked

    install_if_asked()
    mode, model_dir, data_file, out_dir = sys.argv[1:5]
    modes = {"sft": sft, "sft_resume": sft_resume, "em": em, "em_vllm": em_vllm, "gradients": gradients,
             "em_stopped_in_m_step": em_stopped_in_m_step, "em_resume_other_temperature": em_resume_other_temperature,
             "em_policy": em_policy, "em_greedy": em_greedy, "em_vllm_server": em_vllm_server}
    modes[mode](model_dir, data_file, Path(out_dir))
