"""Safe, fast, stateful execution of model-written Python: local namespaces or real Docker containers.

    from harness.sandbox import get_sandbox, SandboxLimits
    with get_sandbox("local", limits=SandboxLimits(timeout_s=5)) as sandbox, sandbox.session() as session:
        session.run("x = 6 * 7")
        print(session.run("print(x)").feedback())
"""

from __future__ import annotations

import gc
from typing import Any

from harness.sandbox.base import Sandbox
from harness.sandbox.limits import SandboxLimits
from harness.sandbox.result import CellResult
from harness.sandbox.session import Session

BACKENDS = ("local", "docker")


def get_sandbox(backend: str = "local", limits: SandboxLimits | None = None, **options: Any) -> Sandbox:
    """A sandbox of the given backend; options go to its constructor (see LocalSandbox and DockerSandbox)."""
    if backend == "local":
        from harness.sandbox.local import LocalSandbox

        return LocalSandbox(limits, **options)
    if backend == "docker":
        from harness.sandbox.docker_backend import DockerSandbox

        return DockerSandbox(limits, **options)
    raise ValueError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")


class SandboxUnavailable(RuntimeError):
    """A sandbox could not be started here; the message is one line that names the backend and why."""


def open_sandbox(backend: str = "local", limits: SandboxLimits | None = None, **options: Any) -> Sandbox:
    """`get_sandbox`, with any failure to start turned into one SandboxUnavailable line. The exception and its
    traceback are dropped and collected before that is raised: they hold the half-built sandbox, whose close at
    interpreter exit would otherwise fail loudly."""
    try:
        return get_sandbox(backend, limits, **options)
    except Exception as exc:  # noqa: BLE001 - any engine failure becomes one line for the user
        lines = str(exc).strip().splitlines()
        problem = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    gc.collect()
    raise SandboxUnavailable(f"the {backend} sandbox is unavailable ({problem}); see `harness sandbox doctor`")


__all__ = ["BACKENDS", "CellResult", "Sandbox", "SandboxLimits", "SandboxUnavailable", "Session", "get_sandbox",
           "open_sandbox"]
