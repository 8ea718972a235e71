"""Whether a trainer may use an output folder, the same rule for SFT, RL and EM.

An absent or empty folder starts a new run. A folder with anything in it is refused unless ``resume``:
training into a finished run's folder used to mix the two runs' checkpoints and keep the old one's.
A resume reads ``provenance.json`` (command, config, harness version, time, command line) and refuses
a config with other fields than the run's (a run of another harness version) or other values, except
the fields the trainer's ``RESUME_MAY_CHANGE`` names (how long to train, where to log): a silent change
would leave a run that no record describes.
``allow_config_change`` lets any change through and records the old and new values with the step.

One run per folder: the main process takes the folder's run lock (``harness/eval/run_lock.py``, the
one ``harness eval`` takes) before judging it and holds it to the end of the run, so a second trainer
or eval started into the folder is refused with the holder's pid instead of mixing its checkpoints in.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.eval.run_lock import LOCK_NAME, RunLock, RunLockedError
from harness.io import atomic_write_text
from harness.training.checkpoint import checkpoint_info, latest_checkpoint
from harness.training.distributed import rank_and_world

PROVENANCE_FILE = "provenance.json"


@dataclass
class RunStart:
    """What ``open_run`` decided: a new run (``resuming`` False) or a resume from checkpoint ``step``
    (0 when the run stopped before its first checkpoint). Nothing but the lock file is written until
    ``record``. Use it as a context manager: leaving it releases the folder's lock."""

    output: Path
    resuming: bool
    step: int
    provenance: dict
    lock: RunLock | None = None

    def __enter__(self) -> RunStart:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Let another run have the folder (the kernel also drops the lock when this process ends)."""
        if self.lock is not None:
            self.lock.release()

    def record(self) -> None:
        atomic_write_text(self.output / PROVENANCE_FILE, json.dumps(self.provenance, indent=2, default=str) + "\n")

    def rewind(self, log_name: str, keep) -> None:
        """Drop the lines of a JSONL log written after the checkpoint resumed from (``keep(row)`` False),
        so a resumed run has one line per step; a line cut short by a kill goes too."""
        path = self.output / log_name
        if not self.resuming or not path.is_file():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and keep(row):
                kept.append(line + "\n")
        atomic_write_text(path, "".join(kept))


def is_main_process() -> bool:
    """Whether this is the main process of a run (rank 0 of ``accelerate launch``, or the only one),
    read before any process group exists, as the CLI's early check needs."""
    return rank_and_world()[0] == 0


def open_run(output: str | Path, command: str, config: dict, may_change, *, resume: bool,
             allow_config_change: bool = False, lock: bool = True) -> RunStart:
    """Decide how a trainer may use ``output``; ValueError (one line, naming the folder or file) if it may not.

    With ``lock`` (the main process), the folder is created and locked first; the returned RunStart
    holds the lock until released. Other processes of the run judge the folder without locking it."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: not a folder")
    run_lock = _lock(output) if lock else None
    try:
        start = _judge(output, command, config, may_change, resume, allow_config_change)
    except BaseException:
        if run_lock is not None:
            run_lock.release()
        raise
    start.lock = run_lock
    return start


def _lock(output: Path) -> RunLock:
    run_lock = RunLock(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        run_lock.acquire()
    except RunLockedError as exc:
        raise ValueError(str(exc)) from None
    except OSError as exc:
        raise ValueError(f"{output}: cannot lock the run folder ({exc.strerror or exc})") from None
    return run_lock


def _judge(output: Path, command: str, config: dict, may_change, resume: bool, allow_config_change: bool) -> RunStart:
    config = json.loads(json.dumps(config, default=str))  # compared as it is stored
    now = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "argv": sys.argv, "harness_version": _version()}
    entries = sorted(p.name for p in output.iterdir() if p.name != LOCK_NAME) if output.is_dir() else []
    if not entries:
        return RunStart(output, False, 0, {"command": command, **now, "config": config, "resumes": []})
    if not resume:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ValueError(f"{output}: not empty ({shown}); pass --resume to continue the run there, or choose a new output folder")
    provenance = _read_provenance(output)
    if provenance.get("command") != command:
        raise ValueError(f"{output / PROVENANCE_FILE}: a {provenance.get('command')} run, not {command}; choose a new output folder")
    old = provenance["config"]
    gone, added = sorted(set(old) - set(config)), sorted(set(config) - set(old))
    if (gone or added) and not allow_config_change:
        fields = "; ".join(f"{label} {', '.join(names)}" for label, names in (("had", gone), ("lacks", added)) if names)
        raise ValueError(f"{output / PROVENANCE_FILE}: a {command} run of another harness version (its config {fields}); "
                         f"resume it with that version, or pass --allow-config-change to continue it under this one")
    changed = {k: [old.get(k), config.get(k)] for k in sorted(set(old) | set(config)) if old.get(k) != config.get(k)}
    refused = [k for k in changed if k not in may_change]
    if refused and not allow_config_change:
        differences = "; ".join(f"{k}: {changed[k][0]!r} in the run, {changed[k][1]!r} now" for k in refused)
        raise ValueError(f"{output / PROVENANCE_FILE}: {differences}; a resumed run keeps its config (only "
                         f"{', '.join(sorted(may_change))} may change) unless --allow-config-change")
    checkpoint = latest_checkpoint(output)
    step = checkpoint_info(checkpoint)["step"] if checkpoint else 0
    resumed = {**now, "step": step, "changed": changed}
    if refused:
        resumed["config_before"] = old
    provenance["resumes"] = [*provenance.get("resumes", []), resumed]
    provenance["config"] = config
    return RunStart(output, True, step, provenance)


def _read_provenance(output: Path) -> dict:
    path = output / PROVENANCE_FILE
    if not path.is_file():
        raise ValueError(f"{output}: not empty and no {PROVENANCE_FILE}, so not a run to resume; choose a new output folder")
    try:
        provenance = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(provenance, dict) or not isinstance(provenance.get("config"), dict):
        raise ValueError(f"{path}: no config recorded; choose a new output folder")
    return provenance


def _version() -> str:
    from harness import __version__

    return __version__
