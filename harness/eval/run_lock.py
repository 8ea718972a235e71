"""An exclusive lock on a run directory, so two processes never append to one samples.jsonl, nor two
trainers write checkpoints into one folder (``harness/training/run_folder.py`` takes it too).

The lock is ``flock`` on ``DIR/.lock``: the kernel drops it when the holder exits, however it exits,
so a killed run never leaves a stale lock behind. The holder's pid is written into the file only to
say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another process holds the run directory."""


class RunLock:
    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._file = None  # a file object, so a forgotten lock is dropped when its holder is collected

    def acquire(self) -> None:
        """Take the lock now or raise RunLockedError (never waits: a second run should be told, not queued)."""
        if self._file is not None:
            return
        handle = open(self.path, "a+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(32).decode(errors="replace").strip() or "unknown"
            handle.close()
            raise RunLockedError(
                f"{self.path.parent} is in use by another run (pid {holder}); wait for it to finish or choose another output folder"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None
