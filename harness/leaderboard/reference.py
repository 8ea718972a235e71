"""Published numbers kept as data (``leaderboards/reference/*.toml``), shown as "reported" rows.

Each file is one source: ``source`` (where the numbers come from), ``protocol`` (how they were
measured, as far as the source says) and ``[[rows]]`` with ``model``, ``method`` (cot, tir or auto:
which way the model used code), ``scores`` (task -> accuracy %) and optionally ``code_rate``
(task -> % of responses with code). Only numbers a source gives are written down; a task it does
not report is simply absent, never filled in.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.leaderboard.runs import LeaderboardError

METHODS = ("cot", "tir", "auto")


@dataclass(frozen=True)
class ReportedRow:
    model: str
    method: str
    source: str
    protocol: str
    scores: dict[str, float]
    code_rate: dict[str, float]


def _percentages(path: Path, row: dict, key: str) -> dict[str, float]:
    values = row.get(key, {})
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) and 0 <= v <= 100 for v in values.values()):
        raise LeaderboardError(f"{path}: {key} of {row.get('model')!r} must map task names to percentages (0-100)")
    return {task: float(value) for task, value in values.items()}


def load_reference_file(path: Path) -> list[ReportedRow]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LeaderboardError(f"{path}: not valid TOML ({exc})") from None
    for key in ("source", "protocol", "rows"):
        if key not in data:
            raise LeaderboardError(f"{path}: missing {key!r}")
    rows = []
    for row in data["rows"]:
        if not row.get("model") or row.get("method") not in METHODS:
            raise LeaderboardError(f"{path}: each row needs a model and a method among {', '.join(METHODS)}")
        scores = _percentages(path, row, "scores")
        if not scores:
            raise LeaderboardError(f"{path}: {row['model']!r} has no scores")
        rows.append(ReportedRow(model=row["model"], method=row["method"], source=data["source"],
                                protocol=row.get("protocol", data["protocol"]), scores=scores,
                                code_rate=_percentages(path, row, "code_rate")))
    return rows


def load_references(folder: Path | None = None) -> list[ReportedRow]:
    """All reported rows, from ``folder`` or the bundled ``leaderboards/reference``."""
    if folder is None:
        from harness.resources import resource_dir

        folder = resource_dir("leaderboards/reference")
    if not folder.is_dir():
        raise LeaderboardError(f"reference folder {folder} does not exist")
    return [row for path in sorted(folder.glob("*.toml")) for row in load_reference_file(path)]
