"""One `harness eval` invocation as a library call: one model and one method over several tasks.

An Evaluation loads the method, the tasks and their data, checks the output folder, sets the torch threads,
then opens the sandbox (for a method with tools) and the model backend, in that order, so that bad input is
refused before anything slow starts. Each task is then one EvalRun (runner.py); after each run the task
folder's metacognition report is written once its cot, tir and auto runs all exist.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import ContextManager

from harness import models
from harness.eval.metacognition import write_if_complete
from harness.eval.methods import MethodError, load_method
from harness.eval.run_lock import RunLockedError
from harness.eval.runner import EvalConfig, EvalRun
from harness.eval.store import RunMismatchError, RunStoreError
from harness.eval.tasks import TaskError, load_samples, load_task
from harness.models import BackendError, parse_model_spec
from harness.models.threads import available_cpus, set_torch_threads
from harness.sandbox import SandboxLimits, SandboxUnavailable, open_sandbox

# What an evaluation raises for bad input or an unusable environment; each message is one line for the user.
EVAL_ERRORS = (TaskError, MethodError, BackendError, SandboxUnavailable, RunMismatchError, RunLockedError,
               RunStoreError)
Progress = Callable[[int, int, int], None]  # (done, total, correct) after each chunk of a run


def environment() -> dict:
    """Versions and the commit a run is made with (recorded in run.json)."""
    import importlib.metadata as metadata

    import harness

    versions = {}
    for package in ("torch", "transformers", "vllm", "math-verify", "sympy", "docker"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    try:
        commit = subprocess.run(["git", "-C", str(Path(harness.__file__).parent), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"harness_version": harness.__version__, "python": platform.python_version(), "packages": versions,
            "git_commit": commit}


def prepare_output_dir(output_dir: Path) -> None:
    """Refuse an unusable output folder before a model is loaded and samples are generated for nothing."""
    if output_dir.exists() and not output_dir.is_dir():
        raise RunStoreError(f"--output-dir {output_dir} is a file, not a folder")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunStoreError(f"cannot create --output-dir {output_dir}: {exc.strerror}") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise RunStoreError(f"--output-dir {output_dir} is not writable")


@contextlib.contextmanager
def _no_progress(label: str) -> Iterator[Progress | None]:
    yield None


class Evaluation:
    """``config`` holds the settings of every run; its ``task`` may list several tasks (comma-separated) and its
    ``method`` may be a prompt file: each run's own config holds the task's and the method's name. ``columns``
    name a custom task's question/answer/id columns. Use as a context manager: it closes the sandbox and the
    backend."""

    def __init__(self, config: EvalConfig, threads: int = 0, **columns: str | None) -> None:
        self.method = load_method(config.method)
        self.tasks = [load_task(name, **columns) for name in filter(None, config.task.split(","))]
        self.datasets = [load_samples(spec, config.data_dir) for spec in self.tasks]
        prepare_output_dir(Path(config.output_dir))
        self.config = replace(config, method=self.method.name)
        local_torch = parse_model_spec(config.model)[0] in ("hf", "smollm2")
        cpus = set_torch_threads(threads or None) if local_torch else available_cpus()
        self.environment = {**environment(), "cpus": cpus}
        tools = self.method.tools
        self.sandbox = open_sandbox(config.sandbox, SandboxLimits(timeout_s=config.sandbox_timeout)) if tools else None
        try:
            # Looked up on the package at call time, so a loader put in its place (a scripted model) is the one used.
            self.backend = models.load_backend(config.model, config.model_args)
        except BaseException:
            self._close_sandbox()
            raise

    def runs(self, overwrite: bool = False, progress: Callable[[str], ContextManager[Progress | None]] = _no_progress,
             warn: Callable[[str], None] | None = None) -> Iterator[tuple[EvalRun, dict]]:
        """Run each task in turn, yielding the run and its results once results.json is written.
        ``progress(label)`` wraps a run's generation and gives its progress callback; ``warn`` hears of sample
        lines that were set aside."""
        for spec, (samples, fingerprint) in zip(self.tasks, self.datasets):
            config = replace(self.config, task=spec.name)
            run = EvalRun(config, spec, self.method, samples, fingerprint, self.backend, self.sandbox)
            started = time.perf_counter()
            try:
                warning = run.open(self.environment, overwrite=overwrite)
                if warning and warn:
                    warn(warning)
                with progress(f"{spec.name}/{self.method.name}") as report:
                    records = run.execute(self.environment, progress=report)
                results = run.write_results(records, round(time.perf_counter() - started, 2))
            finally:
                run.close()
            write_if_complete(run.directory.parent)
            yield run, results

    def _close_sandbox(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()

    def __enter__(self) -> Evaluation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._close_sandbox()
        finally:
            self.backend.close()
