"""A grading worker process: ``python -m harness.grading.worker REQUEST_FD RESULT_FD PARENT_PID``.

Started by ``pool.py`` as a plain subprocess (not multiprocessing), so the caller's ``__main__``
is never re-imported and no ``if __name__ == "__main__"`` guard is asked of users. It dies with its
parent: an idle worker sees end-of-file on its pipe, and on Linux a busy one (SymPy may compute for
minutes) is SIGKILLed by the kernel, through prctl's parent-death signal.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from multiprocessing.connection import Connection

_PR_SET_PDEATHSIG = 1

# SymPy can allocate without bound on hostile input; past this the worker gets MemoryError, not the host.
MEMORY_LIMIT_BYTES = 4 << 30

# The LaTeX parser (ANTLR, pure Python) builds its prediction cache lazily: a cold worker parses
# 3-10x slower than a warm one. Parsing one example of each common construct before serving takes
# about a second, off the clock (start-up happens in the background), and pays for itself quickly.
WARM_UP_PAIRS = [
    ("\\frac{3}{4}", "0.75"),
    ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt 3}{2}"),
    ("(-\\infty, -3] \\cup [2, \\infty)", "[-3,2)"),
    ("\\{1, 2, 3\\}", "1,2,3"),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"),
    ("x \\geq 5", "5 \\leq x"),
    ("y = 2x^2 + 3x - 1", "2x^2+3x-1"),
    ("\\text{(A)}", "A"),
    ("50\\%", "50"),
    ("3\\pi/2", "\\frac{3\\pi}{2}"),
    ("\\sin(x)^2 + \\cos^2 x", "1"),
    ("\\sum_{k=1}^{n} k", "\\frac{n(n+1)}{2}"),
    ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("2\\sqrt{2} + i", "\\sqrt{8}+i"),
    ("10^{-3}", "0.001"),
    ("\\log_2 8", "3"),
    ("90^\\circ", "\\frac{\\pi}{2}"),
]


def serve(requests: Connection, results: Connection) -> None:
    """Answer (response, gold, task) requests until the pipe closes. Never raises to the parent."""
    from harness.grading.scorer import Grade, score_response

    for pred, gold in WARM_UP_PAIRS:
        score_response(pred, gold)
    results.send("ready")
    while True:
        try:
            response, gold, task = requests.recv()
        except (EOFError, OSError):
            return
        try:
            result = score_response(response, gold, task).to_dict()
        except ValueError as exc:
            result = {"error": str(exc)}
        except BaseException:  # noqa: BLE001 - hostile input may raise anything (RecursionError, MemoryError)
            result = Grade(False, None, "parse_error").to_dict()
        try:
            results.send(result)
        except (EOFError, OSError):
            return


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the thread that started it ends; exit now if the parent is gone already."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        os._exit(1)


if __name__ == "__main__":
    die_with_parent(int(sys.argv[3]))
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ValueError, OSError):
        pass
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
