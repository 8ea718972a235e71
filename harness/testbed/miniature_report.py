"""The miniature board's arithmetic and its Markdown/plot, apart from the runner that produces the numbers.

The runner (``harness.testbed.miniature``) records raw per-problem outcomes; everything a reader sees is
computed here from them:

* per kind: accuracy and code rate of greedy `auto` rollouts;
* selection accuracy against an oracle: per problem, the oracle's better mode is whichever forced
  mode (`cot-trigger` or `code-trigger`, the same model) answers correctly. The method's choice is
  its greedy `auto` rollout writing code or not. A problem where both forced modes are right, or
  both wrong, is a tie and counts as matched whatever the method chose; the number of decisive
  (non-tie) problems is reported beside the share so a reader can see how much ties carry;
* over seeds: mean and a 95% Student-t interval (mean ± half-width, with n).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

KINDS = ("cot-sufficient", "code-necessary", "code-unhelpful")

# Two-sided 95% Student-t quantiles t(0.975, df). Between tabulated df the smaller df's value is
# used, so an interval is never narrower than the exact one.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


@dataclass(frozen=True)
class Interval:
    mean: float
    half_width: float  # nan with one seed: no interval can be claimed
    n: int

    def cell(self, scale: float = 100.0) -> str:
        if math.isnan(self.half_width):
            return f"{scale * self.mean:.0f}"
        return f"{scale * self.mean:.0f} ± {scale * self.half_width:.0f}"


def t_quantile(df: int) -> float:
    if df < 1:
        raise ValueError("a t interval needs at least two values")
    return T_975[max(d for d in T_975 if d <= df)]


def t_interval(values: list[float]) -> Interval:
    """Mean ± t(0.975, n-1) · s / √n over seeds."""
    if not values:
        raise ValueError("no values to summarise")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Interval(mean, math.nan, 1)
    return Interval(mean, t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)), len(values))


def selection_accuracy(used_code: list[bool], cot_correct: list[bool], code_correct: list[bool]) -> tuple[float, int]:
    """(share of problems whose code-or-not choice matches the oracle's better mode, decisive problems)."""
    if not len(used_code) == len(cot_correct) == len(code_correct) or not used_code:
        raise ValueError("selection accuracy needs one choice and two forced outcomes per problem")
    matched = decisive = 0
    for chose_code, cot_ok, code_ok in zip(used_code, cot_correct, code_correct):
        if cot_ok == code_ok:
            matched += 1
            continue
        decisive += 1
        matched += chose_code == code_ok
    return matched / len(used_code), decisive


def point_metrics(point: dict, kinds: list[str]) -> dict:
    """Flat metrics of one evaluation: acc/<kind>, code/<kind>, acc/all, and selection if the oracle ran."""
    metrics = {}
    for kind in (*KINDS, "all"):
        rows = [i for i, k in enumerate(kinds) if kind in ("all", k)]
        if rows:
            metrics[f"acc/{kind}"] = sum(point["correct"][i] for i in rows) / len(rows)
            metrics[f"code/{kind}"] = sum(point["used_code"][i] for i in rows) / len(rows)
    if "oracle" in point:
        metrics["selection"], metrics["decisive"] = selection_accuracy(point["used_code"], point["oracle"]["cot"],
                                                                       point["oracle"]["code"])
    return metrics


def summarise(data: dict) -> dict[str, dict[int, dict[str, Interval]]]:
    """row -> rollouts spent -> metric -> interval over that row's seeds. The start rows ("SFT only",
    "Base only") are single greedy evaluations of a fixed model: the same for every seed."""
    kinds = data["kinds"]
    gathered: dict[str, dict[int, list[dict]]] = {}
    for name, point in data["starts"].items():
        gathered[name] = {0: [point_metrics(point, kinds)]}
    for run in data["runs"]:
        curve = gathered.setdefault(run["row"], {})
        for spent, point in run["curve"]:
            curve.setdefault(spent, []).append(point_metrics(point, kinds))
    return {row: {spent: {metric: t_interval([m[metric] for m in seeds]) for metric in seeds[0]}
                  for spent, seeds in sorted(curve.items())}
            for row, curve in gathered.items()}


def markdown(summary: dict, header: str) -> str:
    final_columns = ["acc/all", *(f"acc/{k}" for k in KINDS), *(f"code/{k}" for k in KINDS), "selection"]
    lines = ["| method | seeds | rollouts | acc all | " + " | ".join(f"acc {k}" for k in KINDS) + " | "
             + " | ".join(f"code {k}" for k in KINDS) + " | selection vs oracle (decisive) |",
             "|" + "---|" * (3 + len(final_columns))]
    for row, curve in summary.items():
        spent = max(curve)
        metrics = curve[spent]
        cells = [metrics[c].cell() if c in metrics else "–" for c in final_columns]
        if "decisive" in metrics:
            cells[-1] += f" ({metrics['decisive'].mean:.0f})"
        lines.append(f"| {row} | {metrics['acc/all'].n} | {spent} | " + " | ".join(cells) + " |")
    curve_lines = ["| method | rollouts | " + " | ".join(f"acc {k}" for k in KINDS) + " | "
                   + " | ".join(f"code {k}" for k in KINDS) + " |", "|" + "---|" * (2 + 2 * len(KINDS))]
    for row, curve in summary.items():
        for spent, metrics in curve.items():
            curve_lines.append(f"| {row} | {spent} | " + " | ".join(metrics[f"{m}/{k}"].cell() for m in ("acc", "code")
                                                                     for k in KINDS) + " |")
    return (header + "\n\n## At the final budget\n\n" + "\n".join(lines) + "\n\n## Against rollouts spent\n\n"
            + "\n".join(curve_lines) + "\n")


def plot(summary: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(KINDS), figsize=(4 * len(KINDS), 6), sharex=True)
    for column, kind in enumerate(KINDS):
        for row, (metric, title) in enumerate((("acc", "accuracy"), ("code", "code rate"))):
            axis = axes[row][column]
            for name, curve in summary.items():
                if len(curve) < 2:
                    continue
                spent = list(curve)
                intervals = [curve[s][f"{metric}/{kind}"] for s in spent]
                errors = [0.0 if math.isnan(i.half_width) else i.half_width for i in intervals]
                axis.errorbar(spent, [i.mean for i in intervals], yerr=errors, marker="o", capsize=3, label=name)
            axis.set_title(f"{kind}: {title}")
            axis.set_ylim(-0.05, 1.05)
            axis.set_xlabel("rollouts spent")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
