"""The arena board's arithmetic, Markdown and Pareto plot, from the points the miniature's runner records.

Every row is read at its final budget (the start rows at their one evaluation). Per (row, seed) point:

* accuracy per kind and over all kinds, code rate, and selection accuracy against the forced-mode oracle
  (decisive problems beside it), as ``miniature_report.point_metrics`` defines them;
* tool calls per problem: executed cells over held-out problems;
* the section-1 efficiency metrics of ``harness.eval.efficiency`` (their definitions are there):
  tool error rate per cell, tool productivity, model tokens per correct answer, tool ignored rate and
  tool followed-wrongly rate.

Over seeds each metric is a mean ± 95% t-interval (``miniature_report.t_interval``). A metric a seed
leaves undefined (None: no cell executed, no correct answer, ...) is left out of that mean, and the
cell says how many seeds it holds. The Pareto front is over (tool calls per problem, accuracy): a row is
on it when no other row is at least as accurate with at most as many calls, and strictly better in one.
The "reading" sentences are generated from these numbers, never written by hand.
"""

from __future__ import annotations

import math

from harness.testbed.miniature_report import KINDS, Interval, point_metrics, t_interval

EFFICIENCY = ("tool_error_rate_cell", "tool_productivity", "model_tokens_per_correct", "tool_ignored_rate",
              "tool_followed_wrongly_rate")
# (metric, column header, scale, decimals), in the board's order.
COLUMNS = (("acc/all", "acc all %", 100, 0), *((f"acc/{k}", f"acc {k} %", 100, 0) for k in KINDS),
           ("code/all", "code rate %", 100, 0), ("calls", "tool calls / problem", 1, 2),
           ("tool_error_rate_cell", "tool err % cells", 100, 0), ("tool_productivity", "productivity", 1, 2),
           ("model_tokens_per_correct", "model tok / correct", 1, 0), ("tool_ignored_rate", "ignored %", 100, 0),
           ("tool_followed_wrongly_rate", "followed wrongly %", 100, 0), ("selection", "selection vs oracle %", 100, 0))


def arena_point(point: dict, kinds: list[str]) -> dict:
    """One evaluation's metrics; an undefined efficiency ratio stays None."""
    metrics = point_metrics(point, kinds)
    metrics["calls"] = sum(point["tool_calls"]) / len(point["tool_calls"])
    metrics.update({name: point["efficiency"][name] for name in EFFICIENCY})
    return metrics


def final_points(data: dict) -> dict[str, tuple[int, list[dict]]]:
    """row -> (rollouts spent, one metrics dict per seed) at the row's final budget."""
    kinds = data["kinds"]
    rows = {name: (0, [arena_point(point, kinds)]) for name, point in data["starts"].items()}
    for run in data["runs"]:
        spent, point = run["curve"][-1]
        rows.setdefault(run["row"], (spent, []))[1].append(arena_point(point, kinds))
    return rows


def over_seeds(points: list[dict]) -> dict[str, Interval | None]:
    """metric -> interval over the seeds where it is defined (None where no seed defines it)."""
    names = dict.fromkeys(name for point in points for name in point)
    return {name: t_interval(values) if (values := [p[name] for p in points if p.get(name) is not None]) else None
            for name in names}


def summarise(data: dict) -> dict[str, dict]:
    """row -> {"rollouts", "seeds", "metrics": metric -> Interval | None}."""
    return {row: {"rollouts": spent, "seeds": len(points), "metrics": over_seeds(points)}
            for row, (spent, points) in final_points(data).items()}


def pareto_front(summary: dict) -> list[str]:
    """Rows that no other row dominates in (fewer tool calls per problem, higher accuracy), by mean."""
    where = {row: (entry["metrics"]["calls"].mean, entry["metrics"]["acc/all"].mean) for row, entry in summary.items()}

    def dominated(row: str) -> bool:
        calls, accuracy = where[row]
        return any(c <= calls and a >= accuracy and (c, a) != (calls, accuracy) for c, a in where.values())

    return sorted((row for row in where if not dominated(row)), key=lambda row: where[row])


def cell(interval: Interval | None, seeds: int, scale: float, decimals: int) -> str:
    if interval is None:
        return "—"
    text = f"{scale * interval.mean:.{decimals}f}"
    if not math.isnan(interval.half_width):
        text += f" ± {scale * interval.half_width:.{decimals}f}"
    return text if interval.n == seeds else f"{text} (n={interval.n})"


def overlapping(summary: dict, best: str, metric: str) -> list[str]:
    """Rows whose 95% interval of ``metric`` overlaps ``best``'s (with one seed no interval separates anything)."""
    def bounds(interval: Interval) -> tuple[float, float]:
        half = math.inf if math.isnan(interval.half_width) else interval.half_width
        return interval.mean - half, interval.mean + half

    low, high = bounds(summary[best]["metrics"][metric])
    return [row for row, entry in summary.items() if row != best and entry["metrics"].get(metric) is not None
            and bounds(entry["metrics"][metric])[0] <= high and bounds(entry["metrics"][metric])[1] >= low]


def reading(summary: dict) -> str:
    """Who leads on accuracy, tool calls and selection, and the Pareto front, from the numbers alone."""
    def leader(metric: str, lowest: bool = False) -> str:
        rows = [row for row, entry in summary.items() if entry["metrics"].get(metric) is not None]
        return (min if lowest else max)(rows, key=lambda row: summary[row]["metrics"][metric].mean)

    sentences = []
    for metric, what, lowest in (("acc/all", "best accuracy", False), ("calls", "fewest tool calls per problem", True),
                                 ("selection", "best selection accuracy", False)):
        row = leader(metric, lowest)
        ties = overlapping(summary, row, metric)
        if math.isnan(summary[row]["metrics"][metric].half_width):
            separation = " (one seed: no interval separates it from the others)"
        else:
            separation = f" (95% intervals overlap {', '.join(ties)})" if ties else " (separated from every other row)"
        sentences.append(f"{what}: {row}{separation}")
    return "; ".join(sentences) + f". Pareto front (accuracy against tool calls per problem): {', '.join(pareto_front(summary))}."


def markdown(summary: dict, header: str) -> str:
    lines = ["| method | seeds | rollouts | " + " | ".join(title for _, title, _, _ in COLUMNS) + " |",
             "|" + "---|" * (3 + len(COLUMNS))]
    for row, entry in summary.items():
        metrics, seeds = entry["metrics"], entry["seeds"]
        cells = [cell(metrics.get(name), seeds, scale, decimals) for name, _, scale, decimals in COLUMNS]
        if metrics.get("decisive") is not None:
            cells[-1] += f" ({metrics['decisive'].mean:.0f})"
        lines.append(f"| {row} | {seeds} | {entry['rollouts']} | " + " | ".join(cells) + " |")
    return f"{header}\n\n**Reading** (generated from the table): {reading(summary)}\n\n" + "\n".join(lines) + "\n"


def plot(summary: dict, path) -> None:
    """Accuracy against tool calls per problem, one point per row with 95% error bars on both axes, the
    Pareto front joined and ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def half(interval: Interval) -> float:
        return 0.0 if math.isnan(interval.half_width) else interval.half_width

    figure, axis = plt.subplots(figsize=(7, 5))
    for row, entry in summary.items():
        calls, accuracy = entry["metrics"]["calls"], entry["metrics"]["acc/all"]
        axis.errorbar(calls.mean, 100 * accuracy.mean, xerr=half(calls), yerr=100 * half(accuracy), marker="o", capsize=3,
                      label=row)
    front = pareto_front(summary)
    xs = [summary[row]["metrics"]["calls"].mean for row in front]
    ys = [100 * summary[row]["metrics"]["acc/all"].mean for row in front]
    axis.plot(xs, ys, "k--", linewidth=1, drawstyle="steps-post", label="Pareto front")
    axis.scatter(xs, ys, s=160, facecolors="none", edgecolors="k")
    axis.set_xlim(left=-0.05)  # calls are never negative; the default margins around one column of points suggest otherwise
    axis.set_ylim(-5, 105)
    axis.set_xlabel("tool calls per problem")
    axis.set_ylabel("accuracy, all kinds (%)")
    axis.set_title("arena: accuracy against tool calls (mean ± 95% t-interval over seeds)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
