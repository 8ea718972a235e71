"""What every trainer's configuration shares: one dataclass per trainer whose fields carry help text,
loaded from a preset and a YAML file of overrides, with unknown keys an error rather than ignored."""

from __future__ import annotations

from dataclasses import asdict, field, fields, replace
from pathlib import Path
from typing import ClassVar


def option(default, help: str):
    """A dataclass field with its help text (``--help-config`` prints it); list/dict defaults are copied."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


class TrainerConfig:
    """Mixed into a trainer's config dataclass: ``COMMAND`` names the CLI command, ``PRESETS`` its presets."""

    COMMAND: ClassVar[str]
    PRESETS: ClassVar[dict[str, dict]]

    @classmethod
    def from_dict(cls, values: dict):
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)} (see `harness {cls.COMMAND} --help-config`)")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, base=None):
        """The fields a YAML file sets, over ``base`` (a preset) or the defaults."""
        import yaml

        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config file is a mapping of field: value")
        return cls.from_dict({**(base.to_dict() if base else {}), **values})

    @classmethod
    def preset(cls, name: str):
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(cls.PRESETS)}")
        return cls.from_dict(cls.PRESETS[name])

    @classmethod
    def resolve(cls, preset_name: str | None, config_file: Path | None, **overrides):
        """The CLI's order: preset (or defaults), then the YAML file, then flags given (None = not given)."""
        config = cls.preset(preset_name) if preset_name else cls()
        if config_file:
            config = cls.from_yaml(config_file, base=config)
        return config.updated(**overrides)

    @classmethod
    def help_text(cls) -> str:
        defaults = cls().to_dict()
        return "\n".join(f"{f.name} (default {defaults[f.name]!r}): {f.metadata['help']}" for f in fields(cls))

    def updated(self, **overrides):
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)
