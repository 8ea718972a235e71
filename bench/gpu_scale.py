"""Training at scale on one GPU: EM M-step throughput and MFU, FSDP peak memory, vLLM vs HF E-step, a TRL RL step.

Issue 13's GPU check, prepared for one H100/H200 in at most ~8 minutes (unrun so far: no session that
wrote it had a GPU). Every phase runs the real trainers on a random-init model of Qwen2.5-1.5B's shape
with Qwen's real tokenizer, saved to a temporary folder and loaded as a real checkpoint would be:

* ``em``: one EM iteration with the in-process HF decoder (E-step) and one M-step pass; reports E-step
  generated tokens/s, M-step trained tokens/s, the M-step's MFU and the peak memory;
* ``em --rollout vllm``: the same E-step on a vLLM engine (``rollout_backend: vllm``); skipped with a
  note when vLLM is not importable (its CUDA wheel is too large to carry to the lent machine);
* ``em`` under ``accelerate launch --config_file configs/accelerate-fsdp.yaml --num_processes 1``: the
  same iteration with the policy FSDP-wrapped, for its peak memory;
* ``rl``: two ``train-rl`` steps (TRL's GRPOTrainer), the mean step time of the second.

Random weights never answer right, so every query would be dropped and there would be nothing to train
on; for timing only, the verdict is a deterministic stand-in (even response length = correct), as in
tests/rl/test_em_trainer.py. MFU = (2 x params x tokens for π_old + 6 x params x tokens for forward and
backward) / seconds / 989 TFLOP/s (dense bf16 on an H100/H200), the attention term ignored as usual;
the issue's goal is >= 40%.

    python bench/gpu_scale.py [--out results.json]     # all phases, one JSON object
    python bench/gpu_scale.py --smoke                   # the same code on the CPU with a two-layer model
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QWEN25_15B_SHAPE = dict(
    hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
    vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=True, use_sliding_window=False,
)
SMOKE_SHAPE = {**QWEN25_15B_SHAPE, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2}
PEAK_FLOPS = 989e12
REPO = Path(__file__).resolve().parents[1]


def stand_in_verdicts() -> None:
    import harness.grading
    from harness.grading.scorer import Grade

    harness.grading.grade_batch = lambda items: [
        Grade(len(response) % 2 == 0, None, "correct" if len(response) % 2 == 0 else "incorrect") for response, *_ in items]


def make_model(work: Path, smoke: bool) -> tuple[Path, Path]:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from harness.models.qwen_tokenizer import load_qwen_tokenizer

    model_dir, task_file = work / "model", work / "questions.jsonl"
    tokenizer = load_qwen_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(**(SMOKE_SHAPE if smoke else QWEN25_15B_SHAPE), eos_token_id=151645, pad_token_id=151643)
    Qwen2ForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    task_file.write_text("".join(json.dumps({"question": f"A shop sells {i} pens at {i + 3} dollars each. How much?",
                                             "answer": i * (i + 3)}) + "\n" for i in range(64)))
    return model_dir, task_file


def peak_gib(cuda: bool):
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None


def em_phase(args, model_dir: Path, task_file: Path, work: Path) -> dict:
    import torch

    from harness.em.config import EMConfig
    from harness.em.trainer import EMTrainer
    from harness.eval.attempts import response_ids
    from harness.sandbox import SandboxLimits, get_sandbox

    cuda = not args.smoke
    config = EMConfig(model=str(model_dir), task=str(task_file), allow_test_split=True, iterations=1,
                      queries_per_iteration=args.queries, k=args.k, free_rollouts=1, subsample="weight",
                      batch_size=args.batch, micro_batch_size=args.batch, micro_batch_tokens=args.micro_batch_tokens,
                      gradient_checkpointing=True, max_tokens=args.new_tokens, max_tool_calls=1,
                      output_dir=str(work / f"em-{args.tag}"), device="cuda" if cuda else "cpu",
                      dtype="bfloat16" if cuda else "float32", rollout_backend=args.rollout)
    trainer = EMTrainer(config)
    params = sum(p.numel() for p in trainer.model.parameters())
    with get_sandbox("local", limits=SandboxLimits(timeout_s=5)) as sandbox:
        started = time.perf_counter()
        estep = trainer.estep(0, sandbox)
        estep_s = time.perf_counter() - started
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        started = time.perf_counter()
        mstep = trainer.mstep.run(0, estep)
        if cuda:
            torch.cuda.synchronize()
        mstep_s = time.perf_counter() - started
    generated = sum(len(response_ids(r)) for r in estep["records"])
    trained = sum(len(rollout["prompt_ids"]) + len(response_ids(rollout)) for rollout, _ in estep["training"])
    report = {"rollout_backend": args.rollout, "processes": trainer.accelerator.num_processes,
              "distributed_type": str(trainer.accelerator.distributed_type), "params": params,
              "estep": {"rollouts": len(estep["records"]), "generated_tokens": generated, "seconds": round(estep_s, 2),
                        "tokens_per_s": round(generated / estep_s, 1)},
              "mstep": {"training_samples": mstep["training_samples"], "optimiser_steps": mstep["mstep_steps"],
                        "seconds": round(mstep_s, 2)},
              "mstep_peak_memory_gib": peak_gib(cuda)}
    if trained:
        report["mstep"]["tokens_per_s"] = round(trained / mstep_s, 1)
        report["mstep"]["mfu"] = round(8 * params * trained / mstep_s / PEAK_FLOPS, 4)
    return report


def rl_phase(args, model_dir: Path, task_file: Path, work: Path) -> dict:
    from harness.rl.config import RLConfig
    from harness.rl.trainer import RLTrainer

    cuda = not args.smoke
    stamps: list[float] = []
    config = RLConfig(model=str(model_dir), task=str(task_file), allow_test_split=True, steps=2, prompts_per_step=8,
                      group_size=8, max_tokens=args.new_tokens, max_tool_calls=1, micro_batch_size=16, save_every=100,
                      gradient_checkpointing=True, output_dir=str(work / "rl"), device="cuda" if cuda else "cpu")
    started = time.perf_counter()
    history = RLTrainer(config).train(on_step=lambda metrics: stamps.append(time.perf_counter()))
    return {"steps": len(history), "first_step_s": round(stamps[0] - started, 2),
            "second_step_s": round(stamps[1] - stamps[0], 2),
            "rollout_s_second_step": round(history[1].get("time/rollout_s", float("nan")), 2),
            "sequences_per_step": config.prompts_per_step * config.group_size, "peak_memory_gib": peak_gib(cuda)}


def run_phase(args) -> None:
    """One phase in this process (the parent runs each in its own, so peak memory is the phase's own)."""
    stand_in_verdicts()
    work = Path(args.work)
    model_dir, task_file = work / "model", work / "questions.jsonl"
    result = em_phase(args, model_dir, task_file, work) if args.phase == "em" else rl_phase(args, model_dir, task_file, work)
    print("RESULT " + json.dumps(result), flush=True)


def child(command: list[str], timeout: int) -> dict:
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}", "tail": (done.stdout + done.stderr)[-2000:]}
    return {**json.loads(lines[-1][len("RESULT "):]), "wall_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("em", "rl"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--rollout", choices=("hf", "vllm"), default="hf", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="hf", help=argparse.SUPPRESS)  # each phase's own output folder: nothing resumed
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=384)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--micro-batch-tokens", type=int, default=16384)
    parser.add_argument("--out", help="also write the JSON object here")
    parser.add_argument("--smoke", action="store_true", help="the CPU check of this script (figures mean nothing)")
    args = parser.parse_args()
    if args.smoke:
        args.queries, args.k, args.new_tokens, args.batch, args.micro_batch_tokens = 2, 1, 8, 4, 0
    if args.phase:
        return run_phase(args)
    import importlib.util

    import torch

    with tempfile.TemporaryDirectory() as work:
        make_model(Path(work), args.smoke)
        common = ["--work", work, "--queries", str(args.queries), "--k", str(args.k), "--new-tokens", str(args.new_tokens),
                  "--batch", str(args.batch), "--micro-batch-tokens", str(args.micro_batch_tokens)] + (["--smoke"] if args.smoke else [])
        me = [sys.executable, str(Path(__file__).resolve())]
        report = {"device": "cpu (smoke: figures mean nothing)" if args.smoke else torch.cuda.get_device_name(),
                  "shape": "smoke" if args.smoke else "Qwen2.5-1.5B (random init)"}
        report["em_hf"] = child(me + ["--phase", "em", *common], 300)
        report["em_vllm"] = (child(me + ["--phase", "em", "--rollout", "vllm", "--tag", "vllm", *common], 240)
                             if importlib.util.find_spec("vllm") else {"skipped": "vllm is not installed here"})
        if "tokens_per_s" in report["em_vllm"].get("estep", {}) and "estep" in report["em_hf"]:
            report["vllm_over_hf_estep"] = round(report["em_vllm"]["estep"]["tokens_per_s"] / report["em_hf"]["estep"]["tokens_per_s"], 2)
        accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate-fsdp.yaml",
                      "--num_processes", "1", *(["--cpu"] if args.smoke else [])]
        report["em_fsdp_1gpu"] = child(accelerate + [str(Path(__file__).resolve()), "--phase", "em", "--tag", "fsdp", *common], 300)
        report["rl_trl"] = child(me + ["--phase", "rl", *common], 240)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
