"""A stateful session: runs cells in one live kernel, and rebuilds it by replay when it dies.

Backends supply the kernel processes (`KernelProcess`); this module owns what is common to both: one lock
per session so many threads can share many sessions, the history of successful cells, the replay after
a timeout or crash, and turning what a kernel reported into a `CellResult`.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from harness.sandbox.limits import SandboxLimits
from harness.sandbox.result import CellResult, last_traceback_line


@dataclass
class CellOutcome:
    """What a kernel process reported for one cell, before it becomes a CellResult."""

    status: str  # ok, error, oom from the kernel; timeout, output_limit, control_limit, protocol or died from the host
    stdout: bytes = b""
    stderr: bytes = b""
    traceback: str | None = None
    truncated: bool = False
    exit_code: int | None = None  # how the kernel ended, when it died (negative: killed by that signal)
    oom_killed: bool = False
    details: list[str] = field(default_factory=list)  # the host's explanation of a protocol violation
    previous_cell_lied: bool = False  # the worker was still inside the previous cell: its "ok" was forged


# Outcomes after which the kernel cannot be trusted to hold the session's state: it is rebuilt by replay.
LOST_KERNEL = ("timeout", "output_limit", "control_limit", "protocol", "died")


class KernelProcess(Protocol):
    def run_cell(self, code: str, timeout_s: float, display_last_expr: bool) -> CellOutcome: ...

    def close(self) -> None: ...


class OutputCapture:
    """stdout and stderr of one cell, read as it runs, with one byte cap for both."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.total = 0
        self.overflowed = False

    def add(self, stream: str, data: bytes) -> None:
        room = self.max_bytes - self.total
        if len(data) > room:
            self.overflowed = True
            data = data[: max(room, 0)]
        self.parts[stream] += data
        self.total += len(data)


class Session:
    """Use as a context manager, or call close(); run() is thread-safe (cells of one session run in order)."""

    def __init__(self, start_kernel: Callable[[], KernelProcess], limits: SandboxLimits,
                 display_last_expr: bool = True, on_close: Callable[[Session], None] | None = None) -> None:
        self.limits = limits
        self.display_last_expr = display_last_expr
        self._start_kernel = start_kernel
        self._on_close = on_close
        self._lock = threading.Lock()
        self._history: list[str] = []
        self._last_cell_kept = False  # whether the last cell run is the last one in _history
        self._closed = False
        self._kernel: KernelProcess | None = start_kernel()

    def run(self, code: str, timeout: float | None = None) -> CellResult:
        timeout_s = self.limits.timeout_s if timeout is None else float(timeout)
        with self._lock:
            if self._closed:
                raise RuntimeError("this sandbox session is closed")
            if self._kernel is None:  # a previous rebuild failed; try again
                self._kernel, _ = self._rebuild()
            started = time.perf_counter()
            outcome = self._kernel.run_cell(code, timeout_s, self.display_last_expr)
            duration = time.perf_counter() - started
            restarted, replay_note = False, None
            if outcome.previous_cell_lied and self._last_cell_kept:  # its state is not replayed
                self._history.pop()
            self._last_cell_kept = outcome.status == "ok"
            if outcome.status in LOST_KERNEL:
                self._kernel.close()
                self._kernel = None
                self._kernel, replay_note = self._rebuild()
                restarted = True
            elif outcome.status == "ok":
                self._history.append(code)
            return self._result(outcome, duration, timeout_s, restarted, replay_note)

    def _rebuild(self) -> tuple[KernelProcess, str | None]:
        """A fresh kernel with the successful cells replayed (their output discarded)."""
        kernel = self._start_kernel()
        for index, code in enumerate(self._history):
            replayed = kernel.run_cell(code, self.limits.timeout_s, False)
            if replayed.status != "ok":
                # State diverged (the cell depends on something gone, or timed out this time): keep what replayed.
                del self._history[index:]
                if replayed.status in LOST_KERNEL:
                    kernel.close()
                    kernel = self._start_kernel()
                return kernel, f"replay stopped at earlier cell {index + 1} ({replayed.status})"
        return kernel, None

    def _result(self, outcome: CellOutcome, duration: float, timeout_s: float, restarted: bool,
                replay_note: str | None) -> CellResult:
        limits = self.limits
        stdout = outcome.stdout.decode("utf-8", errors="replace")
        stderr = outcome.stderr.decode("utf-8", errors="replace")
        status, error, reason = outcome.status, None, None
        if status in ("error", "oom") and outcome.traceback:
            error = last_traceback_line(outcome.traceback)
            stderr += outcome.traceback
            if status == "oom":
                error = f"{error} (the memory limit is {limits.memory_mb} MB)"
        elif status == "timeout":
            reason, error = "timeout", f"TimeoutError: the cell did not finish within {timeout_s:g} s and was stopped"
        elif status == "output_limit":
            status, reason = "killed", "output_limit"
            error = f"OutputLimitExceeded: the cell wrote more than {limits.max_output_bytes} bytes and was stopped"
        elif status == "control_limit":
            status, reason = "killed", "control_limit"
            error = f"ControlLimitExceeded: {'; '.join(outcome.details)}; the cell was stopped"
        elif status == "protocol":
            status, reason = "error", "protocol"
            error = f"ProtocolError: {'; '.join(outcome.details)}"
        elif status == "died":
            status, error = describe_death(outcome, limits)
        return CellResult(
            status=status, stdout=stdout, stderr=stderr, duration_s=duration,
            truncated=outcome.truncated, restarted=restarted, error=error, reason=reason,
            traceback=outcome.traceback if status in ("error", "oom") else None, replay_note=replay_note,
            output_chars=limits.output_chars, full_traceback=limits.full_traceback,
        )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._kernel is not None:
                self._kernel.close()
                self._kernel = None
        if self._on_close is not None:
            self._on_close(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def describe_death(outcome: CellOutcome, limits: SandboxLimits) -> tuple[str, str]:
    """Status and one-line explanation for a kernel that died during a cell."""
    code = outcome.exit_code
    if outcome.oom_killed:
        return "oom", f"MemoryError: the session was killed for exceeding its memory limit ({limits.memory_mb} MB)"
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        reason = {"SIGSEGV": " (segmentation fault)", "SIGXCPU": f" (CPU time limit of {limits.cpu_s} s exceeded)",
                  "SIGKILL": "", "SIGABRT": " (aborted)", "SIGBUS": " (bus error)"}.get(name, "")
        return "killed", f"ProcessKilled: the session's interpreter was killed by {name}{reason}"
    if code is not None:
        return "error", f"ProcessExited: the session's interpreter exited with status {code}"
    return "killed", "ProcessKilled: the session's interpreter ended unexpectedly"
