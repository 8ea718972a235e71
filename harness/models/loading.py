"""Turn a ``--model`` string into a loaded backend.

Syntax: ``hf:PATH_OR_NAME``, ``vllm:PATH_OR_NAME``, ``openai:MODEL@BASE_URL`` (e.g.
``openai:qwen@http://127.0.0.1:8000/v1``), or ``smollm2`` (the embedded default model, run with hf).
A string without a prefix that names an existing folder is taken as ``hf:``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.models.types import BackendError, ModelBackend

BACKENDS = ("hf", "vllm", "openai", "smollm2")
# An EM iteration's model folder (harness/em/mstep.py iteration_folder): its name alone says nothing.
ITERATION_MODEL = re.compile(r"(?P<run>.+)/iter-(?P<iteration>\d+)")


def local_model_name(path: str | Path) -> str:
    """A model folder's name in results and on boards: the folder's name, and for an EM iteration's model
    (``OUT/iter-N``) the run's folder with it, ``OUT/iter-N``, so two runs' iterations stay apart."""
    path = Path(str(path).rstrip("/"))
    named = f"{path.parent.name}/{path.name}"
    return named if ITERATION_MODEL.fullmatch(named) else path.name


def iteration_model(name: str) -> tuple[str, int] | None:
    """(run, N) for a model named ``RUN/iter-N`` (``local_model_name``), else None."""
    match = ITERATION_MODEL.fullmatch(name)
    return (match["run"], int(match["iteration"])) if match else None


def parse_model_spec(spec: str) -> tuple[str, str]:
    """Split ``"kind:target"`` into (kind, target); raises BackendError for anything unrecognised."""
    spec = (spec or "").strip()
    if not spec:
        raise BackendError("empty model spec; use hf:PATH, vllm:NAME, openai:MODEL@URL or smollm2")
    if spec in ("smollm2", "smollm2:"):
        return "smollm2", ""
    kind, sep, target = spec.partition(":")
    if sep and kind in BACKENDS:
        if not target and kind != "smollm2":
            raise BackendError(f"model spec {spec!r} names no model after '{kind}:'")
        return kind, target
    if Path(spec).expanduser().is_dir():
        return "hf", spec
    raise BackendError(
        f"unknown model spec {spec!r}: start it with one of {', '.join(k + ':' for k in BACKENDS[:3])} or use smollm2"
    )


def load_backend(spec: str, model_args: dict[str, Any] | None = None) -> ModelBackend:
    """Load the model a spec names. Every failure the user can fix is a one-line BackendError."""
    kind, target = parse_model_spec(spec)
    if kind == "hf":
        from harness.models.hf import HFBackend

        return HFBackend(target, model_args)
    if kind == "smollm2":
        from harness.models.smollm2 import load_smollm2

        return load_smollm2(model_args)
    if kind == "vllm":
        from harness.models.vllm_backend import VLLMBackend

        return VLLMBackend(target, model_args)
    from harness.models.openai_backend import OpenAIBackend

    return OpenAIBackend.from_spec(target, model_args)
