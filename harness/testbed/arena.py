"""The arena: every strategy trained from the same warmed-up testbed model at the same rollout budget,
schedule and seeds, on one board with the efficiency and trust metrics.

    harness testbed arena --model WARMED_UP/sft [--strategies otc,adatir,roc] [--seeds 0,1,2,3,4] [--iterations 2]
        [--queries 32] [--em-variants ...] [--workers 2] [--threads 1] [--out leaderboards/arena.md]

(the command is in harness/testbed/cli.py.) It is the miniature's runner (``harness.testbed.miniature``:
the same jobs, each in a fresh process, the same held-out problems and oracle) with one more SFT+RL row per
strategy, ``RL+OTC``, ``RL+AdaTIR``, ``RL+RoC``: train-rl's tiny preset with ``strategy`` set, nothing else
changed. The board (``harness.testbed.arena_report``) reads every row at its final budget.

No strategy is tuned here: their constants are the papers' defaults (harness/rl/strategies/), and nothing
about the held-out problems reaches training.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.rl.strategies import STRATEGIES
from harness.testbed import arena_report
from harness.testbed.miniature import Settings, code_version, run_board

ROW_NAMES = {"otc": "RL+OTC", "adatir": "RL+AdaTIR", "roc": "RL+RoC"}
DEFAULT_STRATEGIES = ",".join(ROW_NAMES)


def parse_strategies(text: str) -> dict[str, dict]:
    """``otc,adatir,roc`` (any subset, in any order) to {row name: RLConfig overrides}."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    shaping = [name for name in STRATEGIES if name != "none"]
    for name in names:
        if name not in shaping:
            raise ValueError(f"--strategies: unknown strategy {name!r}; choose from {', '.join(shaping)} "
                             f"(plain GRPO is the SFT+RL row)")
    if len(set(names)) != len(names):
        raise ValueError(f"--strategies: {text!r} names a strategy twice")
    return {ROW_NAMES[name]: {"strategy": name} for name in names}


def rl_conditions() -> str:
    """What every RL row shares that the strategies need, read from train-rl's tiny preset."""
    from harness.rl.config import preset as rl_preset

    rl = rl_preset("tiny")
    return (f"All RL rows run train-rl's tiny preset: group_size {rl.group_size} (even, as RoC keeps half of each "
            f"group), format_reward {rl.format_reward:g} and tool_reward {rl.tool_reward:g} (the strategies shape the "
            f"outcome reward and refuse bonuses), at most {rl.max_tool_calls} tool call(s) per rollout")


def write_board(settings: Settings, variants: dict, strategies: dict[str, dict], out: Path, command: str, progress=None) -> float:
    """Run every job and write the arena (``out``: markdown, with the Pareto .png and the raw .json beside it);
    returns the wall time."""
    from harness.em.config import preset as em_preset

    data, seconds = run_board(settings, variants, strategies, progress)
    version = code_version()
    em = em_preset("tiny")
    queries = settings.queries or em.queries_per_iteration
    header = (f"# Arena on `arith`: every strategy from the same warmed-up model\n\nCommand: `{command}`\n\n"
              f"Wall time {seconds:.0f} s with {settings.workers} worker(s) on {os.cpu_count()} cores; each (row, seed) job "
              f"in its own process with {settings.threads} torch thread(s). Code: `{version}`.\n\n"
              f"Budget: seeds {settings.seeds}, {settings.iterations} iteration(s) of {queries} EM queries x "
              f"(2 x {em.k} + {em.free_rollouts}) rollouts; RL rows spend the same in whole steps (rollouts column) with "
              f"EM's sampling and learning-rate schedule. {rl_conditions()}. EM variants {json.dumps(variants)}. "
              f"No strategy was tuned on the evaluation problems: the strategies' constants are the papers' defaults.\n\n"
              f"Evaluation: greedy `auto` on {len(data['kinds'])} held-out problems, each row at its final budget (the start "
              f"rows: one evaluation of a fixed model). Cells: mean ± 95% t-interval half-width over seeds; (n=…) where a "
              f"metric is undefined for some seeds; — where it is undefined for all. Metric definitions: "
              f"docs/testbed.md#the-arena. Selection: agreement of the `auto` choice with the forced mode "
              f"(`cot-trigger` vs `code-trigger`) the same model gets right; ties count as matched, decisive problems in "
              f"brackets.")
    summary = arena_report.summarise(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(arena_report.markdown(summary, header))
    arena_report.plot(summary, out.with_suffix(".png"))
    out.with_suffix(".json").write_text(json.dumps({"seconds": seconds, "command": command, "threads": settings.threads,
                                                     "workers": settings.workers, "cores": os.cpu_count(), "code": version,
                                                     "pareto_front": arena_report.pareto_front(summary), **data}, indent=1))
    return seconds
