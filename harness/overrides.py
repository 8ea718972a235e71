"""Rehearsing a recipe at a smaller size without editing its commands: ``HARNESS_OVERRIDES``.

``HARNESS_OVERRIDES=rehearsal.yaml`` names a YAML file of settings per command::

    train-sft: {model: tiny-model, steps: 2}
    train-em: {iterations: 2, queries_per_iteration: 4, rollout_backend: hf}
    eval: {limit: 2, max_tokens: 32}

Each command named there (``train-sft``, ``train-em``, ``train-rl``, ``eval``) applies its section last,
over its preset, ``--config`` file and flags, so a documented command line runs unchanged with only what
the file says replaced; every process of a launch reads the same file. The runs record the values they
used (a trainer's provenance.json and config, eval's run.json), and each command says on stderr which
fields the file set, so a rehearsal is never mistaken for the real run. The recipe test
(tests/recipe/test_recipe.py) runs docs/training-at-scale.md's recipe this way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "HARNESS_OVERRIDES"
COMMANDS = ("train-sft", "train-em", "train-rl", "eval")
# What this process has said already: a command resolves its config more than once (--help-config once per
# layer), and the line should be said once.
_announced: set[str] = set()


def overrides_for(command: str) -> dict:
    """The settings ``HARNESS_OVERRIDES`` gives ``command`` ({} when unset); ValueError for a file that is
    not a mapping of known commands to mappings."""
    path = os.environ.get(ENV)
    if not path:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{ENV}={path}: cannot read it ({error.__class__.__name__})") from None
    if not isinstance(data, dict) or not all(isinstance(section, dict) for section in data.values()):
        raise ValueError(f"{ENV}={path}: must map command names to mappings of settings")
    if unknown := sorted(set(data) - set(COMMANDS)):
        raise ValueError(f"{ENV}={path}: unknown command {unknown[0]!r} (known: {', '.join(COMMANDS)})")
    section = data.get(command, {})
    line = f"{ENV}={path}: {command} takes {', '.join(f'{k}={v}' for k, v in section.items())}"
    if section and line not in _announced:
        _announced.add(line)
        print(line, file=sys.stderr)
    return section
