"""A run directory: ``run.json`` (written first), ``samples.jsonl`` (appended), ``results.json`` (written last).

Guarantees, all checked when a run is opened (under an exclusive lock on the directory, so two
processes never write one run):

- every sample line carries the run's config hash; lines of another configuration are refused
  (``RunMismatchError``) unless ``overwrite`` is set, even when run.json is gone;
- a line cut short by a crash (no newline at its end) is dropped;
- a complete line that is not a sample (bad JSON, missing fields) or repeats an earlier sample's key
  is moved to ``samples.rejected.jsonl``, never silently dropped, and later lines are still read;
  ``rejected`` lists them so the caller can say so, and their samples are generated again.

Each appended batch is flushed and fsynced, so a kill loses at most the samples in flight.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.eval.run_lock import LOCK_NAME, RunLock
from harness.io import atomic_write_text


class RunMismatchError(ValueError):
    """The directory holds a run with another configuration."""


class RunStoreError(OSError):
    """The run directory cannot be read or written; the message names it."""


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    raw: bytes


@dataclass
class SamplesScan:
    records: list[dict] = field(default_factory=list)
    raw_lines: list[bytes] = field(default_factory=list)  # the accepted lines, byte for byte
    rejected: list[Rejected] = field(default_factory=list)
    torn: bool = False


def _problem(record: object, key: tuple[str, ...], required: tuple[str, ...]) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [name for name in (*key, *required) if name not in record]
    if missing:
        return f"missing {', '.join(missing)}"
    if any(isinstance(record[name], bool) or not isinstance(record[name], (str, int)) for name in key):
        return f"{'/'.join(key)} must be strings or integers"
    return None


def scan_samples(path: Path, key: tuple[str, ...] = (), required: tuple[str, ...] = ()) -> SamplesScan:
    """Read samples.jsonl without changing it: the valid records, and the lines that are not."""
    scan = SamplesScan()
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    complete = data.rfind(b"\n") + 1
    scan.torn = complete < len(data)
    seen = set()
    for number, raw in enumerate(data[:complete].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError:  # bad UTF-8 or bad JSON
            scan.rejected.append(Rejected(number, "not valid JSON", raw))
            continue
        reason = _problem(record, key, required)
        identity = tuple(record[name] for name in key) if reason is None else None
        if reason is None and key and identity in seen:
            reason = f"repeats {'/'.join(key)} {identity}"
        if reason is not None:
            scan.rejected.append(Rejected(number, reason, raw))
            continue
        seen.add(identity)
        scan.records.append(record)
        scan.raw_lines.append(raw)
    return scan


def read_samples(path: Path, key: tuple[str, ...] = (), required: tuple[str, ...] = ()) -> list[dict]:
    """The valid records of samples.jsonl, read-only (a run being written by another process is left alone)."""
    return scan_samples(path, key, required).records


class RunStore:
    """``key`` names the fields that identify a sample (duplicates are rejected); ``required``, the other
    fields every sample must have."""

    def __init__(self, directory: Path, key: tuple[str, ...] = (), required: tuple[str, ...] = ()) -> None:
        self.directory = Path(directory)
        self.run_file = self.directory / "run.json"
        self.samples_file = self.directory / "samples.jsonl"
        self.rejected_file = self.directory / "samples.rejected.jsonl"
        self.results_file = self.directory / "results.json"
        self.key, self.required = key, required
        self.lock = RunLock(self.directory)
        self.config_hash: str | None = None
        self.rejected: list[Rejected] = []

    def open(self, run_info: dict, overwrite: bool) -> list[dict]:
        """Lock the directory, then start or resume; returns the samples already done."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
            self.config_hash = run_info["config_hash"]
            records = self._load(overwrite)
            open(self.samples_file, "ab").close()  # unwritable? say so before anything is generated
            if not self.run_file.is_file():
                atomic_write_text(self.run_file, json.dumps(run_info, indent=2, default=str) + "\n")
        except OSError as exc:
            raise self._error(exc) from None
        return records

    def load(self) -> list[dict]:
        """Lock the directory and read its valid samples (setting bad lines aside), for re-grading."""
        try:
            self.lock.acquire()
            return self._tidy(scan_samples(self.samples_file, self.key, self.required))
        except OSError as exc:
            raise self._error(exc) from None

    def _load(self, overwrite: bool) -> list[dict]:
        recorded = self._recorded_hash()
        scan = scan_samples(self.samples_file, self.key, self.required)
        foreign = [r for r in scan.records if r.get("config_hash", recorded) != self.config_hash]
        if recorded not in (None, self.config_hash) or foreign:
            if not overwrite:
                other = recorded if recorded not in (None, self.config_hash) else foreign[0].get("config_hash")
                raise RunMismatchError(
                    f"{self.directory} holds a run with another configuration (config hash {other} != "
                    f"{self.config_hash}); use --overwrite or another --output-dir"
                )
        if recorded not in (None, self.config_hash) or foreign or (overwrite and recorded is None):
            self._clear()
            return []
        return self._tidy(scan)

    def _recorded_hash(self) -> str | None:
        if not self.run_file.is_file():
            return None
        try:
            return json.loads(self.run_file.read_text(encoding="utf-8")).get("config_hash")
        except (ValueError, AttributeError):
            raise RunStoreError(f"{self.run_file} is not a run description (not JSON); remove it or use --overwrite") from None

    def _tidy(self, scan: SamplesScan) -> list[dict]:
        """Move rejected lines aside and cut a torn tail, so the file holds valid samples only."""
        self.rejected = scan.rejected
        if scan.rejected:
            with open(self.rejected_file, "ab") as handle:
                handle.write(b"".join(r.raw + b"\n" for r in scan.rejected))
                handle.flush()
                os.fsync(handle.fileno())
        if scan.rejected or scan.torn:
            text = "".join(raw.decode("utf-8") + "\n" for raw in scan.raw_lines)
            atomic_write_text(self.samples_file, text)
        return scan.records

    def _clear(self) -> None:
        """Empty the directory for a new run, keeping the lock file (which we hold)."""
        for child in self.directory.iterdir():
            if child.name == LOCK_NAME:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def rejected_summary(self) -> str | None:
        if not self.rejected:
            return None
        shown = "; ".join(f"line {r.line}: {r.reason}" for r in self.rejected[:5])
        more = f" and {len(self.rejected) - 5} more" if len(self.rejected) > 5 else ""
        return (f"{self.samples_file}: moved {len(self.rejected)} bad line(s) to {self.rejected_file.name} "
                f"({shown}{more}); their samples are generated again")

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        stamp = {"config_hash": self.config_hash} if self.config_hash else {}
        try:
            with open(self.samples_file, "a", encoding="utf-8") as handle:
                for record in records:
                    handle.write(json.dumps({**record, **stamp}, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise self._error(exc) from None

    def write_results(self, results: dict) -> None:
        try:
            atomic_write_text(self.results_file, json.dumps(results, indent=2, default=str) + "\n")
        except OSError as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self.lock.release()

    def _error(self, exc: OSError) -> OSError:
        if isinstance(exc, RunStoreError):
            return exc
        where = exc.filename or self.directory
        return RunStoreError(f"cannot use run directory {self.directory}: {where}: {exc.strerror or exc}")
