"""`harness sandbox doctor`: what isolation this host gives each backend, and why not more."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass, field

from harness.sandbox.isolation import local_isolation

MODE_TEXT = {
    "namespaces": "pid, network, mount, IPC and UTS namespaces; a uid of its own per session; read-only minimal root",
    "user-namespace": "user, pid, network, mount, IPC and UTS namespaces; no capabilities; read-only minimal root "
                      "(the pids limit is weaker: sessions share the host uid's RLIMIT_NPROC)",
    "none": "NO isolation: rlimits and a scratch directory only",
}


@dataclass
class DoctorReport:
    lines: list[str] = field(default_factory=list)
    usable: bool = True


def diagnose() -> DoctorReport:
    report = DoctorReport()
    say = report.lines.append
    say(f"host: {platform.system()} {platform.release()} {platform.machine()}, Python {sys.version.split()[0]}, "
        f"uid {os.geteuid()}")
    isolation = local_isolation()
    say(f"local backend: {isolation.mode}: {MODE_TEXT[isolation.mode]}")
    for reason in isolation.reasons:
        say(f"  why not stronger: {reason}")
    say(docker_line())
    return report


def docker_line() -> str:
    try:
        import docker

        client = docker.from_env(timeout=10)
        version = client.version()
    except Exception as exc:
        hint = "dockerd is not installed" if shutil.which("dockerd") is None else "dockerd is installed but not running"
        return f"docker backend: unavailable: no engine answers ({exc.__class__.__name__}; {hint}; try scripts/docker-up.sh)"
    from harness.sandbox.image import DEFAULT_IMAGE, KIND_LABEL

    runtimes = sorted((client.info().get("Runtimes") or {}).keys())
    gvisor = "runsc" in runtimes
    try:
        kind = client.images.get(DEFAULT_IMAGE).labels.get(KIND_LABEL, "unknown")
        image = f"image {DEFAULT_IMAGE} ({kind})"
    except Exception:
        image = f"image {DEFAULT_IMAGE} missing (harness sandbox build-image)"
    return (f"docker backend: engine {version.get('Version')}, {image}; runtimes {', '.join(runtimes)}"
            f"{'' if gvisor else ' (no gVisor: apt-get install runsc, then restart dockerd via scripts/docker-up.sh)'}")
