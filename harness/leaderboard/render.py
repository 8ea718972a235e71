"""Write a board as Markdown, CSV or one self-contained HTML page (inline CSS, plots as data: URIs).

Markdown and HTML show the display tables plus the plots; CSV writes the records themselves, one
file per table (``board.csv`` for the main table, ``board.adaptive.csv`` and so on), as numbers.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

from harness.eval.efficiency import METRICS
from harness.io import atomic_write_text
from harness.leaderboard.board import Board
from harness.leaderboard.tables import Table

CSV_COLUMNS = {
    "main": ["kind", "model", "method", "variant", "task", "task_version", "protocol", "accuracy", "stderr", "n", "attempts",
             "code_rate", "calls_per_problem", "tokens_per_problem", "source", "flags"],
    "adaptive": ["model", "task", "n", "cot", "tir", "auto", "best_fixed", "auto_minus_best_fixed", "delta_stderr",
                 "paired_problems", "auto_code_rate", "flags"],
    "metacognition": ["model", "task", "problems", "cot_only", "code_only", "both", "neither", "selection_accuracy", "judged",
                      "oracle_accuracy", "auto_code_rate", "flags"],
    "levels": ["model", "method", "variant", "task", "level", "n", "accuracy", "stderr", "code_rate"],
    "efficiency": ["model", "method", "variant", "task", "bucket", *METRICS, "flags"],
    "iterations": ["run", "iteration", "method", "variant", "task", "accuracy", "stderr", "n", "code_rate", "flags"],
}


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(title: str, intro: list[str], tables: list[Table], plots: dict[str, tuple[str, str]]) -> str:
    """``plots``: suffix -> (caption, file name the PNG was written to, relative to the Markdown file)."""
    lines = [f"# {title}", "", *(f"{line}  " for line in intro), ""]
    for table in tables:
        lines += [f"## {table.title}", "", table.description, "",
                  "| " + " | ".join(_md_cell(c) for c in table.columns) + " |",
                  "|" + "|".join("---" for _ in table.columns) + "|"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
        if table.notes:
            lines += ["", *(f"⚠{i}: {_md_cell(note)}  " for i, note in enumerate(table.notes, start=1))]
        lines.append("")
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{caption}]({name})\n" for caption, name in plots.values()]
    return "\n".join(lines).rstrip() + "\n"


_STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #1a1a1a; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ccc; }
p.intro { margin: 2px 0; color: #333; } p.desc { color: #444; max-width: 1100px; font-size: 13px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #eef1f5; text-align: center; white-space: normal; max-width: 110px; } th.group { text-align: center; max-width: none; }
div.scroll { overflow-x: auto; }
table#main td:nth-child(4) { white-space: normal; min-width: 150px; max-width: 230px; }
td:nth-child(-n+2), table#main td:nth-child(-n+4) { text-align: left; }
tr.reported td { background: #fbf6e9; font-style: italic; color: #555; }
ol.notes { font-size: 12px; color: #8a4b00; } figure { margin: 16px 0; }
figure img { max-width: 100%; border: 1px solid #ddd; } figcaption { font-size: 13px; color: #444; }
"""

# Marks each plot that the browser actually decoded, so a headless check can read it from the DOM.
_CHECK_IMAGES = """
window.addEventListener("load", function () {
  document.querySelectorAll("img").forEach(function (img) {
    img.setAttribute("data-rendered", img.complete && img.naturalWidth > 0 ? "yes" : "no");
  });
});
"""


def _html_head(table: Table) -> str:
    if not table.groups:
        return "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in table.columns) + "</tr>"
    top, sub, start = [], [], 0
    for label, span in table.groups:
        top.append(f'<th colspan="{span}" class="group">{html.escape(label)}</th>')
        for name in table.columns[start:start + span]:
            sub.append(f"<th>{html.escape(name.removeprefix(label).strip() if label else name)}</th>")
        start += span
    return f"<tr>{''.join(top)}</tr><tr>{''.join(sub)}</tr>"


def _html_table(table: Table) -> str:
    head = _html_head(table)
    body = "".join(f'<tr class="{kind}">' + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row, kind in zip(table.rows, table.row_kinds))
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in table.notes)
    return (f'<h2>{html.escape(table.title)}</h2><p class="desc">{html.escape(table.description)}</p>'
            f'<div class="scroll"><table id="{table.key}"><thead>{head}</thead><tbody>{body}</tbody></table></div>'
            + (f'<p class="desc">Flags (⚠N):</p><ol class="notes">{notes}</ol>' if notes else ""))


def html_page(title: str, intro: list[str], tables: list[Table], plots: dict[str, tuple[str, bytes]]) -> str:
    figures = "".join(
        f'<figure><img id="plot-{key}" alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        for key, (caption, png) in plots.items())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style><script>{_CHECK_IMAGES}</script></head><body>"
            f"<h1>{html.escape(title)}</h1>" + "".join(f'<p class="intro">{html.escape(line)}</p>' for line in intro)
            + "".join(_html_table(table) for table in tables)
            + (f"<h2>Plots</h2>{figures}" if figures else "") + "</body></html>\n")


def _csv_text(columns: list[str], records: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({**record, "flags": "; ".join(record.get("flags", []))})
    return buffer.getvalue()


def write_csv(board: Board, out: Path, column_sets: tuple[str, ...] = ()) -> list[Path]:
    """The main table at ``out``; the others beside it as ``<stem>.<table>.csv`` (when they have rows; a
    column set's table only when it is switched on)."""
    written = []
    for key, columns in CSV_COLUMNS.items():
        records = getattr(board, key)
        if key != "main" and (not records or (key == "efficiency" and key not in column_sets)):
            continue
        path = out if key == "main" else out.with_name(f"{out.stem}.{key}.csv")
        atomic_write_text(path, _csv_text(columns, records))
        written.append(path)
    return written
