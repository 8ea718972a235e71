"""One EM iteration on a GPU: time per phase (E-step rollouts, π estimate, M-step update) and peak memory.

Prepared for one H100, a few minutes; unrun so far (the session that wrote it had no GPU):

* a random-init model of Qwen2.5-0.5B's shape (bf16) with Qwen's real tokenizer, saved to a temporary
  folder and loaded by `train-em` exactly as a real checkpoint would be;
* a small E-step: ``--queries`` gsm8k-style questions x (k forced CoT + k forced code + free) rollouts of
  ``--new-tokens`` tokens (tools on: the sandbox runs whatever code appears);
* random weights never answer right, so every query would be dropped and the M-step would have nothing
  to train on; for timing only, the verdict is replaced by a deterministic stand-in (even response
  length = correct), which gives the M-step the same amount of data a real run would have;
* one M-step pass over the subsampled set (one or more optimiser steps of ``--batch`` sequences).

Prints one JSON object. ``--smoke`` runs the same code on the CPU with a two-layer model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

QWEN25_05B_SHAPE = dict(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
    vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=True, use_sliding_window=False,
)
SMOKE_SHAPE = {**QWEN25_05B_SHAPE, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.queries, args.k, args.new_tokens, args.batch = 2, 1, 8, 4

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    import harness.grading
    from harness.em.config import EMConfig
    from harness.em.trainer import EMTrainer
    from harness.grading.scorer import Grade
    from harness.models.qwen_tokenizer import load_qwen_tokenizer
    from harness.sandbox import SandboxLimits, get_sandbox

    def stand_in_grades(items):
        return [Grade(len(response) % 2 == 0, None, "correct" if len(response) % 2 == 0 else "incorrect") for response, *_ in items]

    harness.grading.grade_batch = stand_in_grades
    device = "cpu" if args.smoke else "cuda"
    with tempfile.TemporaryDirectory() as work:
        model_dir, task_file = Path(work) / "model", Path(work) / "questions.jsonl"
        tokenizer = load_qwen_tokenizer()
        config = Qwen2Config(**(SMOKE_SHAPE if args.smoke else QWEN25_05B_SHAPE), eos_token_id=151645, pad_token_id=151643)
        torch.manual_seed(0)
        Qwen2ForCausalLM(config).to(torch.bfloat16 if not args.smoke else torch.float32).save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        task_file.write_text("".join(json.dumps({"question": f"A shop sells {i} pens at {i + 3} dollars each. How much?", "answer": i * (i + 3)}) + "\n"
                                     for i in range(args.queries)))
        em_config = EMConfig(model=str(model_dir), task=str(task_file), iterations=1, queries_per_iteration=args.queries, k=args.k,
                             free_rollouts=1, subsample="weight", batch_size=args.batch, micro_batch_size=min(args.batch, 16),
                             max_tokens=args.new_tokens, max_tool_calls=1, output_dir=str(Path(work) / "em"), device=device,
                             dtype="float32" if args.smoke else "bfloat16")
        trainer = EMTrainer(em_config)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with get_sandbox("local", limits=SandboxLimits(timeout_s=5)) as sandbox:
            started = time.perf_counter()
            estep = trainer.estep(0, sandbox)
            estep_s = time.perf_counter() - started
            started = time.perf_counter()
            mstep = trainer.mstep(0, estep)
            if device == "cuda":
                torch.cuda.synchronize()
            mstep_s = time.perf_counter() - started
        rollouts = len(estep["records"])
        report = {
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (smoke: figures mean nothing)",
            "estep": {"rollouts": rollouts, "seconds": round(estep_s, 2), "rollouts_per_s": round(rollouts / estep_s, 2),
                      "generated_tokens": sum(len(r["response_ids"]) for r in estep["records"])},
            "mstep": {"training_samples": mstep["training_samples"], "optimiser_steps": mstep["mstep_steps"],
                      "seconds": round(mstep_s, 2)},
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
