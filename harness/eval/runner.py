"""Run one (model, task, method): prompts through the rollout engine, grading, and the run directory.

Problems are processed in chunks (``batch_size`` problems x ``samples`` attempts); each finished
chunk is graded and appended to samples.jsonl, so an interrupted run resumes where it stopped.
Every attempt has its own seed, derived from the run seed, the problem id and the attempt number,
so a resumed run reproduces what an uninterrupted one would have generated. A prompt that fills the
model's context is not generated for: its attempts are recorded as incorrect with status
``prompt_too_long``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.defaults import EVAL_SANDBOX_TIMEOUT_S, MAX_TOOL_CALLS
from harness.eval.attempts import RECORD_FIELDS, RECORD_KEY, Attempt, encode_prompts, run_attempts, run_description
from harness.eval.methods import Method
from harness.eval.results import build_results
from harness.eval.rollout import RolloutEngine
from harness.eval.store import RunStore
from harness.eval.tasks import Sample, TaskSpec


@dataclass
class EvalConfig:
    """Everything that decides what a run generates (all of it goes into the config hash but ``limit``,
    ``batch_size`` and the folders, which change how much or how fast, not what)."""

    model: str = "smollm2"
    model_args: dict = field(default_factory=dict)
    task: str = "gsm8k"
    method: str = "cot"
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    max_tool_calls: int = MAX_TOOL_CALLS
    seed: int = 0
    sandbox: str = "local"
    sandbox_timeout: float = EVAL_SANDBOX_TIMEOUT_S
    limit: int | None = None
    batch_size: int = 16
    output_dir: str = "runs"
    data_dir: str | None = None

    def hashed(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("limit", "batch_size", "output_dir", "data_dir")}


def attempt_seed(run_seed: int, doc_id: str, attempt: int) -> int:
    digest = hashlib.sha256(f"{run_seed}:{doc_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1)


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._") or "model"


def config_hash(config: EvalConfig, task: TaskSpec, method: Method, fingerprint: str) -> str:
    payload = {"config": config.hashed(), "task_version": task.version, "method_version": method.version, "data": fingerprint}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


class EvalRun:
    """One run directory being filled. ``progress`` is called with (done, total, correct) after each chunk."""

    def __init__(self, config: EvalConfig, task: TaskSpec, method: Method, samples: list[Sample], fingerprint: str, backend, sandbox):
        self.config, self.task, self.method, self.backend, self.sandbox = config, task, method, backend, sandbox
        self.samples = samples[: config.limit] if config.limit else samples
        self.fingerprint = fingerprint
        self.directory = Path(config.output_dir) / safe_name(backend.name) / safe_name(task.name) / safe_name(method.name)
        self.store = RunStore(self.directory, key=RECORD_KEY, required=RECORD_FIELDS)
        self.hash = config_hash(config, task, method, fingerprint)
        self.records: list[dict] | None = None

    def run_info(self, environment: dict) -> dict:
        return {**run_description(asdict(self.config), self.hash, self.backend.name, self.task, self.method, self.fingerprint,
                                  len(self.samples)), **environment}

    def open(self, environment: dict, overwrite: bool = False) -> str | None:
        """Lock the run directory and read what is done; returns a warning when bad lines were set aside."""
        self.records = self.store.open(self.run_info(environment), overwrite)
        return self.store.rejected_summary()

    def close(self) -> None:
        self.store.close()

    def execute(self, environment: dict, overwrite: bool = False, progress=None) -> list[dict]:
        """Generate and grade every missing (problem, attempt); returns all records of the run."""
        from harness.grading.pool import shared_pool
        from harness.models import SamplingParams

        shared_pool()  # start the grading workers now: they warm up while the first chunk generates
        if self.records is None:
            self.open(environment, overwrite)
        records = self.records
        done = {(r["doc_id"], r["attempt"]) for r in records}
        todo = [Attempt(s, a, attempt_seed(self.config.seed, s.id, a)) for s in self.samples for a in range(self.config.samples)
                if (s.id, a) not in done]
        prompts = encode_prompts(self.backend, self.method, {a.sample.id: a.sample.question for a in todo})
        params = SamplingParams(temperature=self.config.temperature, top_p=self.config.top_p,
                                max_new_tokens=self.config.max_tokens, seed=self.config.seed)
        engine = RolloutEngine(self.backend, params, tools=self.method.tools, sandbox=self.sandbox,
                               max_tool_calls=self.config.max_tool_calls, max_tokens=self.config.max_tokens)
        total = len(self.samples) * self.config.samples
        if progress:
            progress(len(records), total, sum(bool(r["correct"]) for r in records))
        chunk = max(1, self.config.batch_size) * self.config.samples
        for start in range(0, len(todo), chunk):
            new = run_attempts(engine, todo[start : start + chunk], prompts, self.task.grader)
            self.store.append(new)
            records.extend(new)
            if progress:
                progress(len(records), total, sum(bool(r["correct"]) for r in records))
        self.engine_stats = engine.stats
        return records

    def write_results(self, records: list[dict], elapsed_s: float) -> dict:
        """Build and write results.json. It describes the run as run.json first recorded it (a resumed run keeps
        the environment it started in), with this invocation's limit, which decides the problems it counts."""
        info = json.loads(self.store.run_file.read_text(encoding="utf-8"))
        info["config"]["limit"] = self.config.limit
        results = {**build_results(info, records, elapsed_s), "rollout": vars(self.engine_stats)}
        self.store.write_results(results)
        return results
