"""One path from questions to graded sample records: eval's runner, the EM E-step and the miniature's
evaluations all go through it, so they share the prompt-length guard and the record schema.

``encode_prompts`` builds each question's chat prompt and encodes it with the backend's guard: a prompt
that fills the model's context is not generated for. ``run_attempts`` rolls the attempts out through
the rollout engine, grades each response against its sample's gold with the task's grader, and returns
one record per attempt in the sample schema of a run folder (``RECORD_KEY``, ``RECORD_FIELDS``), so
`harness score` and the metrics read a folder whoever wrote it. An attempt whose prompt was refused is
recorded as incorrect with status ``prompt_too_long``, generating nothing.

A caller's own fields (the E-step's decision and forced-prefix length) ride along in ``Attempt.extra``.
Trainers take the exact token ids back from a record with ``response_ids`` and ``loss_mask``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from harness.eval.tasks import Sample

# What identifies a sample line, and what else every line must hold for the metrics to read it.
RECORD_KEY = ("doc_id", "attempt")
RECORD_FIELDS = ("response", "gold", "correct", "extracted", "status", "tool_calls", "tokens", "seconds", "finish_reason")
PROMPT_TOO_LONG = "prompt_too_long"


@dataclass(frozen=True)
class Attempt:
    sample: Sample
    attempt: int
    seed: int
    prefix: list[int] = field(default_factory=list)  # forces how the response starts (trained on as model tokens)
    extra: dict = field(default_factory=dict)  # the caller's own fields, stored with the record


@dataclass
class Prompts:
    text: dict  # key (a doc id) -> chat prompt
    ids: dict  # key -> token ids, for the prompts that fit the model's context


def encode_prompts(backend, method, questions: dict) -> Prompts:
    """Each question's chat prompt ({key: question}), and the token ids of those the backend's length guard
    lets through (``ModelBackend.encode_prompt``)."""
    from harness.models import PromptTooLongError

    prompts = Prompts({}, {})
    for key, question in questions.items():
        prompts.text[key] = backend.chat_prompt(method.messages(question))
        try:
            prompts.ids[key] = backend.encode_prompt(prompts.text[key])
        except PromptTooLongError:
            pass
    return prompts


def run_attempts(engine, attempts: list[Attempt], prompts: Prompts, grader: str) -> list[dict]:
    """Generate and grade ``attempts``; their records, in the order given."""
    from harness.grading import grade_batch

    fits = [a for a in attempts if a.sample.id in prompts.ids]
    began = time.perf_counter()
    trajectories = engine.run([prompts.ids[a.sample.id] for a in fits], [a.seed for a in fits],
                              [list(a.prefix) for a in fits]) if fits else []
    seconds = (time.perf_counter() - began) / max(len(fits), 1)
    grades = grade_batch([(t.response_text, a.sample.answer, grader) for a, t in zip(fits, trajectories)])
    generated = {id(a): {**sample_record(a, prompts.text[a.sample.id], t, seconds), **g.to_dict(), **a.extra}
                 for a, t, g in zip(fits, trajectories, grades)}
    return [generated.get(id(a)) or {**refused_record(a, prompts.text[a.sample.id]), **a.extra} for a in attempts]


def sample_record(attempt: Attempt, prompt: str, trajectory, seconds: float) -> dict:
    sample = attempt.sample
    return {
        "doc_id": sample.id,
        "attempt": attempt.attempt,
        "seed": trajectory.seed,
        "question": sample.question,
        "gold": sample.answer,
        "metadata": sample.metadata,
        "prompt": prompt,
        "prompt_ids": trajectory.prompt_ids,
        "response": trajectory.response_text,
        "tokens": len(trajectory.response_ids),
        "seconds": round(seconds, 4),
        "used_code": trajectory.used_code,
        **trajectory.to_dict(),
    }


def refused_record(attempt: Attempt, prompt: str) -> dict:
    """An attempt never generated because its prompt fills the model's context: it counts as incorrect."""
    sample = attempt.sample
    return {
        "doc_id": sample.id, "attempt": attempt.attempt, "seed": attempt.seed, "question": sample.question, "gold": sample.answer,
        "metadata": sample.metadata, "prompt": None, "prompt_chars": len(prompt), "prompt_ids": [], "response": "",
        "tokens": 0, "seconds": 0.0, "used_code": False, "finish_reason": PROMPT_TOO_LONG, "segments": [],
        "tool_calls": [], "correct": False, "extracted": None, "status": PROMPT_TOO_LONG, "extra": {},
    }


def response_ids(record: dict) -> list[int]:
    """The response's exact token ids, model and tool segments in order."""
    return [token for segment in record["segments"] for token in segment["token_ids"]]


def loss_mask(record: dict) -> list[int]:
    """1 on each model token of the response, 0 on tool-output tokens (see ``Trajectory.loss_mask``)."""
    return [int(segment["kind"] == "model") for segment in record["segments"] for _ in segment["token_ids"]]


def run_description(config: dict, config_hash: str, model_name: str, task, method, fingerprint: str, size: int) -> dict:
    """run.json of a folder of sample records: what `harness score` and results.json read back."""
    return {
        "config": config,
        "config_hash": config_hash,
        "model_name": model_name,
        "task": {"name": task.name, "version": task.version, "source": task.source, "grader": task.grader},
        "method": {"name": method.name, "version": method.version, "system": method.system, "user": method.user,
                   "tools": method.tools},
        "dataset_fingerprint": fingerprint,
        "dataset_size": size,
    }
