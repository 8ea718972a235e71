"""Which isolation the local backend can have on this host, and why not more: probed, not assumed."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field

from harness.sandbox.guest import GUEST_DIR

# Runs in a throwaway interpreter: a failed unshare must not disturb the harness process.
_PROBE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
flags = int(sys.argv[1])
if libc.unshare(flags) != 0:
    print(os.strerror(ctypes.get_errno())); sys.exit(1)
pid = os.fork()
if pid == 0:
    os._exit(0 if os.getpid() == 1 else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
# Session cgroups and the seccomp filter, each tried for real in a forked child of a throwaway interpreter.
_HARDENING_PROBE = """
import ctypes, json, os, sys
sys.path.insert(0, sys.argv[1])
import session_cgroup, syscall_filter
def in_child(action):
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if action() else 3)
        except BaseException:
            os._exit(4)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
def denied():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)
    syscall_filter.install()
    return libc.unshare(0x10000000) != 0 and ctypes.get_errno() == 1
found = {"seccomp": syscall_filter.unsupported_reason()}
if found["seccomp"] is None and not in_child(denied):
    found["seccomp"] = "a filter could not be installed, or did not deny unshare(CLONE_NEWUSER)"
try:
    parents = session_cgroup.prepare(os.getpid())
except OSError as exc:
    found["cgroup_error"] = str(exc)
else:
    ok = in_child(lambda: session_cgroup.create_and_enter(parents, "probe", 64 << 20, 8))
    session_cgroup.remove_all(parents, wait_s=1.0)
    found["cgroup" if ok else "cgroup_error"] = parents.describe() if ok else "a session cgroup could not be set up"
print(json.dumps(found))
"""
_NAMESPACES = 0x00020000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000  # mnt, uts, ipc, pid, net
_USER_NAMESPACE = 0x10000000


@dataclass
class IsolationReport:
    mode: str  # "namespaces" (root: own uid per session), "user-namespace" (unprivileged), or "none"
    reasons: list[str] = field(default_factory=list)  # why a stronger mode is not available


@dataclass
class Hardening:
    cgroup: str | None  # the hierarchy session cgroups use, or None
    cgroup_reason: str | None  # why there are none
    seccomp_reason: str | None  # None: the filter is installed in every session


@functools.lru_cache(maxsize=1)
def local_hardening() -> Hardening:
    """Whether sessions get a memory/pids cgroup and the seccomp filter here, as the zygote would set them up."""
    try:
        probe = subprocess.run([sys.executable, "-I", "-S", "-c", _HARDENING_PROBE, str(GUEST_DIR)],
                               capture_output=True, text=True, timeout=60)
        found = json.loads(probe.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        reason = f"probe failed: {exc}"
        return Hardening(None, reason, reason)
    return Hardening(found.get("cgroup"), found.get("cgroup_error"), found["seccomp"])


def _try_unshare(flags: int) -> str | None:
    try:
        probe = subprocess.run([sys.executable, "-I", "-S", "-c", _PROBE, str(flags)], capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"probe failed: {exc}"
    if probe.returncode == 0:
        return None
    return (probe.stdout.strip() or probe.stderr.strip()[-200:] or f"exit status {probe.returncode}")


@functools.lru_cache(maxsize=1)
def local_isolation() -> IsolationReport:
    if platform.system() != "Linux":
        return IsolationReport("none", [f"namespaces need Linux, this is {platform.system()}"])
    if not hasattr(os, "pidfd_open"):
        return IsolationReport("none", ["os.pidfd_open is missing (Linux >= 5.3 and Python >= 3.9 needed)"])
    reasons = []
    if os.geteuid() == 0:
        failure = _try_unshare(_NAMESPACES)
        if failure is None:
            return IsolationReport("namespaces")
        reasons.append(f"unshare of pid/net/mount namespaces as root failed: {failure}")
    else:
        reasons.append("not root, so sessions cannot get a uid of their own (a user namespace is the next best)")
    failure = _try_unshare(_NAMESPACES | _USER_NAMESPACE)
    if failure is None:
        return IsolationReport("user-namespace", reasons)
    reasons.append(f"unprivileged user namespaces are unavailable: {failure}")
    return IsolationReport("none", reasons)
