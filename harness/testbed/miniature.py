"""The miniature reproduction: SFT-only, RL from the warmed-up and from the base model, and EM variants, equal rollout budget.

    harness testbed miniature --model WARMED_UP/sft [--base WARMED_UP/init] [--seeds 0,1,2,3,4]
        [--iterations 2] [--queries 32] [--em-variants q_argmax,pi_q_free,pi_q_prefix_mean] [--workers 2] [--threads 1]
        [--out leaderboards/miniature.md]

(the command is in harness/testbed/cli.py; this module runs it, and `harness testbed arena`'s more rows,
harness/testbed/arena.py.)

Rows, per seed: "SFT+RL" (``train-rl``'s tiny preset from the warmed-up model), "Base+RL" (the same
from the un-warmed init model the warm-up writes, as the paper reports both), and one EM row per
variant (``train-em``'s tiny preset plus the variant's overrides). Each EM iteration spends
queries x (2K + free) rollouts (``--queries``, default train-em's tiny preset); RL's steps per iteration
are chosen to spend the same. The schedules match: RL samples with EM's temperature and top_p, at EM's
learning rate, and, as each M-step starts a fresh AdamW with a linear warm-up (``warmup_ratio``) then
cosine decay, RL restarts the same schedule and optimiser every iteration (a new trainer from the
previous iteration's weights).

Every row is evaluated greedily with `auto` (the model decides) on the same held-out `arith`
problems after each iteration, through eval's rollout-to-record path and the task's own grader; at the
start and at the final budget the same model is also forced into each mode (`cot-trigger`,
`code-trigger`), the oracle for selection accuracy. The runner only records per-problem outcomes;
``harness.testbed.miniature_report`` turns them into the board.

A (row, seed) job's curve is a function of the job alone: every job runs in a fresh process (also with
``--workers 1``), so nothing a previous job left in a process (accelerate's state singletons, the grading
pool, torch's settings) reaches it, and with the same torch thread count (``--threads``, not derived from
``--workers`` or the machine). Each point records a digest of the weights it evaluated, so two runs of one
seed can be compared bit for bit, and the board records the thread count and the code's git version.

An EM variant is ``name`` (short for ``name:decision_rule=name``) or ``name:key=value;key=value``
over any EMConfig field (values parsed as YAML), e.g. ``--em-variants "v1:,alpha2:alpha=2"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.testbed.miniature_report import KINDS, markdown, plot, summarise

DEFAULT_VARIANTS = "q_argmax,pi_q_free,pi_q_prefix_mean"
BUDGET_FIELDS = ("queries_per_iteration", "k", "free_rollouts", "iterations")  # the board holds the rollout budget equal


@dataclass
class Settings:
    """What `harness testbed miniature` was asked for (``plan`` reads these fields)."""

    model: str
    base: str
    seeds: list[int]
    iterations: int
    test_size: int
    workers: int
    threads: int
    queries: int | None = None  # EM's queries per iteration (the rollout budget); None: train-em's tiny preset


def parse_variants(text: str) -> dict[str, dict]:
    """``name[:key=value;...]`` items, comma-separated, to {name: overrides}; checked against EMConfig
    before any compute is spent."""
    import yaml

    from harness.em.config import preset as em_preset

    variants = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, colon, assignments = item.partition(":")
        overrides = {}
        if not colon:
            overrides["decision_rule"] = name
        for assignment in filter(None, (a.strip() for a in assignments.split(";"))):
            key, equals, value = assignment.partition("=")
            if not equals or not key.strip():
                raise ValueError(f"EM variant {name!r}: {assignment!r} is not key=value")
            overrides[key.strip()] = yaml.safe_load(value)
        if name in variants:
            raise ValueError(f"EM variant {name!r} is given twice")
        base = em_preset("tiny").to_dict()
        unknown = sorted(set(overrides) - set(base))
        if unknown:
            raise ValueError(f"EM variant {name!r}: EMConfig has no field {', '.join(unknown)}")
        if budget := sorted(set(overrides) & set(BUDGET_FIELDS)):
            raise ValueError(f"EM variant {name!r}: {', '.join(budget)} would change the rollout budget, which every row shares")
        type(em_preset("tiny")).from_dict({**base, **overrides})  # the config's own validation
        variants[name] = overrides
    if not variants:
        raise ValueError("no EM variants given")
    return variants


def held_out(test_size: int) -> tuple[list, str]:
    """The first ``test_size / 3`` problems of each kind of `arith`'s test split, and the task's grader."""
    from harness.eval.tasks import load_samples, load_task

    task = load_task("arith")
    everything = load_samples(task)[0]
    per_kind = test_size // len(KINDS)
    return [s for kind in KINDS for s in [x for x in everything if x.metadata.get("kind") == kind][:per_kind]], task.grader


def outcomes(backend, samples, grader: str, method, sandbox, max_tokens: int, max_tool_calls: int) -> dict:
    """Greedy rollouts under ``method``: per problem, correct or not, whether it ran code and how many cells
    it executed; and the section-1 efficiency metrics (``harness.eval.efficiency``) over the records. The
    wall-time metric (``seconds_per_correct``) is left out: a point is a function of the job alone, and
    two runs of one seed compare equal."""
    from harness.eval.attempts import Attempt, encode_prompts, run_attempts
    from harness.eval.efficiency import efficiency_metrics, trust_verdicts
    from harness.eval.rollout import RolloutEngine
    from harness.models import SamplingParams

    engine = RolloutEngine(backend, SamplingParams(temperature=0.0, max_new_tokens=max_tokens), tools=method.tools,
                           sandbox=sandbox, max_tool_calls=max_tool_calls, max_tokens=max_tokens)
    backend.model.eval()
    prompts = encode_prompts(backend, method, {s.id: s.question for s in samples})
    records = run_attempts(engine, [Attempt(s, 0, seed) for seed, s in enumerate(samples)], prompts, grader)
    efficiency = efficiency_metrics(records, trust_verdicts(records, grader))
    del efficiency["seconds_per_correct"]
    return {"correct": [bool(r["correct"]) for r in records], "used_code": [bool(r["used_code"]) for r in records],
            "tool_calls": [len(r["tool_calls"]) for r in records], "efficiency": efficiency}


def evaluate(backend, samples, grader: str, method, sandbox, max_tokens: int, max_tool_calls: int) -> dict:
    """Accuracy and code rate per kind of greedy rollouts under ``method``."""
    point = outcomes(backend, samples, grader, method, sandbox, max_tokens, max_tool_calls)
    result = {}
    for kind in KINDS:
        rows = [i for i, s in enumerate(samples) if s.metadata.get("kind") == kind]
        result[kind] = {"accuracy": sum(point["correct"][i] for i in rows) / max(len(rows), 1),
                        "code_rate": sum(point["used_code"][i] for i in rows) / max(len(rows), 1)}
    return result


def weights_digest(model) -> str:
    """SHA-256 (16 hex digits) over the parameters' names and bytes: equal only for bit-identical weights."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def measure(backend, samples, grader: str, sandbox, max_tokens: int, max_tool_calls: int, oracle: bool) -> dict:
    """The `auto` outcomes and the weights' digest, and with ``oracle`` the same model forced into each mode."""
    from harness.eval.methods import load_method

    point = outcomes(backend, samples, grader, load_method("auto"), sandbox, max_tokens, max_tool_calls)
    point["weights"] = weights_digest(backend.model)
    if oracle:
        point["oracle"] = {mode: outcomes(backend, samples, grader, load_method(method), sandbox, max_tokens, max_tool_calls)["correct"]
                           for mode, method in (("cot", "cot-trigger"), ("code", "code-trigger"))}
    return point


def run_job(job: dict) -> dict:
    """One row for one seed (or a start evaluation), in its own process when --workers > 1."""
    import torch

    from harness.em.config import preset as em_preset
    from harness.sandbox import SandboxLimits, get_sandbox

    torch.set_num_threads(job["threads"])
    samples, grader = held_out(job["test_size"])
    em_config = em_preset("tiny").updated(model=job["model"], seed=job["seed"], iterations=1, device="cpu",
                                          queries_per_iteration=job["queries"], output_dir=str(Path(job["work"]) / "em"),
                                          **job.get("overrides", {}))
    limits = (em_config.max_tokens, em_config.max_tool_calls)
    with get_sandbox("local", limits=SandboxLimits(timeout_s=em_config.sandbox_timeout)) as sandbox:
        if job["kind"] == "start":
            from harness.models.hf import HFBackend
            from harness.training.policy import load_policy

            model, tokenizer = load_policy(job["model"])
            backend = HFBackend.from_loaded(model, tokenizer, Path(job["model"]).name)
            return {**job, "point": measure(backend, samples, grader, sandbox, *limits, oracle=True)}
        curve = []
        for iteration, backend in enumerate((_em_iterations if job["kind"] == "em" else _rl_iterations)(job, em_config, sandbox)):
            last = iteration + 1 == job["iterations"]
            curve.append([(iteration + 1) * job["per_iteration"], measure(backend, samples, grader, sandbox, *limits, oracle=last)])
    return {**job, "curve": curve}


def _em_iterations(job: dict, config, sandbox):
    from harness.em.trainer import EMTrainer

    em = EMTrainer(config)
    for iteration in range(job["iterations"]):
        em.config = em.config.updated(iterations=iteration + 1)
        em.mstep.run(iteration, em.estep(iteration, sandbox))
        yield em.backend


def _rl_iterations(job: dict, em_config, sandbox):
    """RL with EM's sampling and schedule: a fresh train-rl run (AdamW, warm-up, cosine) per iteration,
    from the weights the previous one left; the seed moves on with the iteration so each one draws other
    prompts. The row's own RLConfig fields (``rl_overrides``, e.g. a strategy) apply on top. train-rl opens
    its own sandbox (``sandbox`` serves the evaluations)."""
    from harness.rl.config import preset as rl_preset
    from harness.rl.trainer import RLTrainer
    from harness.training.schedule import mix_seed

    model = job["model"]
    for iteration in range(job["iterations"]):
        work = Path(job["work"]) / f"rl-{iteration}"
        config = rl_preset("tiny").updated(
            model=model, seed=mix_seed(job["seed"], iteration), steps=job["rl_steps"], save_every=10_000, device="cpu",
            output_dir=str(work / "run"), temperature=em_config.temperature, top_p=em_config.top_p,
            learning_rate=em_config.learning_rate, lr_schedule="cosine",
            warmup_steps=max(1, round(em_config.warmup_ratio * job["rl_steps"])), **job.get("rl_overrides", {}))
        rl = RLTrainer(config)
        rl.train()
        model = str(work / "weights")
        rl.model.save_pretrained(model)
        rl.tokenizer.save_pretrained(model)
        yield rl.backend


def plan(args: Settings, variants: dict, work: Path, rl_rows: dict[str, dict] | None = None, queries: int | None = None) -> list[dict]:
    """Start evaluations, then every (row, seed): RL rows first (SFT+RL, Base+RL, then ``rl_rows``: more
    SFT+RL rows, name -> their RLConfig overrides), EM variants after. ``queries`` (default: train-em's
    tiny preset) is EM's queries per iteration, which sets every row's rollout budget."""
    from harness.em.config import preset as em_preset
    from harness.rl.config import preset as rl_preset

    em, rl = em_preset("tiny"), rl_preset("tiny")
    queries = queries or em.queries_per_iteration
    per_iteration = queries * (2 * em.k + em.free_rollouts)
    rl_steps = max(1, round(per_iteration / (rl.prompts_per_step * rl.group_size)))
    common = {"iterations": args.iterations, "test_size": args.test_size, "threads": args.threads, "rl_steps": rl_steps,
              "queries": queries}
    jobs = [{**common, "row": row, "kind": "start", "model": model, "seed": 0, "work": str(work / f"start-{row}"),
             "per_iteration": 0} for row, model in (("SFT only", args.model), ("Base only", args.base))]
    rl_spent = rl_steps * rl.prompts_per_step * rl.group_size
    rows = [("SFT+RL", "rl", args.model, "rl_overrides", {}, rl_spent), ("Base+RL", "rl", args.base, "rl_overrides", {}, rl_spent)]
    rows += [(name, "rl", args.model, "rl_overrides", overrides, rl_spent) for name, overrides in (rl_rows or {}).items()]
    rows += [(f"EM ({name})", "em", args.model, "overrides", overrides, per_iteration) for name, overrides in variants.items()]
    for row, kind, model, key, overrides, spent in rows:
        for seed in args.seeds:
            jobs.append({**common, "row": row, "kind": kind, "model": model, "seed": seed, key: overrides,
                         "per_iteration": spent, "work": str(work / f"{row}-{seed}".replace(" ", "_"))})
    return jobs


def run_all(jobs: list[dict], workers: int, progress=None) -> list[dict]:
    """Every job in a fresh spawned process, ``workers`` at a time: a job then sees no state another job
    left behind (a reused process carries accelerate's singletons, the grading pool, torch settings),
    and ``--workers 1`` runs each job exactly as ``--workers 2`` does. spawn, not fork: a forked child
    would inherit this process's torch thread pool and sandbox state. ``progress`` is called with (jobs
    done, jobs) at the start and after each job; the results come back in the jobs' order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        if progress:
            progress(0, len(jobs))
        for done, _ in enumerate(as_completed(futures), start=1):
            if progress:
                progress(done, len(jobs))
        return [future.result() for future in futures]


def code_version() -> str:
    """``git describe --always --dirty`` of the code that made the board, so a board that outlived its code shows it."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def run_board(settings: Settings, variants: dict, rl_rows: dict[str, dict] | None = None, progress=None) -> tuple[dict, float]:
    """Run every job of ``plan``; the board's data (the held-out kinds, the start points, each run's curve
    from its start point on) and the wall time."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        done = run_all(plan(settings, variants, Path(work), rl_rows, settings.queries), settings.workers, progress)
    data = {"kinds": [s.metadata["kind"] for s in held_out(settings.test_size)[0]],
            "starts": {job["row"]: job["point"] for job in done if job["kind"] == "start"},
            "runs": [{"row": job["row"], "seed": job["seed"],
                      "curve": [[0, next(j["point"] for j in done if j["kind"] == "start" and j["model"] == job["model"])],
                                *job["curve"]]} for job in done if job["kind"] != "start"]}
    return data, time.perf_counter() - started


def write_board(settings: Settings, variants: dict, out: Path, command: str, progress=None) -> float:
    """Run every job and write the board (``out``: markdown, with .png and .json beside it); returns the wall time."""
    data, seconds = run_board(settings, variants, progress=progress)
    version = code_version()
    header = (f"# Miniature reproduction on `arith`\n\nCommand: `{command}`\n\nSeeds {settings.seeds}, {settings.iterations} "
              f"iterations, EM variants {json.dumps(variants)}; greedy `auto` evaluation on {len(data['kinds'])} "
              f"held-out problems; percentages, mean ± 95% t-interval half-width over seeds (n in the seeds column; "
              f"the start rows are one greedy evaluation of a fixed model). Selection: share of problems where the "
              f"`auto` choice (code or not) matches the mode that the same model gets right when forced "
              f"(`cot-trigger` vs `code-trigger`); ties (both or neither right) count as matched, decisive problems "
              f"in brackets. Wall time {seconds:.0f} s with {settings.workers} worker(s) on {os.cpu_count()} cores; each "
              f"(row, seed) job in its own process with {settings.threads} torch thread(s). Code: `{version}`.")
    summary = summarise(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(summary, header))
    plot(summary, out.with_suffix(".png"))
    out.with_suffix(".json").write_text(json.dumps({"seconds": seconds, "command": command, "threads": settings.threads,
                                                     "code": version, **data}, indent=1))
    return seconds
