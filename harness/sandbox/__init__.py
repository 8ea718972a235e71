"""Safe, fast, stateful execution of model-written Python: local namespaces or real Docker containers.

    from harness.sandbox import get_sandbox, SandboxLimits
    with get_sandbox("local", limits=SandboxLimits(timeout_s=5)) as sandbox, sandbox.session() as session:
        session.run("x = 6 * 7")
        print(session.run("print(x)").feedback())
"""

from __future__ import annotations

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


__all__ = ["BACKENDS", "CellResult", "Sandbox", "SandboxLimits", "Session", "get_sandbox"]
