"""`harness leaderboard`: tables and plots comparing runs, adaptive against fixed tool integration."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from harness.io import fail

FORMATS = ("md", "csv", "html")
COLUMN_SETS = ("efficiency",)  # harness/leaderboard/tables.py builds each set's table


def _command_line(run_dirs: list[Path], fmt: str, out: Path, title: str, notes: list[str], reference: bool,
                  reference_dir: Path | None, columns: tuple[str, ...]) -> str:
    """The command that rebuilds this board, written onto the board itself."""
    args = ["harness", "leaderboard", *map(str, run_dirs), "--format", fmt, "--out", str(out)]
    if title != "Leaderboard":
        args += ["--title", title]
    for note in notes:
        args += ["--note", note]
    if not reference:
        args.append("--no-reference")
    if reference_dir is not None:
        args += ["--reference-dir", str(reference_dir)]
    for name in columns:
        args += ["--columns", name]
    return shlex.join(args)


def leaderboard_command(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR", help="Run folders (with results.json), "
                                                                           "or folders to search for them.")],
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="md, csv or html (one self-contained page); "
                                                                   "default: --out's extension, else md.")] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="A folder (DIR/leaderboard.<format>), a board file (.md, .csv, .html), "
                                                         "or a prefix that gets the extension; "
                                                         "plots go beside it as <stem>-<plot>.png.")] = "leaderboard",
    title: Annotated[str, typer.Option(help="Heading of the board.")] = "Leaderboard",
    notes: Annotated[list[str] | None, typer.Option("--note", help="A line under the title (repeatable), "
                                                                   "e.g. the eval command behind the runs.")] = None,
    reference: Annotated[bool, typer.Option(help="Add the published (reported) rows for the tasks on the board.")] = True,
    reference_dir: Annotated[Path | None, typer.Option(help="Folder of reference TOML files "
                                                            "(default: the bundled leaderboards/reference).")] = None,
    columns: Annotated[list[str] | None, typer.Option("--columns", help="Switch on a column set (repeatable): efficiency (tool errors, "
                                                                       "productivity, cost per correct answer, tool trust).")] = None,
) -> None:
    """Compare runs: accuracy and code use, adaptive vs fixed tool use, metacognition, reported rows, plots."""
    from harness.leaderboard.board import build_board
    from harness.leaderboard.reference import load_references
    from harness.leaderboard.runs import LeaderboardError, find_runs

    notes = notes or []
    column_sets = tuple(dict.fromkeys(columns or []))
    if unknown := [name for name in column_sets if name not in COLUMN_SETS]:
        fail(f"--columns: unknown column set {unknown[0]!r}; choose from {', '.join(COLUMN_SETS)}")
    fmt, board_file = board_path(out, fmt)
    try:
        runs = find_runs(run_dirs)
        reported = load_references(reference_dir) if reference else []
        board = build_board(runs, reported)
    except LeaderboardError as exc:
        fail(str(exc))
    command = _command_line(run_dirs, fmt, board_file, title, notes, reference, reference_dir, column_sets)
    written = _write(board, fmt, board_file, title, column_sets, [f"Built by: {command}", *notes,
                                              f"Measured runs: {len(runs)}; models: {', '.join(sorted({r.model for r in runs}))}."])
    for path in written:
        typer.echo(f"wrote {path}")


def board_path(out: str, fmt: str | None) -> tuple[str, Path]:
    """The format and the board file that ``--out`` and ``--format`` name: a folder (existing, or
    written with a trailing slash) holds ``leaderboard.<format>``; a name ending in a format's
    extension is the file itself; any other name is a prefix that gets the extension."""
    if fmt is not None and fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    path = Path(out)
    if out.endswith(("/", "\\")) or path.is_dir():
        fmt = fmt or "md"
        return fmt, path / f"leaderboard.{fmt}"
    named = path.suffix[1:].lower()
    if named in FORMATS:
        if fmt is not None and fmt != named:
            fail(f"--out {out} names a .{named} file but --format is {fmt}; make them agree or drop one")
        return named, path
    fmt = fmt or "md"
    return fmt, path.with_name(f"{path.name}.{fmt}")


def _write(board, fmt: str, out: Path, title: str, column_sets: tuple[str, ...], intro: list[str]) -> list[Path]:
    from harness.io import atomic_write_bytes, atomic_write_text
    from harness.leaderboard.plots import all_plots
    from harness.leaderboard.render import html_page, markdown, write_csv
    from harness.leaderboard.tables import all_tables

    if fmt == "csv":
        return write_csv(board, out, column_sets)
    plots = all_plots(board)
    written = []
    for suffix, (_, png) in plots.items():
        path = out.with_name(f"{out.stem}-{suffix}.png")
        atomic_write_bytes(path, png)
        written.append(path)
    tables = all_tables(board, column_sets)
    if fmt == "md":
        text = markdown(title, intro, tables, {key: (caption, f"{out.stem}-{key}.png") for key, (caption, _) in plots.items()})
    else:
        text = html_page(title, intro, tables, plots)
    atomic_write_text(out, text)
    return [out, *written]

