"""The outcome of one cell, and the short text that goes back to the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "error", "timeout", "oom", "killed"]
STATUSES: tuple[str, ...] = ("ok", "error", "timeout", "oom", "killed")


@dataclass(frozen=True)
class CellResult:
    """What running one cell produced.

    stderr holds what the code wrote to stderr followed by the traceback, as a real interpreter would show it.
    error is one line saying what went wrong (the traceback's last line, or the harness's own explanation for
    a timeout, a kill or an out-of-memory); None when status is "ok".
    truncated means the harness stopped reading output at the byte cap.
    restarted means the session died during this cell and was rebuilt by replaying its earlier successful cells.
    reason says why the harness, not the code, ended the cell: "timeout", "output_limit", "control_limit" (the
    session sent more than the harness keeps) or "protocol" (it broke the sandbox protocol); None otherwise.
    """

    status: Status
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    truncated: bool = False
    restarted: bool = False
    error: str | None = None
    reason: str | None = None
    traceback: str | None = None
    replay_note: str | None = None
    output_chars: int = 1000
    full_traceback: bool = False

    def feedback(self, max_chars: int | None = None, full_traceback: bool | None = None) -> str:
        """The text the model sees: output capped to max_chars (head and tail kept) and a short error."""
        limit = self.output_chars if max_chars is None else max_chars
        whole = self.full_traceback if full_traceback is None else full_traceback
        own_stderr = self.stderr
        if self.traceback and own_stderr.endswith(self.traceback):
            own_stderr = own_stderr[: -len(self.traceback)]
        output = self.stdout + (("\n" if self.stdout and not self.stdout.endswith("\n") else "") + own_stderr if own_stderr else "")
        if self.status == "ok":
            return cap_text(output, limit)
        if whole and self.traceback:
            problem = self.traceback.rstrip("\n")
        else:
            problem = self.error or f"the cell ended with status {self.status}"
        if self.restarted:
            problem += "\n(the session was restarted; variables from earlier successful cells were restored)"
        if self.truncated and self.status != "timeout":
            problem += "\n(output was cut at the harness's byte limit)"
        # The error itself must survive the cap: it is the part the model needs most.
        room = max(limit - len(problem) - 1, 0)
        head = cap_text(output, room) if room else ""
        return f"{head}\n{problem}" if head and not head.endswith("\n") else f"{head}{problem}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("output_chars")
        data.pop("full_traceback")
        return data


def cap_text(text: str, max_chars: int, marker: str = "\n... [{n} characters cut] ...\n") -> str:
    """Keep the head and the tail of text so that it fits in max_chars, saying how much was cut."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 0:
        return ""
    keep = max_chars - len(marker.format(n=len(text)))  # the longest the note can be
    if keep <= 0:
        return text[:max_chars]
    head, tail = keep - keep // 2, keep // 2
    return text[:head] + marker.format(n=len(text) - keep) + (text[len(text) - tail:] if tail else "")


def last_traceback_line(traceback_text: str) -> str:
    """The `ExceptionType: message` line a traceback ends with."""
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
