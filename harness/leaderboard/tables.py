"""Turn a Board's records into display tables: cells as text, flags as numbered footnotes.

Markdown and HTML share these tables; CSV writes the records themselves (numbers, not text).
A flagged cell carries "⚠N", and note N says why the runs behind it do not fit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.leaderboard.board import ADAPTIVE_MODE, FIXED_MODES, Board

DASH = "—"


@dataclass
class Table:
    key: str
    title: str
    description: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    row_kinds: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Header groups for HTML, (label, columns spanned); a grouped column's name starts with its label.
    groups: list[tuple[str, int]] = field(default_factory=list)

    def add(self, cells: list[str], kind: str = "measured") -> None:
        self.rows.append(cells)
        self.row_kinds.append(kind)

    def mark(self, flags: list[str]) -> str:
        """The footnote marker for these flags (numbering each distinct text once per table)."""
        numbers = []
        for flag in flags:
            if flag not in self.notes:
                self.notes.append(flag)
            numbers.append(str(self.notes.index(flag) + 1))
        return f" ⚠{','.join(numbers)}" if numbers else ""


def number(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def accuracy_cell(record: dict) -> str:
    if record["accuracy"] is None:
        return DASH
    if record["kind"] == "reported":
        return f"{record['accuracy']:g}"
    return f"{record['accuracy']:.1f} ± {number(record['stderr'])} (n={record['n']})"


def main_table(board: Board) -> Table:
    columns = ["model", "method", "kind", "protocol"]
    for task in board.tasks:
        columns += [f"{task} acc % ± se (n)", f"{task} code %", f"{task} calls", f"{task} tokens"]
    groups = [("", 4), *((task, 4) for task in board.tasks)]
    table = Table("main", "Accuracy and code use", "Rows are model × method. Measured rows come from our runs "
                  "(stderr over problems; calls and tokens per problem); reported rows are published numbers under their own protocol, "
                  "never averaged or merged with ours.", columns, groups=groups)
    sources: list[str] = []
    rows: dict[tuple, dict[str, dict]] = {}
    for record in board.main:  # measured records come sorted, reported ones in their sources' order
        key = (record["kind"], record["model"], record["method"], record["variant"], record["protocol"])
        rows.setdefault(key, {})[record["task"]] = record
    for (_, model, method, variant, protocol), by_task in rows.items():
        kind = next(iter(by_task.values()))["kind"]
        label = method + (f" #{variant + 1}" if variant else "")
        if kind == "reported":
            source = next(iter(by_task.values()))["source"]
            sources.append(source) if source not in sources else None
            kind_cell = f"reported [R{sources.index(source) + 1}]"
        else:
            kind_cell = "measured"
        cells = [model, label, kind_cell, protocol]
        for task in board.tasks:
            record = by_task.get(task)
            if record is None:
                cells += [DASH] * 4
                continue
            cells += [accuracy_cell(record) + table.mark(record["flags"]), number(record["code_rate"]),
                      number(record["calls_per_problem"], 2), number(record["tokens_per_problem"], 0)]
        table.add(cells, kind)
    table.description += "".join(f" [R{i}] {source}." for i, source in enumerate(sources, start=1))
    return table


def adaptive_table(board: Board) -> Table:
    table = Table("adaptive", "Adaptive vs fixed tool integration",
                  "Per model and task: chain-of-thought (no code), fixed TIR (always code), and autonomous (the model "
                  "decides). Δ is autonomous minus the better fixed mode (ties go to CoT), in points, with the paired "
                  "standard error over the problems both runs scored.",
                  ["model", "task", "n", "CoT %", "fixed TIR %", "autonomous %", "best fixed", "Δ auto − best fixed",
                   "auto code %"])
    for record in board.adaptive:
        delta = DASH
        if record["auto_minus_best_fixed"] is not None:
            delta = f"{record['auto_minus_best_fixed']:+.1f}"
            if record["delta_stderr"] is not None:
                delta += f" ± {record['delta_stderr']:.1f}"
        table.add([record["model"], record["task"], str(record["n"]),
                   *(number(record[mode]) for mode in (*FIXED_MODES, ADAPTIVE_MODE)),
                   record["best_fixed"] or DASH, delta + table.mark(record["flags"]), number(record["auto_code_rate"])])
    return table


def metacognition_table(board: Board) -> Table:
    table = Table("metacognition", "Metacognition: does the model know when code helps?",
                  "Each problem is grouped by which fixed mode solves it. Selection accuracy: how often the autonomous "
                  "run chose the mode that solves it (CoT when both do), over problems some mode solves (judged). "
                  "Oracle accuracy: a perfect chooser between CoT and fixed TIR.",
                  ["model", "task", "problems", "CoT only", "code only", "both", "neither", "selection acc % (judged)",
                   "oracle acc %", "auto code %"])
    for record in board.metacognition:
        counts = [DASH if record[key] is None else str(record[key]) for key in ("problems", "cot_only", "code_only", "both", "neither")]
        selection = number(record["selection_accuracy"])
        if record["judged"] is not None:
            selection += f" ({record['judged']})"
        table.add([record["model"] + table.mark(record["flags"]), record["task"], *counts, selection,
                   number(record["oracle_accuracy"]), number(record["auto_code_rate"])])
    return table


def level_tables(board: Board) -> list[Table]:
    tables = []
    for task in sorted({record["task"] for record in board.levels}):
        records = [r for r in board.levels if r["task"] == task]
        levels = sorted({r["level"] for r in records})
        table = Table(f"levels-{task}", f"{task} accuracy by level", "Accuracy % (problems) per difficulty level.",
                      ["model", "method", *(f"level {level}" for level in levels)])
        rows: dict[tuple, dict[str, dict]] = {}
        for record in records:
            rows.setdefault((record["model"], record["method"], record["variant"]), {})[record["level"]] = record
        for (model, method, variant), by_level in rows.items():
            table.add([model, method + (f" #{variant + 1}" if variant else ""),
                       *(f"{by_level[lv]['accuracy']:.1f} ({by_level[lv]['n']})" if lv in by_level else DASH for lv in levels)])
        tables.append(table)
    return tables


def efficiency_table(board: Board) -> Table:
    from harness.eval.efficiency import CELL_HEADERS, display_cells

    table = Table("efficiency", "Efficiency and tool trust",
                  "Per run, and per difficulty bucket (MATH500 level, testbed kind), from the stored samples "
                  "(docs/evaluating.md defines each). Tool errors: failed cells % of cells, and responses with a "
                  "failed cell % of responses with a cell. Productivity: correct answers per executed cell. Tokens "
                  "and seconds per correct answer: the run's whole spend over its correct answers. Ignored: a cell "
                  "printed the gold, the final answer differs (% of responses where a cell printed the gold). "
                  "Followed wrongly: the final answer is a wrong value a cell printed (% of responses where a cell "
                  f"printed a wrong value). {DASH}: undefined (nothing to divide by).",
                  ["model", "method", "task", "bucket", *CELL_HEADERS])
    for record in board.efficiency:
        table.add([record["model"] + table.mark(record["flags"]),
                   record["method"] + (f" #{record['variant'] + 1}" if record["variant"] else ""),
                   record["task"], record["bucket"], *display_cells(record)])
    return table


def iterations_table(board: Board) -> Table:
    iterations = sorted({record["iteration"] for record in board.iterations})
    table = Table("iterations", "Accuracy over EM iterations",
                  "Runs of the models `harness train-em` keeps after each iteration (OUT/iter-N, N counted from 1), "
                  "one row per EM run × method × task; accuracy % ± stderr (n).",
                  ["EM run", "method", "task", *(f"iter-{n}" for n in iterations)])
    rows: dict[tuple, dict[int, dict]] = {}
    for record in board.iterations:
        rows.setdefault((record["run"], record["method"], record["variant"], record["task"]), {})[record["iteration"]] = record
    for (run, method, variant, task), by_iteration in rows.items():
        table.add([run, method + (f" #{variant + 1}" if variant else ""), task,
                   *(accuracy_cell(by_iteration[n]) + table.mark(by_iteration[n]["flags"]) if n in by_iteration else DASH
                     for n in iterations)])
    return table


# Column sets `harness leaderboard --columns` can switch on, each a table of its own.
COLUMN_SET_TABLES = {"efficiency": efficiency_table}


def all_tables(board: Board, columns: tuple[str, ...] = ()) -> list[Table]:
    tables = [main_table(board), adaptive_table(board), metacognition_table(board), *level_tables(board), iterations_table(board),
              *(COLUMN_SET_TABLES[name](board) for name in columns)]
    return [table for table in tables if table.rows]
