"""The miniature reproduction: SFT-only vs vanilla RL vs EM from one warmed-up tiny model, equal rollout budget.

    python -m harness.em.miniature --model WARMED_UP_DIR [--seeds 0,1,2] [--iterations 2] [--out leaderboards/miniature.md]

For each seed, RL (``train-rl``'s tiny preset) and EM (``train-em``'s tiny preset) start from the same
model and spend the same number of rollouts: EM's ``iterations`` x queries x (2K + free) and RL's
steps x prompts x group, RL's steps chosen to match. Both are evaluated greedily with the `auto`
method (the model decides) on the same held-out `arith` problems at every budget point (after each
EM iteration, and after the matching number of RL steps); budget 0 is the warmed-up model itself,
the "SFT-only" row. Accuracy and code rate per task kind go into a Markdown table (mean ± std over
seeds) and a plot against rollouts spent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

KINDS = ("cot-sufficient", "code-necessary", "code-unhelpful")


def evaluate(backend, samples, method, sandbox, max_tokens: int, max_tool_calls: int) -> dict:
    """Greedy `auto` rollouts on held-out problems: accuracy and code rate per kind."""
    from harness.eval.rollout import RolloutEngine
    from harness.grading import grade_batch
    from harness.models import SamplingParams

    engine = RolloutEngine(backend, SamplingParams(temperature=0.0, max_new_tokens=max_tokens), tools=method.tools,
                           sandbox=sandbox, max_tool_calls=max_tool_calls, max_tokens=max_tokens)
    backend.model.eval()
    prompts = [backend.encode(backend.chat_prompt(method.messages(s.question))) for s in samples]
    trajectories = engine.run(prompts, list(range(len(samples))))
    grades = grade_batch([(t.response_text, s.answer, "math500") for s, t in zip(samples, trajectories)])
    result = {}
    for kind in KINDS:
        rows = [(g, t) for s, g, t in zip(samples, grades, trajectories) if s.metadata.get("kind") == kind]
        result[kind] = {"accuracy": sum(bool(g.correct) for g, _ in rows) / max(len(rows), 1),
                        "code_rate": sum(t.used_code for _, t in rows) / max(len(rows), 1)}
    return result


def run_seed(model: str, seed: int, iterations: int, test_samples, work: Path) -> dict:
    from harness.em.config import preset as em_preset
    from harness.em.trainer import EMTrainer
    from harness.eval.methods import load_method
    from harness.rl.config import preset as rl_preset
    from harness.rl.trainer import RLTrainer
    from harness.sandbox import SandboxLimits, get_sandbox

    em_config = em_preset("tiny").updated(model=model, seed=seed, iterations=1, output_dir=str(work / f"em-{seed}"), device="cpu")
    rl_config = rl_preset("tiny").updated(model=model, seed=seed, output_dir=str(work / f"rl-{seed}"), device="cpu")
    per_iteration = em_config.queries_per_iteration * (2 * em_config.k + em_config.free_rollouts)
    rl_steps = max(1, round(per_iteration / (rl_config.prompts_per_step * rl_config.group_size)))
    method = load_method("auto")
    curves = {"em": [], "rl": []}
    with get_sandbox("local", limits=SandboxLimits(timeout_s=2.0)) as sandbox:
        em = EMTrainer(em_config)
        start = evaluate(em.backend, test_samples, method, sandbox, em_config.max_tokens, em_config.max_tool_calls)
        curves["em"].append((0, start))
        curves["rl"].append((0, start))
        for iteration in range(iterations):
            em.config = em.config.updated(iterations=iteration + 1)
            estep = em.estep(iteration, sandbox)
            em.mstep(iteration, estep)
            curves["em"].append(((iteration + 1) * per_iteration, evaluate(em.backend, test_samples, method, sandbox,
                                                                          em_config.max_tokens, em_config.max_tool_calls)))
        del em
        rl = RLTrainer(rl_config.updated(steps=rl_steps * iterations, save_every=10_000))
        rl.sandbox = sandbox
        for step in range(rl_steps * iterations):
            rl.train_step(step)
            if (step + 1) % rl_steps == 0:
                spent = (step + 1) * rl_config.prompts_per_step * rl_config.group_size
                curves["rl"].append((spent, evaluate(rl.backend, test_samples, method, sandbox, rl_config.max_tokens,
                                                     rl_config.max_tool_calls)))
    return curves


def summarise(runs: list[dict]) -> dict:
    """Mean and std over seeds at each budget point, per method, kind and metric."""
    summary = {}
    for method in ("rl", "em"):
        points = {}
        for run in runs:
            for spent, result in run[method]:
                points.setdefault(spent, []).append(result)
        summary[method] = {
            spent: {kind: {metric: (statistics.mean(r[kind][metric] for r in results),
                                    statistics.stdev(r[kind][metric] for r in results) if len(results) > 1 else 0.0)
                           for metric in ("accuracy", "code_rate")} for kind in KINDS}
            for spent, results in sorted(points.items())
        }
    return summary


def markdown(summary: dict, seeds: list[int], command: str, seconds: float) -> str:
    def cell(value: tuple[float, float]) -> str:
        return f"{100 * value[0]:.0f} ± {100 * value[1]:.0f}"

    header = "| method | rollouts | " + " | ".join(f"acc {k}" for k in KINDS) + " | " + " | ".join(f"code {k}" for k in KINDS) + " |"
    lines = [header, "|" + "---|" * (2 + 2 * len(KINDS))]
    start_spent, start = next(iter(summary["em"].items()))
    lines.append("| SFT only (start) | 0 | " + " | ".join(cell(start[k]["accuracy"]) for k in KINDS) + " | "
                 + " | ".join(cell(start[k]["code_rate"]) for k in KINDS) + " |")
    for method, name in (("rl", "vanilla RL"), ("em", "EM")):
        for spent, result in summary[method].items():
            if spent:
                lines.append(f"| {name} | {spent} | " + " | ".join(cell(result[k]["accuracy"]) for k in KINDS) + " | "
                             + " | ".join(cell(result[k]["code_rate"]) for k in KINDS) + " |")
    return (f"# Miniature reproduction on `arith`\n\nCommand: `{command}`\n\nSeeds {seeds}; greedy `auto` evaluation on held-out "
            f"problems; percentages, mean ± std over seeds. Wall time {seconds:.0f} s on this machine.\n\n" + "\n".join(lines) + "\n")


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(KINDS), figsize=(4 * len(KINDS), 6), sharex=True)
    for column, kind in enumerate(KINDS):
        for row, metric in enumerate(("accuracy", "code_rate")):
            axis = axes[row][column]
            for method, label in (("rl", "vanilla RL"), ("em", "EM")):
                spent = list(summary[method])
                means = [summary[method][s][kind][metric][0] for s in spent]
                stds = [summary[method][s][kind][metric][1] for s in spent]
                axis.errorbar(spent, means, yerr=stds, marker="o", capsize=3, label=label)
            axis.set_title(f"{kind}: {metric.replace('_', ' ')}")
            axis.set_ylim(-0.05, 1.05)
            axis.set_xlabel("rollouts spent")
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--test-size", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("leaderboards/miniature.md"))
    args = parser.parse_args()
    from harness.eval.tasks import load_samples, load_task

    started = time.perf_counter()
    everything = load_samples(load_task("arith"))[0]
    per_kind = args.test_size // len(KINDS)
    test_samples = [s for kind in KINDS for s in [x for x in everything if x.metadata.get("kind") == kind][:per_kind]]
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as work:
        runs = [run_seed(args.model, seed, args.iterations, test_samples, Path(work)) for seed in seeds]
    summary = summarise(runs)
    seconds = time.perf_counter() - started
    command = f"python -m harness.em.miniature --model {args.model} --seeds {args.seeds} --iterations {args.iterations} --test-size {args.test_size}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(summary, seeds, command, seconds))
    plot(summary, args.out.with_suffix(".png"))
    args.out.with_suffix(".json").write_text(json.dumps({"seconds": seconds, "runs": runs}, indent=1))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
