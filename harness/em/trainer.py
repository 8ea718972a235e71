"""`harness train-em`: the paper's EM loop, one iteration at a time.

E-step (``estep``): pick ``queries_per_iteration`` queries; roll each out ``k`` times with the CoT
prefix forced, ``k`` times with the code prefix forced, and ``free_rollouts`` times unforced, all
through the shared rollout engine and sandbox, graded by the eval's scorer and appended to
``OUT/iter-N/samples.jsonl`` (N counted from 1; a resumed run skips what is there, and refuses a folder
made under other values of the fields that shape the E-step, ``estep_hash``). Then labels by content, Q̂(x,c),
π(c|x), s*(c|x) by ``decision_rule``, the dropped queries and the subsampled training set
(harness/em/estep.py).

M-step (``mstep``): one pass over the training set in optimiser steps of ``batch_size`` sequences:
``mstep_loss`` (truncated-IS policy gradient + k1 KL to π_old, the E-step model, whose log-probs are
recomputed on the exact training tokens; the forced prefix masked out) + the decision cross-entropy
toward s*, AdamW with the shared warm-up and ``lr_schedule`` (harness/training/schedule.py).
Checkpoints every ``save_every`` steps and at the end of each iteration; ``resume`` continues from the
last one, mid-M-step included (the training set is drawn again from the saved samples and π with the same
seed, so it is the same). At each iteration's end the model is also written to ``OUT/iter-N`` as bf16
safetensors, which checkpoint rotation never removes.
The M-step is harness/em/mstep.py (its loss, harness/em/objective.py).

Under ``accelerate launch`` each process rolls out its share of the E-step; the main process gathers
and stores them and hands the whole E-step to every process, and it alone writes to the run folder.
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
    keep_query,
    reference_strategy,
    subsample,
    success_rates,
)
from harness.em.mstep import MStep, iteration_folder
from harness.eval.attempts import PROMPT_TOO_LONG, Attempt, loss_mask
from harness.io import atomic_write_text
from harness.training.distributed import broadcast, chunk_rounds, decided_by_main, gather, share
from harness.training.schedule import mix_seed

# Attempts per process per round of the E-step: a round is one generation batch, appended to the run folder
# once gathered, so this bounds a batch's memory and what a kill loses.
ESTEP_ROUND = 64
# Salt of the E-step's query draw in mix_seed(seed, iteration, salt): a stream apart from the M-step's
# shuffle (mstep.SHUFFLE_SALT); fixed, since changing it changes every run's data.
QUERY_DRAW_SALT = 17
# Salt of the training set's draw from the rollouts (estep.subsample), a stream of its own for the same reason.
SUBSAMPLE_SALT = 53


class EMTrainer:
    def __init__(self, config: EMConfig, accelerator=None) -> None:
        from harness.em.rollout_backend import RolloutBackend
        from harness.models.hf import HFBackend
        from harness.training.layout import accelerator_layout
        from harness.training.policy import load_policy, make_accelerator
        from harness.training.training_task import load_training_task

        self.config = config
        self.out = Path(config.output_dir)
        self.accelerator = accelerator or make_accelerator(config.device, config.dtype)
        self.layout = accelerator_layout(config, self.accelerator)  # what the trainer refuses fails here, before any loading
        if self.accelerator.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        model, self.tokenizer = load_policy(config.model, config.gradient_checkpointing)
        # One AdamW for the run, prepared with the model, its moments cleared at each M-step (mstep.py).
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
        self.model, optimizer = self.accelerator.prepare(model, optimizer)
        self.generation_copy = self._generation_copy()
        generator = self.generation_copy.model if self.generation_copy else self.accelerator.unwrap_model(self.model)
        self.backend = HFBackend.from_loaded(generator, self.tokenizer, Path(config.model).name)
        self.rollout_backend = RolloutBackend(config, self.accelerator, self.model, self.tokenizer, self.backend, self.out)
        self.task, self.samples, self.method, self.task_record = load_training_task(config)
        self.prefix_ids = {"cot": self.backend.encode(config.cot_prefix), "code": self.backend.encode(config.code_prefix)}
        self.mstep = MStep(config, self.accelerator, self.model, optimizer, self.tokenizer, self.backend.pad_token_id,
                           self.prefix_ids, self.out)

    # ---------------------------------------------------------------- E-step
    def estep(self, iteration: int, sandbox) -> dict:
        from harness.eval.attempts import RECORD_FIELDS, RECORD_KEY, encode_prompts, run_attempts, run_description
        from harness.eval.rollout import RolloutEngine
        from harness.eval.store import RunStore
        from harness.models import SamplingParams
        from harness.training.policy import autocast

        config, accelerator = self.config, self.accelerator
        if self.generation_copy:
            self.generation_copy.refresh(accelerator, self.model)
        draw = random.Random(mix_seed(config.seed, iteration, QUERY_DRAW_SALT))
        chosen = draw.sample(range(len(self.samples)), min(config.queries_per_iteration, len(self.samples)))
        plan = self._attempts(iteration, chosen)
        prompts = encode_prompts(self.backend, self.method, {self.samples[i].id: self.samples[i].question for i in chosen})
        store = RunStore(iteration_folder(self.out, iteration), key=RECORD_KEY, required=RECORD_FIELDS)
        attempts_per_query = 2 * config.k + config.free_rollouts
        description = run_description({**config.to_dict(), "samples": attempts_per_query}, estep_hash(config, iteration),
                                      self.backend.name, self.task, self.method, self.task_record["data_fingerprint"], len(chosen))
        # The main process owns the store (it locks its folder); the others learn what is done, or its refusal, from it.
        identity = {**description, "iteration": iteration}
        done = decided_by_main(accelerator, lambda: open_estep(store, identity, iteration))
        have = {(r["doc_id"], r["attempt"]) for r in done}
        todo = [attempt for attempt in plan if (attempt.sample.id, attempt.attempt) not in have]
        mine = [todo[i] for i in share(len(todo), accelerator.process_index, accelerator.num_processes)]
        params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_tokens)
        engine = RolloutEngine(self.rollout_backend.backend(), params, tools=True, sandbox=sandbox, max_tool_calls=config.max_tool_calls,
                               max_tokens=config.max_tokens)
        self.model.eval()
        started = time.perf_counter()
        # Every process runs as many rounds as the largest share needs (each rollout's seed is its own, so
        # who generates it does not change it); the main process appends each round's gathered records.
        for round_ in range(chunk_rounds(len(todo), accelerator.num_processes, ESTEP_ROUND)):
            batch = mine[round_ * ESTEP_ROUND : (round_ + 1) * ESTEP_ROUND]
            with torch.no_grad(), autocast(accelerator, config.dtype):
                rows = run_attempts(engine, batch, prompts, self.task.grader) if batch else []
            self.rollout_backend.join_others()
            rows = gather(accelerator, rows)
            if accelerator.is_main_process:
                store.append(rows)
        self.rollout_backend.release()  # a vLLM engine hands its GPU memory back before the M-step
        records = decided_by_main(accelerator, lambda: store.open(identity, overwrite=False)) if todo else done
        return self._reference(iteration, records, time.perf_counter() - started)

    def _attempts(self, iteration: int, chosen: list[int]) -> list[Attempt]:
        """Per chosen query: ``k`` CoT-forced, ``k`` code-forced and ``free_rollouts`` unforced attempts,
        numbered in that order; each has its own seed, so who generates it does not change it."""
        config = self.config
        plan = []
        for i in chosen:
            decisions = [(d, j) for d, n in (("cot", config.k), ("code", config.k), ("free", config.free_rollouts)) for j in range(n)]
            for number, (d, j) in enumerate(decisions):
                prefix = self.prefix_ids.get(d, [])
                seed = mix_seed(config.seed, iteration, i, DECISIONS.index(d) if d in DECISIONS else 2, j)
                plan.append(Attempt(self.samples[i], number, seed, prefix, {"decision": d, "forced_tokens": len(prefix)}))
        return plan

    def _generation_copy(self):
        """What the in-process E-step generates with when the trained module is sharded (FSDP): an
        unsharded copy in the compute dtype, refreshed before each E-step (training/generation_copy.py); None
        when every process holds the module whole (one process, DDP) and generates on it directly, or when a
        vLLM engine generates (rollout_backend.py)."""
        from transformers import AutoConfig

        from harness.training.generation_copy import GenerationCopy

        if self.layout.strategy != "fsdp" or self.layout.rollout != "hf":
            return None
        dtype = getattr(torch, self.layout.compute_dtype)
        return GenerationCopy(AutoConfig.from_pretrained(self.config.model), dtype, self.accelerator.device)

    def _has_iteration_model(self, iteration: int) -> bool:
        return (iteration_folder(self.out, iteration) / "config.json").is_file()

    def _save_iteration_model(self, iteration: int) -> None:
        """The model iteration's M-step ended with, as bf16 safetensors in ``OUT/iter-N`` beside its E-step:
        kept for good (checkpoint rotation removes only ``OUT/checkpoints``), for per-iteration evaluation."""
        from harness.training.distributed import save_model_everywhere

        save_model_everywhere(self.accelerator, iteration_folder(self.out, iteration), self.model, self.tokenizer)

    def _reference(self, iteration: int, records: list[dict], estep_s: float) -> dict:
        """Q̂, π, s* and the training set, from the attempts that were generated (a refused prompt has no
        rollout to learn from). π is measured once, on the E-step model, and saved: a run resumed
        mid-M-step (with weights already updated) must rebuild the very same training set."""
        config = self.config
        generated = [r for r in records if r["status"] != PROMPT_TOO_LONG]
        forced = content_labels([r for r in generated if r["decision"] in DECISIONS], config.content_labels)
        values = success_rates(forced)
        saved = iteration_folder(self.out, iteration) / "policy.json"
        # Decided once for all processes: under FSDP a process measuring π runs forwards the others must join.
        if broadcast(self.accelerator, saved.is_file()):
            policy = broadcast(self.accelerator, json.loads(saved.read_text()) if self.accelerator.is_main_process else None)
        else:
            # Every process measures (the forwards are collectives under FSDP), the main process's π is the one
            # used: measured apart, π can differ in the last bits and turn a near-tie of s* the other way.
            policy = broadcast(self.accelerator, self._decision_policy(generated))
            if self.accelerator.is_main_process:
                atomic_write_text(saved, json.dumps(policy) + "\n")
        kept = {q: v for q, v in values.items() if keep_query(v)}
        if config.decision_rule == "q_argmax":
            strategies = {q: reference_strategy(VALUE_ONLY, v, math.inf) for q, v in kept.items()}
        else:
            strategies = {q: reference_strategy(policy[q], v, config.alpha) for q, v in kept.items()}
        chosen = subsample(forced, strategies, config.subsample, config.samples_per_query,
                           random.Random(mix_seed(config.seed, iteration, SUBSAMPLE_SALT)))
        return {"records": records, "values": values, "policy": policy, "strategies": strategies, "training": chosen, "estep_s": estep_s}

    def _decision_policy(self, records: list[dict]) -> dict:
        """π(c|x) per query: from the free-rollout code rate (pi_q_free, and q_argmax's report when there are
        free rollouts), else from the mean per-token log-probability of each decision prefix."""
        if self.config.decision_rule == "pi_q_free" or (self.config.decision_rule == "q_argmax" and self.config.free_rollouts):
            free: dict = {}
            for record in records:
                if record["decision"] == "free":
                    free.setdefault(record["doc_id"], []).append(record["used_code"])
            return {query: decision_policy_from_rates(sum(used) / len(used)) for query, used in free.items()}
        means = self.mstep.prefix_logprobs({r["doc_id"]: r["prompt_ids"] for r in records}, grad=False, per_token=True)
        return {query: decision_policy_from_logprobs(*pair) for query, pair in means.items()}

    # ---------------------------------------------------------------- loop
    def train(self, resume: bool = False, allow_config_change: bool = False) -> list[dict]:
        """Run to ``config.iterations``; the output folder must be empty or, with ``resume``, this run's
        (run_folder.py), and is locked for the whole run."""
        from harness.training.run_folder import open_run

        config = self.config
        if resume and (self.out / "iter-0").is_dir():
            raise ValueError(f"{self.out}: an EM run of an earlier harness (its E-steps counted from iter-0, under other "
                             f"hashes); resume it with the harness that started it")
        with open_run(self.out, config.COMMAND, config.to_dict(), config.RESUME_MAY_CHANGE, resume=resume,
                      allow_config_change=allow_config_change, lock=self.accelerator.is_main_process) as run:
            return self._train(run)

    def _train(self, run) -> list[dict]:
        from harness.sandbox import SandboxLimits, get_sandbox
        from harness.training.checkpoint import checkpoint_info, latest_checkpoint
        from harness.training.distributed import load_weights_everywhere
        from harness.training.metrics import METRICS_FILE, MetricLogger
        from harness.training.training_task import record_training_task

        accelerator = self.accelerator
        accelerator.wait_for_everyone()  # every process has judged the folder before the main one writes to it
        main = accelerator.is_main_process
        if main:
            record_training_task(self.out, self.task_record)
        start_iteration, start_step = 0, 0
        if run.resuming and (checkpoint := latest_checkpoint(self.out)) is not None:
            state = checkpoint_info(checkpoint)["extra"]
            finished = state["mstep_step"] == state["mstep_steps"]
            start_iteration = state["iteration"] + 1 if finished else state["iteration"]
            start_step = 0 if finished else state["mstep_step"]
            load_weights_everywhere(accelerator, checkpoint, self.model)
            if finished and not broadcast(accelerator, self._has_iteration_model(state["iteration"])):
                self._save_iteration_model(state["iteration"])  # stopped between the last checkpoint and the model
        if main:
            run.record()
            run.rewind(METRICS_FILE, lambda row: row.get("step", 0) <= start_iteration)
        accelerator.wait_for_everyone()
        reports = []
        with (get_sandbox(self.config.sandbox, limits=SandboxLimits(timeout_s=self.config.sandbox_timeout)) as sandbox,
              MetricLogger(self.out, self.config.report_to, enabled=main) as metrics):
            for iteration in range(start_iteration, self.config.iterations):
                estep = self.estep(iteration, sandbox)
                started = time.perf_counter()
                mstep = self.mstep.run(iteration, estep, start_step if iteration == start_iteration else 0)
                self._save_iteration_model(iteration)
                report = iteration_metrics(iteration, estep, mstep, time.perf_counter() - started)
                reports.append(report)
                metrics.log(report, report["step"])
        if main:
            atomic_write_text(self.out / "done.json", json.dumps({"iterations": self.config.iterations}) + "\n")
        accelerator.wait_for_everyone()
        return reports


def iteration_metrics(iteration: int, estep: dict, mstep: dict, mstep_s: float) -> dict:
    """The iteration's metrics.jsonl line; its ``step`` counts EM iterations. Under TRL's names, over every
    rollout the E-step generated: ``reward`` (share correct) and ``reward_std``, ``completions/mean_length``
    (model tokens), ``code_rate`` (share that ran code, as train-rl logs it), and the M-step's mean ``loss``.
    Under ``em/``: accuracy and code rate per task kind of the unforced rollouts (or of all when there are
    none), mean Q̂ per decision, the share of queries where code is better, the share dropped, and how often
    π's preferred decision matches the oracle's."""
    import statistics

    records, values, policy = estep["records"], estep["values"], estep["policy"]
    free = [r for r in records if r["decision"] == "free"] or records
    kinds: dict = {}
    for record in free:
        kinds.setdefault(record["metadata"].get("kind") or "all", []).append(record)
    judged = [q for q, v in values.items() if keep_query(v)]
    oracle = {q: max(DECISIONS, key=lambda c: ((values[q][c] or 0.0), c == "cot")) for q in judged}
    chosen = {q: max(DECISIONS, key=lambda c: (policy[q][c], c == "cot")) for q in judged}
    rewards = [float(r["correct"]) for r in records]
    return {
        "step": iteration + 1,
        "reward": sum(rewards) / len(rewards),
        "reward_std": statistics.stdev(rewards) if len(rewards) > 1 else 0.0,
        "completions/mean_length": sum(sum(loss_mask(r)) for r in records) / len(records),
        "code_rate": sum(bool(r["used_code"]) for r in records) / len(records),
        "loss": mstep["loss"],
        "em/iteration": iteration,
        **{f"em/accuracy/{k}": sum(r["correct"] for r in v) / len(v) for k, v in sorted(kinds.items())},
        **{f"em/code_rate/{k}": sum(r["used_code"] for r in v) / len(v) for k, v in sorted(kinds.items())},
        **{f"em/q_hat/{c}": sum(v[c] or 0.0 for v in values.values()) / max(len(values), 1) for c in DECISIONS},
        "em/code_better_share": sum((v["code"] or 0) > (v["cot"] or 0) for v in values.values()) / max(len(values), 1),
        "em/dropped_share": 1 - len(judged) / max(len(values), 1),
        "em/selection_accuracy": sum(oracle[q] == chosen[q] for q in judged) / len(judged) if judged else None,
        "em/training_samples": mstep["training_samples"],
        "em/mstep_steps": mstep["mstep_steps"],
        "time/estep_s": round(estep["estep_s"], 2),
        "time/mstep_s": round(mstep_s, 2),
    }


def estep_hash(config: EMConfig, iteration: int) -> str:
    """The identity of an iteration's E-step: every field that shapes it (all but ``EMConfig.OUTSIDE_ESTEP``)."""
    import hashlib

    settings = {k: v for k, v in config.to_dict().items() if k not in config.OUTSIDE_ESTEP}
    return hashlib.sha256(json.dumps([settings, iteration], sort_keys=True, default=str).encode()).hexdigest()[:16]


def open_estep(store, identity: dict, iteration: int) -> list[dict]:
    """The E-step's records done so far; a one-line ValueError naming the changed fields when the folder holds
    this iteration's E-step under other values of the fields that shape it."""
    from harness.eval.store import RunMismatchError

    try:
        return store.open(identity, overwrite=False)
    except RunMismatchError:
        before = json.loads(store.run_file.read_text(encoding="utf-8")).get("config", {}) if store.run_file.is_file() else {}
        changed = sorted(k for k in identity["config"] if k in before and before[k] != identity["config"][k]
                         and k not in EMConfig.OUTSIDE_ESTEP)
        raise ValueError(f"{store.directory}: iteration {iteration + 1}'s E-step was made with other "
                         f"{', '.join(changed) or 'settings'}; resume with the values it was made with "
                         f"(only {', '.join(sorted(EMConfig.OUTSIDE_ESTEP))} may differ)") from None
