"""What the host accepts from a sandbox kernel: capped frames and validated replies, nothing else.

Everything a kernel writes is read as hostile: a session's supervisor runs as the session's uid, next to
the model's code. So every buffer the host keeps for a session is capped (a frame header that announces
gigabytes is refused before a byte of its body is read), and any reply that is not exactly what the kernel
sends becomes a ProtocolError, which the session turns into the cell's failure, never into an exception.
"""

from __future__ import annotations

import json

from harness.sandbox.guest.kernel import FRAME_HEADER, encode_frame
from harness.sandbox.limits import SandboxLimits

# What a kernel itself may report for a cell; everything else (timeout, kill) is the host's to decide.
KERNEL_STATUSES = ("ok", "error", "oom", "died")
CONTROL_MARGIN = 64 * 1024  # room for the JSON around a traceback that is itself capped by the output cap


class ProtocolError(Exception):
    """The kernel's side of the channel broke the protocol: the cell's failure, reason "protocol"."""


class PreviousCellLied(ProtocolError):
    """The worker was still inside the previous cell, whose report was therefore forged: its state is not kept."""


class ControlLimitExceeded(ProtocolError):
    """The kernel announced or sent more than the host keeps for one cell: the cell is killed."""


def control_cap(limits: SandboxLimits) -> int:
    """The most bytes the host buffers from a session's control channel at once."""
    return limits.max_output_bytes + CONTROL_MARGIN


class FrameReader:
    """Length-prefixed JSON frames fed in as they arrive, with a cap on what is kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > self.max_bytes + FRAME_HEADER.size:
            raise ControlLimitExceeded(f"the session sent more than {self.max_bytes} bytes of control frames")

    def pop(self) -> dict | None:
        """The next whole frame, or None until one has arrived."""
        if len(self.buffer) < FRAME_HEADER.size:
            return None
        size = FRAME_HEADER.unpack_from(self.buffer)[0]
        if size > self.max_bytes:
            raise ControlLimitExceeded(f"the session announced a {size}-byte control frame "
                                       f"(the limit is {self.max_bytes})")
        if len(self.buffer) < FRAME_HEADER.size + size:
            return None
        body = bytes(self.buffer[FRAME_HEADER.size: FRAME_HEADER.size + size])
        del self.buffer[: FRAME_HEADER.size + size]
        return decode_message(body)


def decode_message(body: bytes) -> dict:
    """One JSON object, or a ProtocolError."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"a control message is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"a control message is a {type(message).__name__}, not an object")
    return message


def cell_reply(message: dict) -> tuple[str, str | None, int | None]:
    """Status, traceback and (for "died") the exit code of a kernel's end-of-cell reply, all checked."""
    if "violation" in message:  # the supervisor caught the cell writing a report of its own
        error = PreviousCellLied if message.get("previous_cell_lied") is True else ProtocolError
        raise error(f"the cell broke the sandbox protocol: {str(message['violation'])[:200]}")
    status, traceback, exit_code = message.get("status"), message.get("traceback"), message.get("exit")
    if status not in KERNEL_STATUSES:
        raise ProtocolError(f"unknown cell status {str(status)[:40]!r}")
    if traceback is not None and not isinstance(traceback, str):
        raise ProtocolError(f"a traceback that is a {type(traceback).__name__}, not text")
    if exit_code is not None and (not isinstance(exit_code, int) or isinstance(exit_code, bool)):
        raise ProtocolError("an exit code that is not an integer")
    return status, traceback, exit_code


__all__ = ["ControlLimitExceeded", "FrameReader", "PreviousCellLied", "ProtocolError", "cell_reply", "control_cap", "decode_message",
           "encode_frame"]
