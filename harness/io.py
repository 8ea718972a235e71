"""Small I/O helpers shared by commands: atomic writes and one-line fatal errors."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import NoReturn

import typer


def _current_umask() -> int:
    """The process umask. Linux shows it in /proc without changing it; elsewhere it can only be read by
    setting it, which is briefly visible to other threads."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_write_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` would leave: an existing file keeps its own, a new one gets 0666
    less the umask. mkstemp's temporary file is 0600, which os.replace would otherwise carry over."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never half of it, with the mode a
    plain write would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), _normal_write_mode(path))
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """``atomic_write_bytes`` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def fail(message: str) -> NoReturn:
    """Print one clear error line and exit non-zero (the CLI's contract for bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _finite(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text} is out of range for a float")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def read_jsonl(path: Path, finite: bool = False) -> list[tuple[int, dict]]:
    """(line number, object) for each non-empty line; ValueError names the file and line of a bad one.
    ``finite`` refuses NaN, Infinity and numbers that overflow to it (Python's json accepts them)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})") from None
    strict = {"parse_float": _finite, "parse_constant": _no_constant} if finite else {}
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, **strict)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: each line must be a JSON object")
        rows.append((number, row))
    return rows
