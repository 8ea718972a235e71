"""Grading under a hard deadline: a pool of worker processes that kills and replaces a stuck worker.

SymPy can run for minutes on hostile input, and math-verify's own timeouts use ``signal.alarm``,
which only works on the main thread and cannot interrupt C code. So every comparison runs in a
worker process (``worker.py``); the caller waits at most ``deadline_s`` for its answer, then SIGKILLs
the worker and starts a new one. A new worker needs about a second to import SymPy: that start-up
happens in the background and is never counted against a comparison's deadline.

The pool is safe to use from many threads: each call checks out an idle worker, so ``workers``
comparisons run in parallel.
"""

from __future__ import annotations

import atexit
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection

from harness.grading.scorer import Grade
from harness.models.threads import available_cpus

DEFAULT_DEADLINE_S = 5.0
_STARTUP_TIMEOUT_S = 120.0


class _Worker:
    def __init__(self) -> None:
        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness.grading.worker", str(request_read), str(result_write), str(os.getpid())],
            pass_fds=(request_read, result_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(request_read)
        os.close(result_write)
        self.requests = Connection(request_write, readable=False)
        self.results = Connection(result_read, writable=False)
        self.ready = False

    def wait_ready(self) -> None:
        if self.ready:
            return
        if not self.results.poll(_STARTUP_TIMEOUT_S) or self.results.recv() != "ready":
            raise RuntimeError("grading worker failed to start (is math-verify installed?)")
        self.ready = True

    def kill(self) -> None:
        """SIGKILL now; reap in the background (a worker that grew to gigabytes takes a while to free)."""
        if self.process.poll() is None:
            self.process.kill()
        self.requests.close()
        self.results.close()
        threading.Thread(target=self.process.wait, daemon=True).start()


class GradingPool:
    """Worker processes that score responses, each call bounded by ``deadline_s``.

    Only workers that finished starting are handed out, and as many warm spares as workers stand
    by, so the calls after a burst of timeouts do not wait for new workers to import SymPy.
    """

    def __init__(self, workers: int | None = None, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        self.workers = max(1, workers or available_cpus()["available"])
        self.deadline_s = deadline_s
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        self._spares: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._startup_error: str | None = None
        # Workers ask Linux to SIGKILL them when the thread that started them ends (prctl's parent-death
        # signal follows the forking thread, not the process), so one thread, alive as long as the
        # pool, starts them all: a pool whose process is killed takes even its busy workers with it.
        self._spawns: queue.Queue[bool | None] = queue.Queue()
        threading.Thread(target=self._spawner, name="grading-spawner", daemon=True).start()
        for _ in range(self.workers):
            self._start_in_background(as_spare=False)
            self._start_in_background(as_spare=True)

    def _start_in_background(self, as_spare: bool) -> None:
        self._spawns.put(as_spare)

    def _spawner(self) -> None:
        while (as_spare := self._spawns.get()) is not None:
            if not self._closed:
                self._spawn(as_spare)

    def _spawn(self, as_spare: bool) -> None:
        """On the spawner thread: start a worker, then wait for it to get ready on a thread of its own."""
        try:
            worker = _Worker()
        except Exception as exc:  # noqa: BLE001 - the spawner thread must outlive any one failed start
            self._fail_startup(f"cannot start a grading worker: {exc}")
            return
        with self._lock:
            self._all.add(worker)

        def get_ready() -> None:
            try:
                worker.wait_ready()
            except (RuntimeError, EOFError, OSError) as exc:
                self._fail_startup(str(exc) or "grading worker failed to start")
                return
            with self._lock:
                if self._closed:
                    worker.kill()
                    return
                if as_spare and len(self._spares) < self.workers:
                    self._spares.append(worker)
                    return
            self._idle.put(worker)

        threading.Thread(target=get_ready, daemon=True).start()

    def _fail_startup(self, message: str) -> None:
        self._startup_error = message
        self._idle.put(None)  # wakes a waiting caller, which raises

    def _retire(self, worker: _Worker) -> None:
        """Kill a stuck or dead worker; a warm spare takes its place and a new spare starts."""
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            spare = self._spares.pop() if self._spares else None
        if spare is not None:
            self._idle.put(spare)
            self._start_in_background(as_spare=True)
        else:
            self._start_in_background(as_spare=False)

    def _checkout(self) -> _Worker:
        if self._closed:
            raise RuntimeError("grading pool is closed")
        worker = self._idle.get()
        if worker is None:
            self._idle.put(None)
            raise RuntimeError(self._startup_error or "grading pool is closed")
        return worker

    def grade(self, response: str, gold: object, task: str = "math500") -> Grade:
        """Score one pair; a comparison past the deadline is a ``timeout`` (incorrect), never a hang."""
        worker = self._checkout()
        try:
            started = time.monotonic()
            worker.requests.send((str(response), gold, task))
            if not worker.results.poll(max(0.0, self.deadline_s - (time.monotonic() - started))):
                self._retire(worker)
                return Grade(False, None, "timeout")
            result = worker.results.recv()
        except (EOFError, OSError):
            self._retire(worker)
            return Grade(False, None, "parse_error")
        except BaseException:
            self._retire(worker)
            raise
        self._idle.put(worker)
        if "error" in result:
            raise ValueError(result["error"])
        return Grade(**result)

    def grade_many(self, items: Iterable[Sequence]) -> list[Grade]:
        """Score (response, gold[, task]) tuples in parallel over the workers, keeping input order."""
        items = [tuple(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.workers) as executor:
            return list(executor.map(lambda item: self.grade(*item), items))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all, self._spares = list(self._all), set(), []
        for worker in workers:
            worker.kill()
        self._idle.put(None)
        self._spawns.put(None)

    def __enter__(self) -> GradingPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_shared_pool: GradingPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> GradingPool:
    """The process-wide pool behind :func:`harness.grading.grade`, created on first use."""
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None or _shared_pool._closed:
            _shared_pool = GradingPool()
            atexit.register(_shared_pool.close)
        return _shared_pool
