"""A run directory: ``run.json`` (written first), ``samples.jsonl`` (appended), ``results.json`` (written last).

Resuming reads the samples already written: a line cut short by a crash is dropped (the file is
truncated back to the last complete line), and a run whose config hash differs is refused unless
``overwrite`` is set. Each line is flushed and fsynced as it is written, so a kill loses at most
the samples in flight.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from harness.io import atomic_write_text


class RunMismatchError(ValueError):
    """The directory holds a run with another configuration."""


def read_samples(path: Path) -> list[dict]:
    """Complete lines of samples.jsonl; a torn last line is cut off the file."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    records, good_end = [], 0
    for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
        end = good_end + len(line) + 1
        if end > len(data):  # last line without its newline: written only in part
            break
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good_end = end
    if good_end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
    return records


class RunStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.run_file = self.directory / "run.json"
        self.samples_file = self.directory / "samples.jsonl"
        self.results_file = self.directory / "results.json"

    def open(self, run_info: dict, overwrite: bool) -> list[dict]:
        """Start or resume; returns the samples already done."""
        if self.run_file.is_file():
            existing = json.loads(self.run_file.read_text(encoding="utf-8"))
            if existing.get("config_hash") != run_info["config_hash"]:
                if not overwrite:
                    raise RunMismatchError(
                        f"{self.directory} holds a run with another configuration (config hash "
                        f"{existing.get('config_hash')} != {run_info['config_hash']}); use --overwrite or another --output-dir"
                    )
                shutil.rmtree(self.directory)
        elif overwrite and self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        done = read_samples(self.samples_file)
        if not self.run_file.is_file():
            atomic_write_text(self.run_file, json.dumps(run_info, indent=2, default=str) + "\n")
        return done

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        with open(self.samples_file, "a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def write_results(self, results: dict) -> None:
        atomic_write_text(self.results_file, json.dumps(results, indent=2, default=str) + "\n")
