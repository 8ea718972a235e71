"""Two EM iterations of the testbed with the E-step on a real vLLM engine (``rollout_backend: vllm``).

Run by ``scripts/vllm-suite.sh`` inside its vLLM venv (not collected by pytest: vLLM's engine must be started
from a ``__main__`` guard). Prints one JSON summary and exits non-zero when a check fails.

The policy is the testbed's tiny random Llama (``harness model init --preset tiny``) on the ``arith`` task. It
never answers right, so a stand-in verdict gives the E-step successes and failures and the M-step something to
train on; like the grader it replaces, it reads the gold (right when the response's length plus the integer gold
is even), so a rollout graded against another query's gold may change verdict.

Checks: each iteration starts one engine, on OUT/rollout-model, and it is shut down (no child process left)
before that iteration's M-step; each engine's greedy outputs on fixed probe prompts equal the hf backend's on the weights the trainer
held at that E-step (the engine runs the iteration's weights, not stale ones), and they differ between the two
iterations (the M-step changed the weights and the reload carried the change); the E-step wrote every record
the plan asks for, with the hf path's fields.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

RECORD_FIELDS = {"doc_id", "attempt", "decision", "metadata", "prompt_ids", "segments", "response", "forced_tokens", "used_code",
                 "correct", "status"}


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import psutil

    import harness.em.rollout_backend as rollout_backend
    import harness.grading
    from harness.em.config import EMConfig
    from harness.em.mstep import MStep
    from harness.em.trainer import EMTrainer
    from harness.grading.scorer import Grade
    from harness.models import GenerationRequest, SamplingParams
    from harness.models.hf import HFBackend
    from harness.testbed.model_init import write_tiny_model

    def engine_processes() -> dict[int, str]:
        """vLLM's live child processes (pid: title): its engine core and workers name themselves VLLM::..."""
        found = {}
        for child in psutil.Process().children(recursive=True):
            try:
                if child.status() != psutil.STATUS_ZOMBIE and child.name().startswith("VLLM"):
                    found[child.pid] = child.name()
            except psutil.NoSuchProcess:
                pass
        return found

    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="vllm-em-"))
    write_tiny_model(work / "tiny", "tiny")
    harness.grading.grade_batch = lambda items: [
        Grade(right, None, "correct" if right else "incorrect")
        for right in ((len(response) + int(gold)) % 2 == 0 for response, gold, *_ in items)]
    config = EMConfig.from_dict(dict(
        model=str(work / "tiny"), task="arith", task_args={"split": "train", "size": 64}, iterations=2, queries_per_iteration=4,
        k=2, free_rollouts=1, samples_per_query=3, subsample="weight", advantage="sign", batch_size=8, micro_batch_size=8,
        max_tokens=32, max_tool_calls=1, learning_rate=1e-2, output_dir=str(work / "out"), device="cpu", sandbox_timeout=2.0,
        # float32: the engine must match the hf backend token for token, and vLLM's CPU bf16 needs AVX-512.
        rollout_backend="vllm", vllm_max_model_len=512, vllm_dtype="float32",
        # Compiling takes minutes on the CPU and tests nothing of ours: off unless VLLM_SUITE_EAGER=0.
        vllm_args={"enforce_eager": os.environ.get("VLLM_SUITE_EAGER", "1") == "1"}))
    trainer = EMTrainer(config)
    probes = [GenerationRequest(trainer.backend.encode(trainer.backend.chat_prompt(trainer.method.messages(sample.question))))
              for sample in trainer.samples[:4]]
    greedy = SamplingParams(max_new_tokens=16, stop=[])
    engines: list[dict] = []
    real_start = rollout_backend.start_vllm_engine

    def start(folder, engine_args):
        engine = real_start(folder, engine_args)
        hf = HFBackend.from_loaded(trainer.model, trainer.tokenizer, "policy")
        engines.append({"engine": engine, "folder": folder, "started_s": round(time.time() - started, 1),
                        "processes": sorted(engine_processes().values()),
                        "vllm": [g.token_ids for g in engine.generate(probes, greedy)],
                        "hf": [g.token_ids for g in hf.generate(probes, greedy)]})
        return engine

    rollout_backend.start_vllm_engine = start
    closed_before_mstep, left_at_mstep = [], []
    real_mstep = MStep.run

    def mstep(self, *args, **kwargs):
        # The engine's worker processes must be gone, not just dereferenced: that is what frees the (GPU) memory.
        alive = sorted(engine_processes().values())
        left_at_mstep.append(alive)
        closed_before_mstep.append(trainer.rollout_backend.engine is None and all(e["engine"].llm is None for e in engines) and not alive)
        return real_mstep(self, *args, **kwargs)

    MStep.run = mstep
    reports = trainer.train()
    records = [[json.loads(line) for line in (work / "out" / f"iter-{i + 1}" / "samples.jsonl").read_text().splitlines()] for i in range(2)]
    planned = config.queries_per_iteration * (2 * config.k + config.free_rollouts)
    checks = {
        "one_engine_per_iteration": len(engines) == 2,
        "engine_on_saved_folder": all(e["folder"] == str(work / "out" / "rollout-model") for e in engines),
        "engine_processes_seen_while_running": [bool(e["processes"]) for e in engines],
        "closed_before_each_mstep": closed_before_mstep == [True, True],
        "engine_matches_hf_on_that_iterations_weights": [e["vllm"] == e["hf"] for e in engines],
        "reload_changes_outputs": len(engines) == 2 and engines[0]["vllm"] != engines[1]["vllm"],
        "records_complete": [len(r) == planned and all(RECORD_FIELDS <= set(x) for x in r) for r in records],
        "trained": [report["em/training_samples"] > 0 for report in reports],
    }
    passed = all(all(v) if isinstance(v, list) else v for v in checks.values())
    summary = {"passed": passed, "total_s": round(time.time() - started, 1),
               "engine_started_s": [e["started_s"] for e in engines], "engine_processes": [e["processes"] for e in engines],
               "engine_processes_left_at_mstep": left_at_mstep,
               "time_estep_s": [r["time/estep_s"] for r in reports], "time_mstep_s": [r["time/mstep_s"] for r in reports],
               **checks, "probe_outputs": [e["vllm"] for e in engines]}
    print(json.dumps(summary, indent=1))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
