"""What one sandboxed session may use. Every limit here is enforced by the harness or the kernel, never by model code."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one session; the defaults are safe for untrusted model-written code.

    timeout_s: wall-clock seconds per cell, measured by the harness; the session is killed and rebuilt on expiry.
    memory_mb: memory a session may allocate on top of the interpreter's own: address space per process, plus
        (local, where cgroups can be written) the session's cgroup, which counts shared memory, memfd and tmpfs
        pages too; the container's memory+swap for Docker.
    cpu_s: CPU seconds a session may burn in total before the kernel kills it (RLIMIT_CPU); the wall-clock
        deadline is what bounds one cell.
    pids: processes a session may run at once, the session's own interpreter included (RLIMIT_NPROC, and the
        session's pids cgroup where there is one).
    output_chars: characters of output handed back to the model by `CellResult.feedback()` (head and tail kept).
    max_output_bytes: bytes of stdout+stderr the harness reads from one cell; past this the cell is stopped.
    scratch_mb: size of the private writable /tmp, and the largest file a cell may write.
    scratch_files: files and directories the local backend's /tmp may hold (its tmpfs inode count).
    open_files: file descriptors per process.
    full_traceback: feed the whole traceback back to the model instead of its last line.
    """

    timeout_s: float = 10.0
    memory_mb: int = 1024
    cpu_s: int = 300
    pids: int = 64
    output_chars: int = 1000
    max_output_bytes: int = 1 << 20
    scratch_mb: int = 64
    scratch_files: int = 4096
    open_files: int = 256
    full_traceback: bool = False

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name != "full_traceback" and not value > 0:
                raise ValueError(f"SandboxLimits.{spec.name} must be positive, got {value!r}")
        if self.pids < 2:
            raise ValueError("SandboxLimits.pids must leave room for the interpreter and one child (>= 2)")

    def with_overrides(self, **overrides: Any) -> SandboxLimits:
        """A copy with the given limits changed; None values mean "keep the current one"."""
        return replace(self, **{key: value for key, value in overrides.items() if value is not None})
