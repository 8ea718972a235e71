"""The sandbox's own side: modules that run outside the harness process, with the standard library only.

They never import `harness`: each runs as a script in an interpreter that holds nothing of the harness
(`python -I`), with this folder as the one entry on sys.path that is not the standard library's, so they
import each other by bare name (`import kernel`). The two entry points put the folder there themselves:
  * zygote.py: the local backend's fork server (started by local.py); it imports jail, host_files,
    session_cgroup, syscall_filter, kernel and supervisor before it forks any session;
  * supervisor.py: a Docker session's REPL (`python -I /opt/harness/supervisor.py`); the image holds it
    with kernel.py, syscall_filter.py and container_traces.py (image.py, `SESSION_SCRIPTS`).
The host imports the modules that import no sibling (kernel's frame format, jail's device list, host_files)
as `harness.sandbox.guest.NAME`. tests/sandbox/test_guest_boundary.py checks that all of them hold to this.
"""

from pathlib import Path

GUEST_DIR = Path(__file__).parent
