"""The content half of the test-split guard: the training samples' questions against every benchmark's.

A file name says nothing about what a file holds (a renamed ``math500.jsonl``, ``task: gsm8k`` with a
``local_file`` override), so the trainers also compare questions. A question is compared by its
fingerprint: NFKC-normalised (full-width digits, ligatures and non-breaking spaces fold to their plain
forms), case-folded, and every run of whitespace collapsed to one space, ends stripped. A copy with
extra spaces, line breaks or other capitals is still caught; a paraphrase is not.

The benchmarks are the built-in tasks that declare no ``split`` and no generator (math500, aime24,
aime25, amc23, gsm8k), loaded with the tasks' own loader from the config's ``data_dir`` (else the hub),
once per data folder in a process (~2K questions). One that cannot be loaded is *unchecked*: the run
goes on, with one warning line naming it and the record saying so, because a machine that holds only
the training pool must still be able to train; the record shows a reader that the check was partial.
"""

from __future__ import annotations

import functools
import tomllib
import unicodedata

from harness.eval.tasks import TaskError, available_tasks, load_samples, load_task, task_data_dir


def fingerprint(question: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", question).casefold().split())


def benchmark_names() -> list[str]:
    """The built-in tasks that are benchmarks: no declared ``split`` (so test) and not procedural."""
    specs = {name: tomllib.loads(path.read_text(encoding="utf-8")) for name, path in available_tasks().items()}
    return [name for name, spec in specs.items() if "split" not in spec and "generator" not in spec]


@functools.cache
def _benchmark_fingerprints(data_dir: str | None) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    loaded, unchecked = {}, {}
    for name in benchmark_names():
        try:
            samples, _ = load_samples(load_task(name), data_dir)
        except TaskError as exc:
            unchecked[name] = str(exc)
            continue
        loaded[name] = frozenset(fingerprint(sample.question) for sample in samples)
    return loaded, unchecked


def benchmark_fingerprints(data_dir) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """({benchmark: its questions' fingerprints}, {benchmark that could not be loaded: why})."""
    directory = task_data_dir(data_dir)
    loaded, unchecked = _benchmark_fingerprints(str(directory) if directory else None)
    return loaded, dict(unchecked)


def benchmark_overlap(samples, data_dir) -> tuple[dict[str, int], dict[str, str]]:
    """({benchmark: how many distinct training questions it also holds}, {unchecked benchmark: why})."""
    loaded, unchecked = benchmark_fingerprints(data_dir)
    questions = {fingerprint(sample.question) for sample in samples}
    return {name: len(questions & benchmark) for name, benchmark in loaded.items()}, unchecked
