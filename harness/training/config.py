"""What every trainer's configuration shares: one dataclass per trainer whose fields carry help text and
bounds, loaded from a preset and a YAML file of overrides, with unknown keys and bad values an error
(``<field>: <why>``, prefixed by the file or flag that set it) rather than a traceback mid-run."""

from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import asdict, field, fields, replace
from pathlib import Path
from typing import ClassVar

# YAML 1.2 float forms PyYAML (a YAML 1.1 reader) leaves as strings, such as 1e-6 or 5e3.
YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)")
TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping", list: "a list"}


def option(default, help: str, *, minimum=None, maximum=None, above=None, choices=None):
    """A dataclass field with its help text (``--help-config`` prints it) and the bounds every value must
    meet: ``minimum``/``maximum`` inclusive, ``above`` exclusive, ``choices`` (for a list: of each item)."""
    bounds = {"minimum": minimum, "maximum": maximum, "above": above, "choices": tuple(choices) if choices else None}
    metadata = {"help": help, **{k: v for k, v in bounds.items() if v is not None}}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def checked(kind, value, metadata: dict):
    """``value`` as a field of type ``kind`` with these bounds (an int widened to float), or ValueError(why)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(option for option in options if option is not type(None))
    if kind is float and isinstance(value, str) and YAML12_FLOAT.fullmatch(value):
        value = float(value)
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    # bool is an int subclass: True must not pass for a step count, nor 1 for a switch.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"must be {TYPE_NAMES.get(kind, kind.__name__)} (got {value!r}, a {type(value).__name__})")
    if kind is float and math.isnan(value):
        raise ValueError("must be a number (got nan)")
    if "choices" in metadata:
        for item in value if isinstance(value, list) else [value]:
            if item not in metadata["choices"]:
                raise ValueError(f"must be one of {', '.join(map(str, metadata['choices']))} (got {item!r})")
    if "minimum" in metadata and value < metadata["minimum"]:
        raise ValueError(f"must be at least {metadata['minimum']} (got {value!r})")
    if "maximum" in metadata and value > metadata["maximum"]:
        raise ValueError(f"must be at most {metadata['maximum']} (got {value!r})")
    if "above" in metadata and value <= metadata["above"]:
        raise ValueError(f"must be above {metadata['above']} (got {value!r})")
    return value


class TrainerConfig:
    """Mixed into a trainer's config dataclass: ``COMMAND`` names the CLI command, ``PRESETS`` its presets,
    ``RESUME_MAY_CHANGE`` the fields a ``--resume`` may change without ``--allow-config-change``."""

    COMMAND: ClassVar[str]
    PRESETS: ClassVar[dict[str, dict]]
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        """Every field checked against its type and bounds, so a bad value fails here, not mid-run."""
        kinds = typing.get_type_hints(type(self))
        for spec in fields(self):
            try:
                setattr(self, spec.name, checked(kinds[spec.name], getattr(self, spec.name), spec.metadata))
            except ValueError as exc:
                raise ValueError(f"{spec.name}: {exc}") from None

    @classmethod
    def from_dict(cls, values: dict):
        unknown = sorted(map(str, set(values) - {f.name for f in fields(cls)}))
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)} (see `harness {cls.COMMAND} --help-config`)")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, base=None):
        """The fields a YAML file sets, over ``base`` (a preset) or the defaults; errors name the file."""
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValueError(f"{path}: not valid YAML ({getattr(exc, 'problem', None) or 'parse error'}{where})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config file is a mapping of field: value")
        try:
            return cls.from_dict({**(base.to_dict() if base else {}), **values})
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def preset(cls, name: str):
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(cls.PRESETS)}")
        return cls.from_dict(cls.PRESETS[name])

    @classmethod
    def resolve(cls, preset_name: str | None, config_file: Path | None, **overrides):
        """The CLI's order: preset (or defaults), then the YAML file, then flags given (None = not given),
        then a rehearsal's HARNESS_OVERRIDES section (harness/overrides.py); a bad value names its source."""
        from harness.overrides import ENV, overrides_for

        config = cls.preset(preset_name) if preset_name else cls()
        if config_file:
            config = cls.from_yaml(config_file, base=config)
        for name, value in overrides.items():
            try:
                config = config.updated(**{name: value})
            except ValueError as exc:
                raise ValueError(f"--{name.replace('_', '-')}: {exc}") from None
        rehearsal = overrides_for(cls.COMMAND)
        if unknown := sorted(set(rehearsal) - set(config.to_dict())):
            raise ValueError(f"{ENV}: {cls.COMMAND} has no field {unknown[0]!r}")
        try:
            return config.updated(**rehearsal)
        except ValueError as exc:
            raise ValueError(f"{ENV}: {exc}") from None

    @classmethod
    def help_text(cls, preset_name: str | None = None, config_file: Path | None = None, **overrides) -> str:
        """Every field with its default, bounds and help. Given a preset, a YAML file or flags (None = not
        given), also the value they resolve to and which of them set it, in `resolve`'s order."""
        defaults = cls().to_dict()
        layers = [(f"--preset {preset_name}", cls.resolve(preset_name, None))] if preset_name else []
        if config_file:
            layers.append((f"--config {config_file}", cls.resolve(preset_name, config_file)))
        if any(value is not None for value in overrides.values()):
            layers.append(("flag", cls.resolve(preset_name, config_file, **overrides)))
        values, set_by = defaults, {}
        for label, config in layers:
            resolved = config.to_dict()
            set_by.update({name: label if label != "flag" else f"--{name.replace('_', '-')}"
                           for name, value in resolved.items() if value != values[name]})
            values = resolved
        lines = [f"{cls.COMMAND} presets: {', '.join(cls.PRESETS)} (--help-config --preset NAME shows one)"]
        if layers:
            changed = ", ".join(set_by) or "none"
            sources = " + ".join("flags" if label == "flag" else label for label, _ in layers)
            lines.append(f"{cls.COMMAND} config with {sources}; fields changed from the defaults: {changed}")
        for spec in fields(cls):
            bounds = [f"{word} {spec.metadata[key]}" for key, word in (("minimum", ">="), ("maximum", "<="), ("above", ">"))
                      if key in spec.metadata]
            if "choices" in spec.metadata:
                bounds.append("one of " + ", ".join(map(str, spec.metadata["choices"])))
            limits = f" [{'; '.join(bounds)}]" if bounds else ""
            origin = (f"= {values[spec.name]!r} (set by {set_by[spec.name]}; default {defaults[spec.name]!r})"
                      if spec.name in set_by else f"(default {defaults[spec.name]!r})")
            lines.append(f"{spec.name} {origin}{limits}: {spec.metadata['help']}")
        return "\n".join(lines)

    def updated(self, **overrides):
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)
