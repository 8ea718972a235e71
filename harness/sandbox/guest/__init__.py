"""The sandbox's own side: modules that run outside the harness process, with the standard library only.

They never import `harness`: each runs in an interpreter that holds nothing of the harness (`python -I`),
with this folder as its one sys.path entry beside the standard library, so they import each other by bare
name (`import kernel`). Who puts the folder on sys.path:
  * zygote.py, the local backend's fork server (local.py starts it): it imports jail, host_files,
    session_cgroup, syscall_filter, kernel and supervisor before it forks any session;
  * supervisor.py, a Docker session's REPL (`python -I /opt/harness/supervisor.py`): the image holds it flat
    in /opt/harness with the siblings it imports (image.py, SESSION_SCRIPTS);
  * the host's short scripts: the hardening probe (isolation.py) and the kill sweep (docker_backend.py).
The host itself imports only modules that import no sibling (kernel's frames, jail's devices, host_files,
session_cgroup, syscall_filter), as `harness.sandbox.guest.NAME`. tests/sandbox/test_guest_boundary.py
checks that every module here holds to this.
"""

from pathlib import Path

GUEST_DIR = Path(__file__).parent
