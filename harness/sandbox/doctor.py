"""`harness sandbox doctor`: what isolation this host gives each backend, and why not more."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass, field

from harness.sandbox.isolation import local_hardening, local_isolation
from harness.sandbox.limits import SandboxLimits

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
    report.lines += hardening_lines(isolation.mode)
    say(docker_line())
    return report


def hardening_lines(mode: str) -> list[str]:
    """One line per mechanism behind the local backend's limits, active or not, and why not."""
    hardening, defaults = local_hardening(), SandboxLimits()
    lines = ["  sessions die with the harness: the zygote watches the harness's pidfd, launchers and kernels hold a "
             "parent-death signal (re-armed after the uid change)"]
    if hardening.cgroup:
        lines.append(f"  memory cgroup: active, {hardening.cgroup}: memory_mb per session on top of the interpreter, "
                     "shared memory, memfd and tmpfs pages included, no swap; pids.max per session; an equal CPU share "
                     "per session where the cpu controller is listed")
    else:
        lines.append(f"  memory cgroup: UNAVAILABLE ({hardening.cgroup_reason}): memory is capped per process "
                     "(RLIMIT_AS) only, so memfd and shared memory are not counted")
    if hardening.seccomp_reason is None:
        lines.append("  seccomp: active: no new namespaces (so no nested user namespace), no mounts, io_uring, "
                     "userfaultfd, bpf, perf_event_open or keyrings (EPERM)")
    else:
        lines.append(f"  seccomp: UNAVAILABLE ({hardening.seccomp_reason})")
    if mode == "none":
        lines.append("  scratch inodes and root contents: no jail in mode none (a host scratch directory, the whole host)")
        return lines
    lines.append(f"  scratch inodes: /tmp is a tmpfs of scratch_mb ({defaults.scratch_mb} MB) and scratch_files "
                 f"({defaults.scratch_files}) inodes")
    lines.append(f"  root contents: {root_summary()}")
    return lines


def root_summary() -> str:
    from harness.sandbox.guest.host_files import interpreter_files, package_locations
    from harness.sandbox.local import DEFAULT_PACKAGES

    try:
        files = interpreter_files(package_locations(list(DEFAULT_PACKAGES)))
    except (OSError, ImportError) as exc:
        return f"cannot be computed here ({exc}); sessions will not start"
    libraries = [path for path in files.read_only if path.startswith(("/usr/", "/lib")) and path != files.interpreter]
    return (f"the interpreter {files.interpreter}, its standard library, {', '.join(DEFAULT_PACKAGES)} and the "
            f"{len(libraries)} shared libraries they link (ldd), read-only; no /usr/bin, no rest of /usr/lib")


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
