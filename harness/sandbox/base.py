"""What every backend shares: limits, the set of open sessions, and closing everything exactly once."""

from __future__ import annotations

import atexit
import threading
import weakref

from harness.sandbox.limits import SandboxLimits
from harness.sandbox.session import Session


class Sandbox:
    """Hands out stateful sessions. Use as a context manager (or call close()): closing it closes every session."""

    backend = "abstract"

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._lock = threading.Lock()
        self._sessions: set[Session] = set()
        self._closed = False
        # A forgotten close() must not leave processes or containers behind when the interpreter exits.
        self._atexit = weakref.WeakMethod(self.close)
        atexit.register(_close_if_alive, self._atexit)

    def session(self, display_last_expr: bool = True) -> Session:
        """A new session; with display_last_expr a cell's trailing expression is printed, as in a notebook."""
        if self._closed:
            raise RuntimeError(f"this {self.backend} sandbox is closed")
        session = self._new_session(display_last_expr)
        with self._lock:
            self._sessions.add(session)
        return session

    def run(self, code: str, timeout: float | None = None):
        """Run code as the only cell of a fresh session."""
        with self.session(display_last_expr=False) as session:
            return session.run(code, timeout)

    @property
    def open_sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _forget(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sessions = list(self._sessions)
        for session in sessions:
            session.close()
        self._shutdown()

    def _new_session(self, display_last_expr: bool) -> Session:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _close_if_alive(method_ref: weakref.WeakMethod) -> None:
    method = method_ref()
    if method is not None:
        method()
