"""The local backend's weaker modes: a user namespace (what a non-root harness gets) and no isolation at all,
which must warn loudly. Both still bound time and clean up every process a cell started."""

from __future__ import annotations

import os
import textwrap
import time

import pytest

from harness.sandbox import SandboxLimits, get_sandbox

GRANDCHILD = textwrap.dedent("""
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            open('/proc/self/comm', 'w').write('sbx-straggler')
            time.sleep(1000)
        os._exit(0)
    os.wait()
    print('forked')
""")


def stragglers() -> list[str]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            alive = "State:\tZ" not in open(f"/proc/{entry}/status").read()  # a zombie is dead, awaiting its reap
            if open(f"/proc/{entry}/comm").read().strip() == "sbx-straggler" and alive:
                found.append(entry)
        except OSError:
            continue
    return found


@pytest.mark.parametrize("mode", ["user-namespace", "none"])
def test_weaker_local_modes_still_bound_and_clean_up(mode):
    if mode == "user-namespace" and os.geteuid() != 0:
        pytest.skip("forcing the mode is tested as root; non-root hosts get it by default")
    with pytest.warns(RuntimeWarning) if mode == "none" else _no_warning():
        sandbox = get_sandbox("local", isolation=mode, limits=SandboxLimits(timeout_s=3))
    with sandbox:
        with sandbox.session() as session:
            session.run("kept = 5")
            assert session.run(GRANDCHILD).stdout == "forked\n"
            time.sleep(0.1)
            assert stragglers() == []  # killed at the end of its cell
            started = time.monotonic()
            result = session.run("while True:\n    pass", timeout=1)
            assert result.status == "timeout" and time.monotonic() - started < 8
            assert session.run("print(kept)").stdout == "5\n"
            if mode == "user-namespace":
                assert "Read-only file system" in session.run("open('/usr/lib/x', 'w')").error
    assert stragglers() == []


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False
