"""Find evaluation runs under the folders a user names, and tell which of them cannot be compared.

A run is a folder with ``results.json`` (written by ``harness eval``); everything the main tables
need is read from it. Two runs fit together only when they score the same task version on the
same data with the same number of problems and attempts per problem; ``mismatches`` names every
way a group of runs breaks that, so the tables can flag it instead of merging silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class LeaderboardError(ValueError):
    """Input the leaderboard cannot use; the message is one line for the user."""


@dataclass(frozen=True)
class Run:
    directory: Path
    model: str
    task: str
    method: str
    task_version: str
    fingerprint: str
    config_hash: str
    attempts: int
    problems: int
    temperature: float
    max_tokens: int | None
    limit: int | None  # the limit results.json was built with (run.json keeps the first run's)
    metrics: dict = field(repr=False)
    tools: dict = field(repr=False)
    breakdown: dict = field(repr=False)
    efficiency: dict = field(default_factory=dict, repr=False)  # absent in results.json written before it existed

    @property
    def protocol(self) -> str:
        """How the accuracy was measured, in the words the reference rows use."""
        budget = f", {self.max_tokens} tokens" if self.max_tokens else ""
        if self.attempts == 1 and self.temperature == 0:
            return f"greedy{budget}"
        return f"avg@{self.attempts}, T={self.temperature:g}{budget}"

    @property
    def has_samples(self) -> bool:
        return (self.directory / "samples.jsonl").is_file() and (self.directory / "run.json").is_file()


def load_run(directory: Path) -> Run:
    path = directory / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        run, metrics, config = results["run"], results["metrics"], results.get("config", {})
        return Run(
            directory=directory,
            model=run["model"],
            task=run["task"]["name"],
            method=run["method"]["name"],
            task_version=str(run["task"]["version"]),
            fingerprint=str(run.get("dataset_fingerprint")),
            config_hash=str(run.get("config_hash")),
            attempts=int(metrics.get("samples_per_problem") or config.get("samples") or 1),
            problems=int(metrics.get("problems", 0)),
            temperature=float(config.get("temperature", 0.0)),
            max_tokens=config.get("max_tokens"),
            limit=config.get("limit"),
            metrics=metrics,
            tools=results.get("tools", {}),
            breakdown=results.get("breakdown", {}),
            efficiency=results.get("efficiency", {}),
        )
    except json.JSONDecodeError as exc:
        raise LeaderboardError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise LeaderboardError(f"{path}: not a `harness eval` results file (missing or bad {exc})") from None


def find_runs(paths: list[Path]) -> list[Run]:
    """Runs in the given run folders, or anywhere below the given parent folders, each once."""
    directories: list[Path] = []
    for path in paths:
        if not path.exists():
            raise LeaderboardError(f"{path} does not exist")
        if not path.is_dir():
            raise LeaderboardError(f"{path} is not a folder (give run folders or folders that contain them)")
        found = [path] if (path / "results.json").is_file() else sorted(p.parent for p in path.rglob("results.json"))
        if not found:
            raise LeaderboardError(f"no results.json under {path}: run `harness eval` first")
        directories.extend(d for d in found if d.resolve() not in {seen.resolve() for seen in directories})
    return [load_run(directory) for directory in directories]


def mismatches(runs: list[Run]) -> list[str]:
    """Every reason these runs (meant to be compared) do not fit together; empty when they do."""
    reasons = []
    for label, values in (
        ("task versions", [r.task_version for r in runs]),
        ("datasets (fingerprints)", [r.fingerprint[:12] for r in runs]),
        ("attempts per problem", [str(r.attempts) for r in runs]),
        ("problem counts", [str(r.problems) for r in runs]),
    ):
        distinct = sorted(set(values))
        if len(distinct) > 1:
            reasons.append(f"different {label}: {', '.join(distinct)}")
    return reasons
