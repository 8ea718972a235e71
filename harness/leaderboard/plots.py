"""Leaderboard plots as PNG bytes: accuracy vs code rate per task, accuracy by difficulty level, and
accuracy over EM iterations.

Only measured runs are plotted (reported rows lack code rates and stderr for most cells).
matplotlib is imported inside the functions so that `harness --help` does not pay for it.
"""

from __future__ import annotations

import io

from harness.leaderboard.board import Board

METHOD_COLORS = {"cot": "#1f77b4", "tir": "#d62728", "auto": "#2ca02c", "tora": "#9467bd",
                 "code-trigger": "#ff7f0e", "cot-trigger": "#17becf"}
MODEL_MARKERS = "osD^vP*X"


def _figure(columns: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(1, columns, figsize=(4.6 * columns, 4.0), squeeze=False, dpi=110)


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _color(method: str) -> str:
    return METHOD_COLORS.get(method, "#7f7f7f")


def _size(index: int) -> float:
    """Marker size of the index-th series drawn: each smaller than the last, so points that coincide
    (common when several methods score 0 %) stay visible as nested markers instead of hiding each other."""
    return max(4.0, 12.0 - 3.0 * index)


def _ylim(axis, records: list[dict]) -> None:
    top = _top(records)
    axis.set_ylim(-0.03 * top, top)  # a little below 0, so markers at 0 % are not cut in half


def _top(records: list[dict]) -> float:
    """A y-axis top that shows near-zero accuracies as such instead of zooming into 0-0.05 %."""
    highest = max((r["accuracy"] or 0.0) + (r["stderr"] or 0.0) for r in records)
    return min(100.0, max(10.0, 1.15 * highest))


def accuracy_vs_code_rate(board: Board) -> bytes | None:
    """One panel per task: each measured model × method at (code rate, accuracy ± stderr)."""
    records = [r for r in board.main if r["kind"] == "measured" and r["accuracy"] is not None]
    if not records:
        return None
    tasks = [task for task in board.tasks if any(r["task"] == task for r in records)]
    models = sorted({r["model"] for r in records})
    plt, figure, axes = _figure(len(tasks))
    for axis, task in zip(axes[0], tasks):
        for index, record in enumerate(r for r in records if r["task"] == task):
            marker = MODEL_MARKERS[models.index(record["model"]) % len(MODEL_MARKERS)]
            method = record["method"] + (f" #{record['variant'] + 1}" if record["variant"] else "")
            label = method if len(models) == 1 else f"{record['model']} / {method}"
            axis.errorbar(record["code_rate"] or 0.0, record["accuracy"], yerr=record["stderr"] or 0.0, fmt=marker,
                          color=_color(record["method"]), capsize=3, markersize=_size(index), label=label)
        axis.set_title(f"{task} (n={max(r['n'] for r in records if r['task'] == task)})")
        axis.set_xlabel("code rate (% of responses with code)")
        axis.set_ylabel("accuracy %")
        axis.set_xlim(-5, 105)
        _ylim(axis, [r for r in records if r["task"] == task])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    figure.suptitle("Accuracy vs code rate (measured runs)")
    return _png(plt, figure)


def accuracy_by_level(board: Board, task: str) -> bytes | None:
    """Accuracy per difficulty level, one line per model × method."""
    records = [r for r in board.levels if r["task"] == task]
    if not records:
        return None
    models = sorted({r["model"] for r in records})
    plt, figure, axes = _figure(1)
    axis = axes[0][0]
    series: dict[tuple, list[dict]] = {}
    for record in records:
        method = record["method"] + (f" #{record['variant'] + 1}" if record["variant"] else "")
        series.setdefault((record["model"], method), []).append(record)
    for index, ((model, method), points) in enumerate(sorted(series.items())):
        # MATH levels are "1".."5": numbers on the axis keep every series in the same order.
        levels = [int(r["level"]) if r["level"].isdigit() else r["level"] for r in points]
        marker = MODEL_MARKERS[models.index(model) % len(MODEL_MARKERS)]
        label = method if len(models) == 1 else f"{model} / {method}"
        axis.errorbar(levels, [r["accuracy"] for r in points], yerr=[r["stderr"] or 0 for r in points],
                      marker=marker, markersize=_size(index), color=_color(method.split(" #")[0]), capsize=3, label=label)
    axis.set_xticks(sorted({int(r["level"]) for r in records if r["level"].isdigit()}))
    axis.set_title(f"{task}: accuracy by level")
    axis.set_xlabel("level")
    axis.set_ylabel("accuracy %")
    _ylim(axis, records)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _png(plt, figure)


def accuracy_over_iterations(board: Board) -> bytes | None:
    """One panel per task: accuracy ± stderr after each EM iteration, one line per EM run × method."""
    if not board.iterations:
        return None
    tasks = [task for task in board.tasks if any(r["task"] == task for r in board.iterations)]
    plt, figure, axes = _figure(len(tasks))
    for axis, task in zip(axes[0], tasks):
        records = [r for r in board.iterations if r["task"] == task]
        series: dict[tuple, list[dict]] = {}
        for record in records:
            series.setdefault((record["run"], record["method"], record["variant"]), []).append(record)
        for index, ((run, method, variant), points) in enumerate(sorted(series.items())):
            label = f"{run} / {method}" + (f" #{variant + 1}" if variant else "")
            axis.errorbar([r["iteration"] for r in points], [r["accuracy"] or 0.0 for r in points],
                          yerr=[r["stderr"] or 0.0 for r in points], marker=MODEL_MARKERS[index % len(MODEL_MARKERS)],
                          markersize=_size(index), color=_color(method), capsize=3, label=label)
        axis.set_xticks(sorted({r["iteration"] for r in records}))
        axis.set_title(task)
        axis.set_xlabel("EM iteration")
        axis.set_ylabel("accuracy %")
        _ylim(axis, records)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Accuracy over EM iterations")
    return _png(plt, figure)


def all_plots(board: Board) -> dict[str, tuple[str, bytes]]:
    """File-name suffix -> (caption, PNG bytes), for every plot this board has data for."""
    plots = {}
    png = accuracy_vs_code_rate(board)
    if png:
        plots["accuracy-vs-code"] = ("Accuracy vs code rate per task, one point per method", png)
    for task in sorted({r["task"] for r in board.levels}):
        png = accuracy_by_level(board, task)
        if png:
            plots[f"{task}-levels"] = (f"{task} accuracy by level per method", png)
    png = accuracy_over_iterations(board)
    if png:
        plots["iterations"] = ("Accuracy after each EM iteration, one line per EM run and method", png)
    return plots
