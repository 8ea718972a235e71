"""Tasks: a declarative definition (``tasks/<name>.toml``) plus the scorer's rules for its answers.

A definition names where the data comes from (a local JSONL file under ``--data-dir`` /
``$HARNESS_DATA_DIR`` / ``shared/data`` beside a source checkout, else a Hugging Face hub dataset, or a ``generator`` function
``"module:function"`` called with ``generator_args`` for procedural tasks), which fields hold the
id, question and answer, and which metadata fields results are broken down by. Any other dataset is a custom task:
a JSONL/parquet path or hub id plus field names, graded with MATH rules.

A task's version is its declared version plus a hash of its definition and the grader's rules,
so it changes whenever either does.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.grading.scorer import GRADER_VERSION
from harness.io import read_jsonl
from harness.resources import resource_dir


class TaskError(ValueError):
    """A task could not be found or loaded; the message says how to fix it."""


@dataclass(frozen=True)
class Sample:
    id: str
    question: str
    answer: object
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    version: str
    grader: str
    fields: dict
    local_file: str | None = None
    hub: dict | None = None
    breakdown: tuple[str, ...] = ()
    source: str = ""
    generator: str | None = None
    generator_args: dict = field(default_factory=dict)


def _version(declared: object, definition: str) -> str:
    digest = hashlib.sha256(f"{definition}\n{GRADER_VERSION}".encode()).hexdigest()[:8]
    return f"{declared}-{digest}"


def available_tasks() -> dict[str, Path]:
    return {path.stem: path for path in sorted(resource_dir("tasks").glob("*.toml"))}


def load_task(name: str, **custom_fields: str | None) -> TaskSpec:
    """A built-in task by name, or a custom task from a path / hub id (``custom_fields`` names its columns)."""
    tasks = available_tasks()
    if name in tasks:
        text = tasks[name].read_text(encoding="utf-8")
        spec = tomllib.loads(text)
        return TaskSpec(
            name=spec["name"],
            description=spec.get("description", ""),
            version=_version(spec.get("version", 1), text),
            grader=spec.get("grader", "math500"),
            fields=spec["fields"],
            local_file=spec.get("local_file"),
            hub=spec.get("hub"),
            breakdown=tuple(spec.get("breakdown", ())),
            source=str(tasks[name]),
            generator=spec.get("generator"),
            generator_args=spec.get("generator_args", {}),
        )
    fields = {"question": custom_fields.get("question_field") or "question", "answer": custom_fields.get("answer_field") or "answer"}
    if custom_fields.get("id_field"):
        fields["id"] = custom_fields["id_field"]
    is_file = name.endswith((".jsonl", ".json", ".parquet")) or Path(name).exists()
    if not is_file and "/" not in name:
        raise TaskError(f"unknown task {name!r}; built-in tasks: {', '.join(tasks)} (or give a JSONL/parquet path or a hub id)")
    definition = json.dumps({"source": name, "fields": fields}, sort_keys=True)
    return TaskSpec(
        name=Path(name).stem if is_file else name.replace("/", "__"),
        description=f"custom task from {name}",
        version=_version("custom", definition),
        grader="math500",
        fields=fields,
        local_file=str(Path(name).resolve()) if is_file else None,
        hub=None if is_file else {"path": name, "split": custom_fields.get("split") or "test"},
        source=name,
    )


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import datasets

        return list(datasets.load_dataset("parquet", data_files=str(path), split="train"))
    try:
        return [row for _, row in read_jsonl(path)]
    except ValueError as exc:
        raise TaskError(str(exc)) from None


def _read_hub(hub: dict) -> list[dict]:
    try:
        import datasets

        args = [hub["path"]] + ([hub["name"]] if hub.get("name") else [])
        return list(datasets.load_dataset(*args, split=hub.get("split", "test")))
    except Exception as exc:  # noqa: BLE001 - any hub failure gets the same advice
        raise TaskError(f"could not load {hub['path']} from the Hugging Face hub ({type(exc).__name__})") from None


def checkout_data_dir() -> Path | None:
    """``shared/data`` beside the source checkout this harness runs from (the layout `make eval` and the
    tests use), or None for an installed wheel."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout.parent / "shared" / "data" if (checkout / "pyproject.toml").is_file() else None


def resolve_data_dir(data_dir: str | Path | None) -> tuple[Path | None, str]:
    """The folder of the tasks' local files and where that choice came from: ``--data-dir``, else
    ``$HARNESS_DATA_DIR``, else ``shared/data`` beside the checkout when it exists. With none, the
    text says every place that was looked at."""
    from_env = os.environ.get("HARNESS_DATA_DIR")
    if data_dir or from_env:
        chosen = data_dir or from_env
        # The CLI's --data-dir reads the variable itself, so a value equal to it came from there.
        return Path(chosen), f"{'$HARNESS_DATA_DIR' if str(chosen) == from_env else '--data-dir'} {chosen}"
    beside = checkout_data_dir()
    if beside is not None and beside.is_dir():
        return beside, f"{beside} (shared/data beside the checkout)"
    looked = f", {beside} does not exist" if beside is not None else ""
    return None, f"no data folder: no --data-dir, $HARNESS_DATA_DIR unset{looked}"


def task_data_dir(data_dir: str | Path | None) -> Path | None:
    return resolve_data_dir(data_dir)[0]


def _generate(task: TaskSpec, data_dir: str | Path | None) -> list[dict]:
    """The generator's rows; one that takes ``data_dir`` (a pool deduplicated against the benchmarks) gets the
    folder the other tasks' files come from, unless its arguments name one."""
    import importlib
    import inspect

    module_name, _, function_name = task.generator.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise TaskError(f"task {task.name}: cannot load its generator {task.generator!r} ({exc})") from None
    arguments = dict(task.generator_args)
    if "data_dir" in inspect.signature(function).parameters:
        arguments.setdefault("data_dir", None if data_dir is None else str(data_dir))
    return list(function(**arguments))


def load_samples(task: TaskSpec, data_dir: str | Path | None = None) -> tuple[list[Sample], str]:
    """The task's samples and a fingerprint of the data they came from."""
    if task.generator:
        return _to_samples(task, _generate(task, data_dir))
    directory = task_data_dir(data_dir)
    local = None
    if task.local_file:
        local = Path(task.local_file) if Path(task.local_file).is_absolute() else (directory / task.local_file if directory else None)
    if local is not None and local.is_file():
        rows = read_rows(local)
    elif local is not None and Path(task.local_file).is_absolute():
        raise TaskError(f"data file not found: {local}")
    elif task.hub is not None:
        try:
            rows = _read_hub(task.hub)
        except TaskError as exc:
            hint = (f"put {task.local_file} in a folder and pass --data-dir (or set HARNESS_DATA_DIR)" if task.local_file
                    else "check the hub id")
            where = f"; {local} does not exist" if local is not None else ""
            raise TaskError(f"{exc}{where}: {hint}") from None
    else:
        raise TaskError(f"task {task.name} has no data: pass --data-dir with {task.local_file}")
    return _to_samples(task, rows)


def _to_samples(task: TaskSpec, rows: list[dict]) -> tuple[list[Sample], str]:
    if not rows:
        raise TaskError(f"task {task.name} has no samples ({task.local_file or task.source} is empty)")
    samples = []
    for index, row in enumerate(rows):
        missing = [role for role in ("question", "answer") if task.fields[role] not in row]
        if missing:
            raise TaskError(f"{task.name} row {index + 1}: missing field(s) {', '.join(task.fields[m] for m in missing)} "
                            f"(have: {', '.join(row)})")
        sample_id = str(row[task.fields["id"]]) if "id" in task.fields and task.fields["id"] in row else str(index)
        metadata = {key: row[key] for key in task.breakdown if key in row}
        samples.append(Sample(sample_id, str(row[task.fields["question"]]), row[task.fields["answer"]], metadata))
    ids = [sample.id for sample in samples]
    if len(set(ids)) != len(ids):
        raise TaskError(f"{task.name}: sample ids are not unique; name a unique id field")
    fingerprint = hashlib.sha256(json.dumps([(s.id, s.question, str(s.answer)) for s in samples]).encode()).hexdigest()[:16]
    return samples, fingerprint
