"""One process of the 2-process gloo check: gradients of the RL loss on this rank's half of a fixed batch.

Run as ``python -m tests.rl.ddp_worker OUT_FILE`` with RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set
(WORLD_SIZE=1 gives the single-process reference on the whole batch).
"""

from __future__ import annotations

import os
import sys

import torch


def fixed_batch(tokenizer):
    from harness.rl.batch import build_batch

    generator = torch.Generator().manual_seed(0)
    prompts, responses, masks = [], [], []
    for row in range(4):
        prompt = torch.randint(5, 300, (3 + row,), generator=generator).tolist()
        response = torch.randint(5, 300, (2 + 3 * row,), generator=generator).tolist()
        prompts.append(prompt)
        responses.append(response)
        masks.append([1 if (i % 3) else 0 for i in range(len(response))])  # some "tool" tokens
    return build_batch(prompts, responses, masks, tokenizer.pad_token_id), torch.tensor([1.0, -0.5, 0.25, -1.0])


def main(out_file: str) -> None:
    from accelerate import Accelerator

    from harness.rl.batch import chunked_logprobs
    from harness.rl.config import RLConfig
    from harness.rl.trainer import accumulate_gradients
    from tests.models.tiny_models import build_model, build_tokenizer

    accelerator = Accelerator(cpu=True)
    tokenizer = build_tokenizer()
    model = accelerator.prepare(build_model("qwen2", tokenizer, seed=3).train())
    batch, advantages = fixed_batch(tokenizer)
    old = chunked_logprobs(model, batch, 4) + 0.05  # a stale policy, so ratios and clipping are exercised
    rank, world = accelerator.process_index, accelerator.num_processes
    rows = list(range(rank, len(advantages), world))
    config = RLConfig(micro_batch_size=1, aggregation=os.environ.get("AGGREGATION", "token"))
    totals = accumulate_gradients(model, accelerator, batch.rows(rows), old[rows], advantages[rows], None, config)
    loss = accelerator.reduce(torch.tensor(totals["loss"]), "sum") / world
    grads = {name: p.grad.detach().clone() for name, p in accelerator.unwrap_model(model).named_parameters()}
    if accelerator.is_main_process:
        torch.save({"loss": float(loss), "grads": grads}, out_file)


if __name__ == "__main__":
    main(sys.argv[1])
