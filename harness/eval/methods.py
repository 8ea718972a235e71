"""Methods: how a question becomes a prompt, and whether code the model writes is executed.

Each method is a small TOML file in ``baselines/`` (system text, user template with ``{question}``,
and ``tools``); a custom prompt file of the same shape works too. The model's own chat template
wraps the messages when it has one. A method's version is a hash of its file, so any prompt edit
changes the run's config hash.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.resources import resource_dir


class MethodError(ValueError):
    """A method could not be found or read; the message says how to fix it."""


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    system: str
    user: str
    tools: bool
    version: str

    def messages(self, question: str) -> list[dict]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return messages + [{"role": "user", "content": self.user.replace("{question}", question)}]


def available_methods() -> dict[str, Path]:
    return {path.stem: path for path in sorted(resource_dir("baselines").glob("*.toml"))}


def load_method(name_or_path: str) -> Method:
    methods = available_methods()
    path = methods.get(name_or_path) or Path(name_or_path)
    if not path.is_file():
        raise MethodError(f"unknown method {name_or_path!r}; choose one of {', '.join(methods)} or give a prompt file (.toml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MethodError(f"{path}: not UTF-8 text") from None
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MethodError(f"{path}: not valid TOML ({exc})") from None
    if "{question}" not in spec.get("user", ""):
        raise MethodError(f"{path}: 'user' must be a template containing {{question}}")
    return Method(
        name=spec.get("name", path.stem),
        description=spec.get("description", ""),
        system=spec.get("system", ""),
        user=spec["user"],
        tools=bool(spec.get("tools", False)),
        version=hashlib.sha256(text.encode()).hexdigest()[:8],
    )
