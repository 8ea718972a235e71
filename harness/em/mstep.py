"""The M-step's loop: optimiser steps over the training set, split over processes and micro-batches.

One optimiser step takes ``batch_size`` training samples. Each process trains on every world-th of
them (``distributed.share``), in micro-batches of at most ``micro_batch_size`` rows and
``micro_batch_tokens`` padded tokens; then the decision cross-entropy over the step's queries, split
the same way. Every term is scaled so the processes' gradients, averaged by DDP/FSDP,
equal one process's gradient of

    mean over the step's samples of mstep_loss  +  decision_weight · mean over its queries of the CE,

whatever the split: a micro-batch's mean is weighted by its share of the step and multiplied by the
number of processes (the average divides by it again). Every process runs as many micro-batches as
the busiest one (``distributed.rounds``; dummies weigh 0), so collectives stay in step under FSDP.

``MStep`` is built once per run by EMTrainer from what it uses (config, accelerator, the prepared model
and optimiser, the tokenizer and pad token, the decision prefixes, the run folder); ``run`` does one
iteration's M-step.
It also measures the decision prefixes' log-probabilities (``prefix_logprobs``), which the E-step's π
reads. Training samples are E-step records (eval's sample schema, harness/eval/attempts.py).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch

from harness.em.estep import DECISIONS, em_advantages
from harness.em.objective import decision_cross_entropy, mstep_loss
from harness.eval.attempts import loss_mask, response_ids
from harness.training.batch import batch_logprobs, build_batch, continuation_logprobs
from harness.training.distributed import broadcast, gather, micro_batches, rounds, save_checkpoint_everywhere, share
from harness.training.policy import autocast, micro_step
from harness.training.schedule import lr_factor, mix_seed

# Salt of the training set's shuffle in mix_seed(seed, iteration, salt): a stream of its own, apart from the
# E-step's query draw (trainer.QUERY_DRAW_SALT); fixed, since changing it changes every run's order.
SHUFFLE_SALT = 99
# Checkpoint number = iteration x this + the M-step's step, so numbers grow across iterations (the latest
# checkpoint is the highest) and read as iteration and step; an M-step has far fewer steps.
CHECKPOINTS_PER_ITERATION = 10_000


def iteration_folder(out: Path, iteration: int) -> Path:
    """``OUT/iter-N``, counted from 1 as metrics.jsonl's ``step`` counts iterations: iteration N's E-step
    (its rollouts, π and π_old) and, once its M-step ends, the model it trained (trainer.py)."""
    return Path(out) / f"iter-{iteration + 1}"


class MStep:
    def __init__(self, config, accelerator, model, optimizer, tokenizer, pad_token_id: int, prefix_ids: dict[str, list[int]],
                 out: Path) -> None:
        self.config, self.accelerator, self.model, self.optimizer = config, accelerator, model, optimizer
        self.tokenizer, self.pad_token_id, self.prefix_ids, self.out = tokenizer, pad_token_id, prefix_ids, Path(out)

    def run(self, iteration: int, estep: dict, start_step: int = 0) -> dict:
        """One pass over ``estep["training"]`` ((record, weight) pairs) toward ``estep["strategies"]``; from
        ``start_step`` when resuming (the caller has loaded the checkpoint's weights)."""
        config = self.config
        chosen = estep["training"]
        rollouts = [r for r, _ in chosen]
        advantages = em_advantages(rollouts, config.advantage)
        counts: dict = {}
        for rollout in rollouts:
            counts[rollout["doc_id"]] = counts.get(rollout["doc_id"], 0) + 1
        # A sample's subsampling weight scales its advantage; weights of one query sum to 1, so x count keeps the scale.
        items = [(r, a * w * (counts[r["doc_id"]] if config.subsample == "weight" else 1.0))
                 for (r, w), a in zip(chosen, advantages) if a is not None]
        random.Random(mix_seed(config.seed, iteration, SHUFFLE_SALT)).shuffle(items)
        steps = math.ceil(len(items) / config.batch_size)
        old = self._pi_old(iteration, [r for r, _ in items])
        optimizer = self.optimizer
        # Each M-step starts AdamW afresh (v1 restarts its trainer): clear the moments of the one optimiser
        # the run holds (prepared with the model once, as accelerate's wrappers expect).
        innermost(optimizer).state.clear()
        warmup = round(config.warmup_ratio * steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, warmup, config.lr_schedule))
        loss_sum, loss_count = 0.0, 0
        if start_step:  # the weights are the checkpoint's already; restore the optimiser, schedule and RNGs
            from harness.training.checkpoint import latest_checkpoint, load_trainer_state

            extra = load_trainer_state(latest_checkpoint(self.out), optimizer, scheduler, self.accelerator.process_index)["extra"]
            # The reported loss is the mean over the whole M-step, so the steps before the resume count too.
            loss_sum, loss_count = extra["loss_sum"], extra["loss_count"]
        for step in range(start_step, steps):
            rows = slice(step * config.batch_size, (step + 1) * config.batch_size)
            loss_sum += self.optimiser_step(items[rows], old[rows], estep["strategies"], optimizer)
            loss_count += 1
            scheduler.step()
            if (step + 1) % config.save_every == 0 or step + 1 == steps:
                number = iteration * CHECKPOINTS_PER_ITERATION + step + 1
                save_checkpoint_everywhere(self.accelerator, self.out, number, self.model, self.tokenizer, optimizer, scheduler,
                                           {"iteration": iteration, "mstep_step": step + 1, "mstep_steps": steps,
                                            "loss_sum": loss_sum, "loss_count": loss_count, **config.to_dict()})
        return {"mstep_steps": steps, "training_samples": len(items), "loss": loss_sum / loss_count if loss_count else None}

    def _autocast(self):
        return autocast(self.accelerator, self.config.dtype)

    def _plans(self, lengths: list[int], rows_per_item: int = 1) -> list:
        """This process's micro-batches of ``lengths`` (positions into them), padded with None to the busiest process's count."""
        config, world = self.config, self.accelerator.num_processes
        plans = []
        for rank in range(world):
            mine = share(len(lengths), rank, world)
            groups = micro_batches([lengths[i] for i in mine], max(1, config.micro_batch_size // rows_per_item),
                                   config.micro_batch_tokens // rows_per_item)
            plans.append([[mine[i] for i in group] for group in groups])
        return rounds(plans, self.accelerator.process_index)

    def _pi_old(self, iteration: int, rollouts: list[dict]) -> list[torch.Tensor]:
        """Per-token log-probs of every training sample under the E-step model, on the exact training tokens;
        computed before the first update (each process its share, then gathered) and saved by the main
        process, so a resumed M-step uses the same π_old."""
        path = iteration_folder(self.out, iteration) / "pi_old.pt"
        if broadcast(self.accelerator, path.is_file()):  # the main process decides: the others may not see its disk
            return broadcast(self.accelerator, torch.load(path) if self.accelerator.is_main_process else None)
        self.model.eval()
        mine = []
        with torch.no_grad():
            for group in self._plans([len(r["prompt_ids"]) + len(response_ids(r)) for r in rollouts]):
                chunk = [rollouts[i] for i in group or [0]]
                with self._autocast():
                    logprobs = batch_logprobs(self.model, self.batch(chunk)).float().cpu()
                if group:
                    mine += [(i, logprobs[row, : len(r["prompt_ids"]) + len(response_ids(r)) - 1].clone())
                             for row, (i, r) in enumerate(zip(group, chunk))]
        old = [values for _, values in sorted(gather(self.accelerator, mine), key=lambda pair: pair[0])]
        if self.accelerator.is_main_process:
            torch.save(old, path)
        return old

    def batch(self, rollouts: list[dict]):
        """Training rows; the forced decision prefix is masked: it was not sampled (its behaviour probability
        was 1), so it gets no policy-gradient or KL term; the decision cross-entropy trains the decision."""
        masks = [[0] * r["forced_tokens"] + loss_mask(r)[r["forced_tokens"]:] for r in rollouts]
        return build_batch([r["prompt_ids"] for r in rollouts], [response_ids(r) for r in rollouts], masks, self.pad_token_id)

    def optimiser_step(self, items, old_rows: list[torch.Tensor], strategies, optimizer) -> float:
        """One optimiser step; returns the step's loss (the same on every process)."""
        config, accelerator = self.config, self.accelerator
        world = accelerator.num_processes
        rollouts = [r for r, _ in items]
        queries = sorted({r["doc_id"] for r in rollouts}) if config.decision_weight > 0 else []
        prompts = {r["doc_id"]: r["prompt_ids"] for r in rollouts}
        longest_prefix = max(len(ids) for ids in self.prefix_ids.values())
        units = [("sample", group) for group in self._plans([len(r["prompt_ids"]) + len(response_ids(r)) for r in rollouts])]
        units += [("decision", group) for group in self._plans([len(prompts[q]) + longest_prefix for q in queries], 2)]
        self.model.train()
        total = 0.0
        for number, (kind, group) in enumerate(units):
            with micro_step(accelerator, self.model, last=number + 1 == len(units)):
                if kind == "sample":
                    loss = self._sample_loss([items[i] for i in group or [0]], [old_rows[i] for i in group or [0]], len(items))
                else:
                    loss = self._decision_loss([queries[i] for i in group or [0]], prompts, strategies, len(queries))
                weight = 1.0 if group else 0.0  # a dummy micro-batch keeps collectives in step and adds nothing
                accelerator.backward(loss * weight * world)
                total += float(loss.detach()) * weight
        accelerator.clip_grad_norm_(self.model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if world > 1:
            total = float(accelerator.reduce(torch.tensor(total, device=accelerator.device), "sum"))
        return total

    def _sample_loss(self, items, old_rows, step_size: int) -> torch.Tensor:
        """mstep_loss of these samples, weighted by their share of the step."""
        config = self.config
        rollouts = [r for r, _ in items]
        batch = self.batch(rollouts)
        old = torch.zeros(batch.mask.shape)
        for row, values in enumerate(old_rows):
            old[row, : len(values)] = values
        with self._autocast():
            logprobs = batch_logprobs(self.model, batch).float()
        device = logprobs.device
        loss, _ = mstep_loss(logprobs, old.to(device), torch.tensor([a for _, a in items], device=device), batch.mask.to(device),
                             torch.tensor([float(r["correct"]) for r in rollouts], device=device), rho_cap=config.rho_cap,
                             kl_weight=config.kl_weight, kl_discount=config.kl_discount)
        return loss * len(items) / step_size

    def _decision_loss(self, queries: list, prompts: dict, strategies, step_queries: int) -> torch.Tensor:
        """decision_weight x the cross-entropy toward s* of these queries, weighted by their share of the step's queries."""
        logprobs = self.prefix_logprobs({q: prompts[q] for q in queries}, grad=True)
        target = torch.tensor([[strategies[q][c] for c in DECISIONS] for q in queries])
        stacked = torch.stack([logprobs[q] for q in queries])
        return self.config.decision_weight * decision_cross_entropy(stacked, target.to(stacked.device)) * len(queries) / step_queries

    def prefix_logprobs(self, queries: dict, grad: bool, per_token: bool = False) -> dict:
        """log P(prefix_c | prompt) for both decisions, per query ({doc id: prompt ids}), renormalised later
        over the pair; with ``per_token`` the mean per prefix token, so prefixes of different lengths compare
        fairly. Only the prefix positions get logits (``continuation_logprobs``); without ``grad``, in micro-batches."""
        names = list(queries)
        groups = micro_batches([len(queries[q]) for q in names], max(1, self.config.micro_batch_size // 2),
                               self.config.micro_batch_tokens // 2) if not grad else [list(range(len(names)))]
        sums = []
        with torch.enable_grad() if grad else torch.no_grad():
            for group in groups:
                rows = [(queries[names[i]], self.prefix_ids[c]) for i in group for c in DECISIONS]
                with self._autocast():
                    logprobs, mask = continuation_logprobs(self.model, [p for p, _ in rows], [c for _, c in rows],
                                                           self.pad_token_id)
                sums.append(logprobs.float().sum(-1) / (mask.sum(-1) if per_token else 1))
        pairs = torch.cat(sums).view(-1, 2)
        return {query: pairs[index] if grad else tuple(pairs[index].tolist()) for index, query in enumerate(names)}


def innermost(optimizer):
    """The torch optimiser under accelerate's wrapper (whose ``state`` holds the moments)."""
    while hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer
    return optimizer
