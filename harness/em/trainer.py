"""`harness train-em`: the paper's EM loop, one iteration at a time.

E-step (``estep``): pick ``queries_per_iteration`` queries; roll each out ``k`` times with the CoT
prefix forced, ``k`` times with the code prefix forced, and ``free_rollouts`` times unforced, all
through the shared rollout engine and sandbox, graded by the eval's scorer and appended to
``OUT/iter-N/samples.jsonl`` (a resumed run skips what is there). Then labels by content, Q̂(x,c),
π(c|x), s*(c|x) by ``decision_rule``, the dropped queries and the subsampled training set
(harness/em/estep.py).

M-step (``mstep``): one pass over the training set in optimiser steps of ``batch_size`` sequences:
``mstep_loss`` (truncated-IS policy gradient + k1 KL to π_old, the E-step model, whose log-probs are
recomputed on the exact training tokens; the forced prefix masked out) + the decision cross-entropy
toward s*, AdamW with the shared warm-up and ``lr_schedule`` (harness/training/schedule.py).
Checkpoints every ``save_every`` steps and at the end of each iteration; ``resume`` continues from the
last one, mid-M-step included (the training set is saved with the samples, so it is not redrawn).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch

from harness.em.config import EMConfig
from harness.em.estep import (
    DECISIONS,
    VALUE_ONLY,
    content_labels,
    decision_policy_from_logprobs,
    decision_policy_from_rates,
    em_advantages,
    keep_query,
    reference_strategy,
    subsample,
    success_rates,
)
from harness.em.mstep import decision_cross_entropy, mstep_loss
from harness.io import atomic_write_text
from harness.rl.batch import batch_logprobs, build_batch, chunked_logprobs
from harness.training.schedule import lr_factor, mix_seed


class EMTrainer:
    def __init__(self, config: EMConfig) -> None:
        from harness.em.rollout_policy import RolloutPolicy
        from harness.models.hf import HFBackend
        from harness.rl.trainer import load_policy
        from harness.rl.training_task import load_training_task

        self.config = config
        self.out = Path(config.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        device = "cuda" if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()) else "cpu"
        self.model, self.tokenizer = load_policy(config.model, config.dtype, device)
        self.backend = HFBackend.from_loaded(self.model, self.tokenizer, Path(config.model).name)
        self.rollout = RolloutPolicy(config, self.model, self.tokenizer, self.backend, self.out)
        self.task, self.samples, self.method, self.task_record = load_training_task(config)
        self.prefix_ids = {"cot": self.backend.encode(config.cot_prefix), "code": self.backend.encode(config.code_prefix)}

    # ---------------------------------------------------------------- E-step
    def estep(self, iteration: int, sandbox) -> dict:
        from harness.eval.rollout import RolloutEngine
        from harness.eval.store import RunStore
        from harness.grading import grade_batch
        from harness.models import SamplingParams

        config = self.config
        chosen = random.Random(mix_seed(config.seed, iteration, 17)).sample(range(len(self.samples)), min(config.queries_per_iteration, len(self.samples)))
        plan = [(i, d, j) for i in chosen for d, n in (("cot", config.k), ("code", config.k), ("free", config.free_rollouts)) for j in range(n)]
        store = RunStore(self.out / f"iter-{iteration}")
        identity = {"config_hash": self._estep_hash(iteration), "iteration": iteration, "config": config.to_dict()}
        done = store.open(identity, overwrite=False)
        have = {(r["query_index"], r["decision"], r["attempt"]) for r in done}
        todo = [item for item in plan if item not in have]
        prompts = {i: self.backend.encode(self.backend.chat_prompt(self.method.messages(self.samples[i].question))) for i in chosen}
        params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_tokens)
        engine = RolloutEngine(self.rollout.backend(), params, tools=True, sandbox=sandbox, max_tool_calls=config.max_tool_calls,
                               max_tokens=config.max_tokens)
        self.model.eval()
        started = time.perf_counter()
        chunk = 64
        for start in range(0, len(todo), chunk):
            batch = todo[start : start + chunk]
            trajectories = engine.run([prompts[i] for i, _, _ in batch],
                                      [mix_seed(config.seed, iteration, i, DECISIONS.index(d) if d in DECISIONS else 2, j) for i, d, j in batch],
                                      [self.prefix_ids.get(d, []) for _, d, _ in batch])
            grades = grade_batch([(t.response_text, self.samples[i].answer, self.task.grader) for (i, _, _), t in zip(batch, trajectories)])
            store.append([{"query_index": i, "query": self.samples[i].id, "decision": d, "attempt": j, "kind": self.samples[i].metadata.get("kind"),
                           "prompt_ids": prompts[i], "response_ids": t.response_ids, "loss_mask": t.loss_mask, "response": t.response_text,
                           "forced_tokens": len(self.prefix_ids.get(d, [])), "used_code": t.used_code, "correct": bool(g.correct), "status": g.status}
                          for (i, d, j), t, g in zip(batch, trajectories, grades)])
        self.rollout.release()  # a vLLM engine hands its GPU memory back before the M-step
        records = store.open(identity, overwrite=False) if todo else done
        return self._reference(iteration, records, prompts, time.perf_counter() - started)

    def _estep_hash(self, iteration: int) -> str:
        import hashlib

        settings = {k: v for k, v in self.config.to_dict().items() if k not in ("output_dir", "iterations", "save_every")}
        return hashlib.sha256(json.dumps([settings, iteration], sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _reference(self, iteration: int, records: list[dict], prompts: dict, estep_s: float) -> dict:
        """Q̂, π, s* and the training set. π is measured once, on the E-step model, and saved: a run resumed
        mid-M-step (with weights already updated) must rebuild the very same training set."""
        config = self.config
        forced = content_labels([r for r in records if r["decision"] in DECISIONS], config.content_labels)
        values = success_rates(forced)
        saved = self.out / f"iter-{iteration}" / "policy.json"
        policy = json.loads(saved.read_text()) if saved.is_file() else self._decision_policy(records, prompts)
        atomic_write_text(saved, json.dumps(policy) + "\n")
        kept = {q: v for q, v in values.items() if keep_query(v)}
        if config.decision_rule == "q_argmax":
            strategies = {q: reference_strategy(VALUE_ONLY, v, math.inf) for q, v in kept.items()}
        else:
            strategies = {q: reference_strategy(policy[q], v, config.alpha) for q, v in kept.items()}
        chosen = subsample(forced, strategies, config.subsample, config.samples_per_query, random.Random(mix_seed(config.seed, len(records))))
        return {"records": records, "values": values, "policy": policy, "strategies": strategies, "training": chosen, "estep_s": estep_s}

    def _decision_policy(self, records: list[dict], prompts: dict) -> dict:
        """π(c|x) per query: from the free-rollout code rate (pi_q_free, and q_argmax's report when there are
        free rollouts), else from the mean per-token log-probability of each decision prefix."""
        if self.config.decision_rule == "pi_q_free" or (self.config.decision_rule == "q_argmax" and self.config.free_rollouts):
            free: dict = {}
            for record in records:
                if record["decision"] == "free":
                    free.setdefault(record["query"], []).append(record["used_code"])
            return {query: decision_policy_from_rates(sum(used) / len(used)) for query, used in free.items()}
        means = self._prefix_logprobs(records, prompts, grad=False, per_token=True)
        return {query: decision_policy_from_logprobs(*pair) for query, pair in means.items()}

    def _prefix_logprobs(self, records: list[dict], prompts: dict, grad: bool, per_token: bool = False) -> dict:
        """log P(prefix_c | prompt) for both decisions, per query (renormalised later over the pair); with
        ``per_token`` the mean per prefix token, so prefixes of different lengths compare fairly."""
        queries = {}
        for record in records:
            queries.setdefault(record["query"], record["prompt_ids"])
        rows = [(prompt, self.prefix_ids[decision]) for prompt in queries.values() for decision in DECISIONS]
        batch = build_batch([p for p, _ in rows], [r for _, r in rows], [[1] * len(r) for _, r in rows], self.backend.pad_token_id)
        logprobs = batch_logprobs(self.model, batch) if grad else chunked_logprobs(self.model, batch, 64)
        mask = batch.mask.to(logprobs.device)
        sums = (logprobs * mask).sum(-1) / (mask.sum(-1) if per_token else 1)
        sums = sums.view(-1, 2)
        return {query: sums[index] if grad else tuple(sums[index].tolist()) for index, query in enumerate(queries)}

    # ---------------------------------------------------------------- M-step
    def mstep(self, iteration: int, estep: dict, start_step: int = 0) -> dict:
        from harness.training.checkpoint import save_checkpoint

        config = self.config
        chosen = estep["training"]
        rollouts = [r for r, _ in chosen]
        advantages = em_advantages(rollouts, config.advantage)
        counts: dict = {}
        for rollout in rollouts:
            counts[rollout["query"]] = counts.get(rollout["query"], 0) + 1
        # A sample's subsampling weight scales its advantage; weights of one query sum to 1, so x count keeps the scale.
        items = [(r, a * w * (counts[r["query"]] if config.subsample == "weight" else 1.0))
                 for (r, w), a in zip(chosen, advantages) if a is not None]
        random.Random(mix_seed(config.seed, iteration, 99)).shuffle(items)
        steps = math.ceil(len(items) / config.batch_size)
        old = self._pi_old(iteration, [r for r, _ in items])
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate, weight_decay=0.0)
        warmup = round(config.warmup_ratio * steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, warmup, config.lr_schedule))
        loss_sum, loss_count = 0.0, 0
        if start_step:  # train() has already loaded the checkpoint's weights; restore the optimiser, schedule and RNGs
            from harness.training.checkpoint import latest_checkpoint, load_trainer_state

            extra = load_trainer_state(latest_checkpoint(self.out), optimizer, scheduler)["extra"]
            # The reported loss is the mean over the whole M-step, so the steps before the resume count too.
            loss_sum, loss_count = extra["loss_sum"], extra["loss_count"]
        for step in range(start_step, steps):
            rows = slice(step * config.batch_size, (step + 1) * config.batch_size)
            loss_sum += self._optimiser_step(items[rows], old[rows], estep["strategies"], optimizer)
            loss_count += 1
            scheduler.step()
            if (step + 1) % config.save_every == 0 or step + 1 == steps:
                save_checkpoint(self.out, iteration * 10_000 + step + 1, self.model, self.tokenizer, optimizer, scheduler,
                                {"iteration": iteration, "mstep_step": step + 1, "mstep_steps": steps, "loss_sum": loss_sum,
                                 "loss_count": loss_count, **config.to_dict()})
        return {"mstep_steps": steps, "training_samples": len(items), "loss": loss_sum / loss_count if loss_count else None}

    def _pi_old(self, iteration: int, rollouts: list[dict]) -> list[torch.Tensor]:
        """Per-token log-probs of every training sample under the E-step model, on the exact training tokens;
        computed before the first update and saved, so a resumed M-step uses the same π_old."""
        path = self.out / f"iter-{iteration}" / "pi_old.pt"
        if path.is_file():
            return torch.load(path)
        self.model.eval()
        old = []
        for i in range(0, len(rollouts), 64):
            chunk = rollouts[i : i + 64]
            batch = self._batch(chunk)
            logprobs = chunked_logprobs(self.model, batch, self.config.micro_batch_size)
            old += [logprobs[row, : len(r["prompt_ids"]) + len(r["response_ids"]) - 1].clone() for row, r in enumerate(chunk)]
        torch.save(old, path)
        return old

    def _batch(self, rollouts: list[dict]):
        """Training rows; the forced decision prefix is masked: it was not sampled (its behaviour probability
        was 1), so it gets no policy-gradient or KL term; the decision cross-entropy trains the decision."""
        masks = [[0] * r["forced_tokens"] + r["loss_mask"][r["forced_tokens"]:] for r in rollouts]
        return build_batch([r["prompt_ids"] for r in rollouts], [r["response_ids"] for r in rollouts], masks,
                           self.backend.pad_token_id)

    def _optimiser_step(self, items, old_rows: list[torch.Tensor], strategies, optimizer) -> float:
        config = self.config
        rollouts = [r for r, _ in items]
        batch = self._batch(rollouts)
        old = torch.zeros(batch.mask.shape)
        for row, values in enumerate(old_rows):
            old[row, : len(values)] = values
        advantages = torch.tensor([a for _, a in items])
        correct = torch.tensor([float(r["correct"]) for r in rollouts])
        self.model.train()
        total = 0.0
        for i in range(0, len(rollouts), config.micro_batch_size):
            rows = slice(i, i + config.micro_batch_size)
            micro = batch.rows(rows)
            logprobs = batch_logprobs(self.model, micro)
            mask = micro.mask.to(logprobs.device)
            share = len(rollouts[rows]) / len(rollouts)
            sample_loss, _ = mstep_loss(logprobs, old[rows].to(logprobs.device), advantages[rows].to(logprobs.device), mask,
                                        correct[rows].to(logprobs.device), rho_cap=config.rho_cap, kl_weight=config.kl_weight,
                                        kl_discount=config.kl_discount)
            loss = share * sample_loss
            loss.backward()
            total += loss.item()
        queries = sorted({r["query"] for r in rollouts})
        if config.decision_weight > 0 and queries:
            prompts = {r["query"]: r["prompt_ids"] for r in rollouts}
            logprobs = self._prefix_logprobs([{"query": q, "prompt_ids": prompts[q]} for q in queries], prompts, grad=True)
            target = torch.tensor([[strategies[q][c] for c in DECISIONS] for q in queries])
            decision = config.decision_weight * decision_cross_entropy(torch.stack([logprobs[q] for q in queries]), target.to(next(self.model.parameters()).device))
            decision.backward()
            total += decision.item()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total

    # ---------------------------------------------------------------- loop
    def train(self, resume: bool = False, allow_config_change: bool = False) -> list[dict]:
        """Run to ``config.iterations``; the output folder must be empty or, with ``resume``, this run's (run_folder.py)."""
        from harness.rl.training_task import record_training_task
        from harness.sandbox import SandboxLimits, get_sandbox
        from harness.training.checkpoint import (
            checkpoint_info,
            latest_checkpoint,
            load_weights,
        )
        from harness.training.run_folder import open_run

        config = self.config
        run = open_run(self.out, config.COMMAND, config.to_dict(), config.RESUME_MAY_CHANGE, resume=resume,
                       allow_config_change=allow_config_change)
        record_training_task(self.out, self.task_record)
        start_iteration, start_step = 0, 0
        if run.resuming and (checkpoint := latest_checkpoint(self.out)) is not None:
            state = checkpoint_info(checkpoint)["extra"]
            finished = state["mstep_step"] == state["mstep_steps"]
            start_iteration = state["iteration"] + 1 if finished else state["iteration"]
            start_step = 0 if finished else state["mstep_step"]
            load_weights(checkpoint, self.model)
        run.record()
        run.rewind("report.jsonl", lambda row: row.get("iteration", 0) < start_iteration)
        reports = []
        with get_sandbox(self.config.sandbox, limits=SandboxLimits(timeout_s=self.config.sandbox_timeout)) as sandbox:
            for iteration in range(start_iteration, self.config.iterations):
                estep = self.estep(iteration, sandbox)
                started = time.perf_counter()
                mstep = self.mstep(iteration, estep, start_step if iteration == start_iteration else 0)
                report = iteration_report(iteration, estep, mstep, time.perf_counter() - started)
                reports.append(report)
                with open(self.out / "report.jsonl", "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(report) + "\n")
        atomic_write_text(self.out / "done.json", json.dumps({"iterations": self.config.iterations}) + "\n")
        return reports


def iteration_report(iteration: int, estep: dict, mstep: dict, mstep_s: float) -> dict:
    """Accuracy and code rate per task kind (from the unforced rollouts, or all when there are none), Q̂
    statistics, the share of queries dropped, and how often π's preferred decision matches the oracle."""
    records, values, policy = estep["records"], estep["values"], estep["policy"]
    free = [r for r in records if r["decision"] == "free"] or records
    kinds: dict = {}
    for record in free:
        kinds.setdefault(record["kind"] or "all", []).append(record)
    judged = [q for q, v in values.items() if keep_query(v)]
    oracle = {q: max(DECISIONS, key=lambda c: ((values[q][c] or 0.0), c == "cot")) for q in judged}
    chosen = {q: max(DECISIONS, key=lambda c: (policy[q][c], c == "cot")) for q in judged}
    return {
        "iteration": iteration,
        "accuracy": {k: sum(r["correct"] for r in v) / len(v) for k, v in sorted(kinds.items())},
        "code_rate": {k: sum(r["used_code"] for r in v) / len(v) for k, v in sorted(kinds.items())},
        "q_hat": {c: sum(v[c] or 0.0 for v in values.values()) / max(len(values), 1) for c in DECISIONS},
        "code_better_share": sum((v["code"] or 0) > (v["cot"] or 0) for v in values.values()) / max(len(values), 1),
        "dropped_share": 1 - len(judged) / max(len(values), 1),
        "selection_accuracy": sum(oracle[q] == chosen[q] for q in judged) / len(judged) if judged else None,
        "training_samples": mstep["training_samples"],
        "mstep_steps": mstep["mstep_steps"],
        "mstep_loss": mstep["loss"],
        "time/estep_s": round(estep["estep_s"], 2),
        "time/mstep_s": round(mstep_s, 2),
    }
