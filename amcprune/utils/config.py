"""Typed configuration loaded from dicts and YAML, with bad values reported in one line.

Every stage's config (training, pruning, trials, sweeps) is a pydantic model; ``YamlConfig`` gives them
the same ``from_dict`` / ``from_yaml`` / ``to_yaml`` and the same one-line ``AmcpruneError``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from amcprune.errors import AmcpruneError


def validation_message(exc: ValidationError) -> str:
    """All of a pydantic error's problems on one line: ``field.sub: message; other: message``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "config"
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts) or str(exc).splitlines()[0]


def read_yaml_mapping(path: str | os.PathLike, what: str = "config") -> dict[str, Any]:
    """The mapping in a YAML file (empty for an empty file); a missing file, bad YAML or a non-mapping
    raises one line."""
    path = Path(path)
    if not path.is_file():
        raise AmcpruneError(f"{path}: no such {what} file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise AmcpruneError(f"{path}: not valid YAML{where} ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AmcpruneError(f"{path}: expected a mapping of {what} options, found {type(data).__name__}")
    return data


class YamlConfig(BaseModel):
    """A strict config model: unknown keys are errors, so a typo in a YAML file never passes silently."""

    model_config = ConfigDict(extra="forbid")

    config_kind: ClassVar[str] = "config"
    """Named in error messages ("invalid train config: ...")."""
    yaml_section: ClassVar[str | None] = None
    """A file may hold the config under this key (a run's ``config.yaml`` holds ``train:``, ``prune:``...)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str | None = None):
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            # with a source (a file, a section of one) the field path alone says what is wrong
            where = f"{source}: " if source else f"invalid {cls.config_kind}: "
            raise AmcpruneError(f"{where}{validation_message(exc)}") from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike):
        data = read_yaml_mapping(path, cls.config_kind)
        if cls.yaml_section and isinstance(data.get(cls.yaml_section), dict):
            data = data[cls.yaml_section]
        return cls.from_dict(data, source=str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
