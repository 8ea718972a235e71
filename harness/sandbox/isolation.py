"""Which isolation the local backend can have on this host, and why not more: probed, not assumed."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field

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
_NAMESPACES = 0x00020000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000  # mnt, uts, ipc, pid, net
_USER_NAMESPACE = 0x10000000


@dataclass
class IsolationReport:
    mode: str  # "namespaces" (root: own uid per session), "user-namespace" (unprivileged), or "none"
    reasons: list[str] = field(default_factory=list)  # why a stronger mode is not available


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
