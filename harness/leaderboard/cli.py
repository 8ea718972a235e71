"""`harness leaderboard`: tables and plots comparing runs, adaptive against fixed tool integration."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from harness.io import fail

FORMATS = ("md", "csv", "html")


def _command_line(run_dirs: list[Path], fmt: str, out: Path, title: str, notes: list[str], reference: bool,
                  reference_dir: Path | None) -> str:
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
    return shlex.join(args)


def leaderboard_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders (with results.json), or folders to search for them.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, csv or html (one self-contained page).")] = "md",
    out: Annotated[Path, typer.Option("--out", "-o", help="Board file; plots go beside it as <stem>-<plot>.png.")] = Path("leaderboard.md"),
    title: Annotated[str, typer.Option(help="Heading of the board.")] = "Leaderboard",
    notes: Annotated[list[str] | None, typer.Option("--note", help="A line under the title (repeatable), e.g. the eval command behind the runs.")] = None,
    reference: Annotated[bool, typer.Option(help="Add the published (reported) rows for the tasks on the board.")] = True,
    reference_dir: Annotated[Path | None, typer.Option(help="Folder of reference TOML files (default: the bundled leaderboards/reference).")] = None,
) -> None:
    """Compare runs: accuracy and code use, adaptive vs fixed tool use, metacognition, reported rows, plots."""
    from harness.leaderboard.board import build_board
    from harness.leaderboard.reference import load_references
    from harness.leaderboard.runs import LeaderboardError, find_runs

    notes = notes or []
    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if out.exists() and out.is_dir():
        fail(f"--out {out} is a folder; give a file path such as {out / ('leaderboard.' + fmt)}")
    try:
        runs = find_runs(run_dirs)
        reported = load_references(reference_dir) if reference else []
        board = build_board(runs, reported)
    except LeaderboardError as exc:
        fail(str(exc))
    command = _command_line(run_dirs, fmt, out, title, notes, reference, reference_dir)
    written = _write(board, fmt, out, title, [f"Built by: {command}", *notes,
                                              f"Measured runs: {len(runs)}; models: {', '.join(sorted({r.model for r in runs}))}."])
    for path in written:
        typer.echo(f"wrote {path}")


def _write(board, fmt: str, out: Path, title: str, intro: list[str]) -> list[Path]:
    from harness.io import atomic_write_text
    from harness.leaderboard.plots import all_plots
    from harness.leaderboard.render import html_page, markdown, write_csv
    from harness.leaderboard.tables import all_tables

    if fmt == "csv":
        return write_csv(board, out)
    plots = all_plots(board)
    written = []
    for suffix, (_, png) in plots.items():
        path = out.with_name(f"{out.stem}-{suffix}.png")
        _atomic_write_bytes(path, png)
        written.append(path)
    tables = all_tables(board)
    if fmt == "md":
        text = markdown(title, intro, tables, {key: (caption, f"{out.stem}-{key}.png") for key, (caption, _) in plots.items()})
    else:
        text = html_page(title, intro, tables, plots)
    atomic_write_text(out, text)
    return [out, *written]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
