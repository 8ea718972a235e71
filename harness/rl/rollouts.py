"""What `train-rl` plugs into TRL's GRPOTrainer: the rollout function and the reward function.

``RolloutFunc`` is GRPOTrainer's ``rollout_func``. TRL hands it this process's prompts (the questions, each
already repeated ``group_size`` times by TRL's sampler) and it runs them through our RolloutEngine: the
```python / ```output protocol, real code in our sandbox, at most ``max_tool_calls`` cells. It returns the
ids TRL trains on, with ``env_mask`` 0 on tool-output tokens so they get no gradient, and the facts the
reward needs (the response text, whether code ran) as extra fields TRL forwards to the reward function.
Prompts go through eval's length guard (harness/eval/attempts.py): one that fills the model's context is
not generated for, as in eval; TRL still needs its row, so it gets ``refused_trajectory``.

The policy generates (the HF path) unless TRL runs vLLM, in which case the same engine generates through
TRL's vLLM handle (harness/rl/trl_vllm.py). ``logprobs`` is None: on the HF path the sampler is the
policy itself, so TRL needs no importance-sampling correction (config turns it off in vLLM modes too).

``Reward`` grades each response against the gold answer in the dataset's ``answer`` column with
``harness.grading`` (1/0, plus the optional format / tool bonuses) and logs, for all processes together,
the code rate and reward per task kind and TRL's tool metrics, which TRL only computes for its own tools,
and the rollout's time (``time/rollout_s``, of which ``time/generate_s`` and ``time/tools_s``).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

from harness.eval.rollout import Segment, Trajectory
from harness.training.schedule import mix_seed


class RolloutFunc:
    def __init__(self, config, method, sandbox) -> None:
        self.config, self.method, self.sandbox = config, method, sandbox
        self.copy = None  # the unsharded generation copy, made on first use under FSDP

    @contextmanager
    def backend(self, trainer):
        """A model backend for this call: TRL's vLLM engine when it runs one; under FSDP an unsharded copy of the
        policy refreshed from its shards (training/generation_copy.py: sharded forwards would have to run in
        step on every process); else the policy being trained itself (one process, DDP). Every update is seen
        by the next rollout."""
        from harness.models.hf import HFBackend

        if trainer.use_vllm:
            from harness.models.stopping import eos_token_ids_of
            from harness.rl.trl_vllm import trl_engine

            model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
            eos = eos_token_ids_of(model.config, getattr(model, "generation_config", None), None)
            with trl_engine(trainer.vllm_generation, trainer.processing_class, trainer.accelerator.is_main_process, eos) as backend:
                yield backend
            return
        if trainer.is_fsdp_enabled:
            yield HFBackend.from_loaded(self.generation_copy(trainer), trainer.processing_class, "policy")
            return
        yield HFBackend.from_loaded(trainer.accelerator.unwrap_model(trainer.model_wrapped), trainer.processing_class, "policy")

    def generation_copy(self, trainer):
        import torch

        from harness.rl.trainer import on_cpu
        from harness.training.generation_copy import GenerationCopy
        from harness.training.layout import precisions

        if self.copy is None:
            module = trainer.accelerator.unwrap_model(trainer.model_wrapped)
            compute, _ = precisions(self.config, gpu=not on_cpu(self.config))
            self.copy = GenerationCopy(module.config, getattr(torch, compute), trainer.accelerator.device)
        self.copy.refresh(trainer.accelerator, trainer.model_wrapped)
        return self.copy.model

    def __call__(self, prompts: list[str], trainer) -> dict:
        from harness.eval.attempts import encode_prompts
        from harness.eval.rollout import RolloutEngine
        from harness.models import SamplingParams

        config = self.config
        # Seeds follow the row's place in the global batch, so N processes sample what one process would.
        first = trainer.accelerator.process_index * len(prompts)
        seeds = [mix_seed(config.seed, trainer.state.global_step, first + i) for i in range(len(prompts))]
        params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_tokens)
        training, started = trainer.model.training, time.perf_counter()
        with self.backend(trainer) as backend:
            encoded = encode_prompts(backend, self.method, dict(enumerate(prompts))).ids
            fits = [row for row in range(len(prompts)) if row in encoded]
            engine = RolloutEngine(backend, params, tools=self.method.tools, sandbox=self.sandbox,
                                   max_tool_calls=config.max_tool_calls, max_tokens=config.max_tokens)
            generated = dict(zip(fits, engine.run([encoded[row] for row in fits], [seeds[row] for row in fits])))
            trajectories = [generated.get(row) or refused_trajectory(backend.pad_token_id, seeds[row]) for row in range(len(prompts))]
        trainer.model.train(training)  # HFBackend.from_loaded put the policy in eval mode
        prompt_ids = [t.prompt_ids for t in trajectories]
        seconds = {"time/rollout_s": time.perf_counter() - started, "time/generate_s": engine.stats.generate_s,
                   "time/tools_s": engine.stats.tool_s}
        return {"prompt_ids": prompt_ids, "completion_ids": [t.response_ids for t in trajectories], "logprobs": None,
                "env_mask": [t.loss_mask for t in trajectories], "response_text": [t.response_text for t in trajectories],
                "used_code": [t.used_code for t in trajectories], "tool_calls": [len(t.tool_calls) for t in trajectories],
                "tool_failures": [sum(call.status != "ok" for call in t.tool_calls) for t in trajectories],
                "seconds": seconds}  # not a list: TRL gives it to every row


def refused_trajectory(pad_token_id: int, seed: int) -> Trajectory:
    """TRL's row for a prompt the length guard refused: one padding token of prompt and one of response,
    marked as tool output, so the batch keeps its shape, the loss mask is 0 (nothing is learned from it)
    and the empty response earns no reward."""
    return Trajectory([pad_token_id], seed, [Segment("tool", [pad_token_id], "")], finish_reason="prompt_too_long")


class Reward:
    """TRL reward function: 1 for a correct answer (harness.grading), plus the optional bonuses."""

    __name__ = "correct"  # TRL logs rewards/<__name__>/mean

    def __init__(self, config, grader: str) -> None:
        self.config, self.grader = config, grader

    def __call__(self, prompts, completions, answer, response_text, used_code, tool_calls, tool_failures,
                 seconds=None, kind=None, log_metric=None, **_) -> list[float]:
        from harness.grading import grade_batch

        grades = grade_batch([(text, json.loads(gold), self.grader) for text, gold in zip(response_text, answer)])
        rewards = [float(bool(g.correct)) + self.config.format_reward * (g.status != "no_answer") + self.config.tool_reward * code
                   for g, code in zip(grades, used_code)]
        if log_metric is not None:
            for name, value in step_metrics(rewards, used_code, tool_calls, tool_failures, kind).items():
                log_metric(name, value)
            for name, value in (seconds[0] if seconds else {}).items():  # this process's rollout time
                log_metric(name, value)
        return rewards


def step_metrics(rewards, used_code, tool_calls, tool_failures, kinds) -> dict:
    """Code rate (overall and per kind), reward per kind and TRL's tool metrics, over every process's rows."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    rows = list(zip(rewards, used_code, tool_calls, tool_failures, kinds or [None] * len(rewards)))
    rows = gather_object(rows) if PartialState().num_processes > 1 else rows
    calls = sum(row[2] for row in rows)
    metrics = {"code_rate": sum(bool(row[1]) for row in rows) / len(rows),
               "tools/call_frequency": calls / len(rows),
               "tools/failure_frequency": sum(row[3] for row in rows) / calls if calls else 0.0}
    for kind in sorted({row[4] for row in rows if row[4] is not None}):
        mine = [row for row in rows if row[4] == kind]
        metrics[f"code_rate/{kind}"] = sum(bool(row[1]) for row in mine) / len(mine)
        metrics[f"reward/{kind}"] = sum(row[0] for row in mine) / len(mine)
    return metrics
