"""``SweepConfig``: a grid of trials from YAML (pydantic v2).

::

    name: small                 # optional; the default output directory is <name or file stem>-out
    out: sweeps/small           # optional; --out overrides it
    base:                       # a TrialConfig (amcprune.pipeline.TrialConfig): what every trial shares
      data: {synth: tiny}
      model: {conv_filters: 8, dense_width: 16}
      train: {epochs: 2, batch_size: 256}
      prune: {max_drop: 0.05, max_epochs: 2}
    bits: [4, 6]                # grid axes by name (each optional) ...
    methods: [fmp, imp]
    archs: [vgg10]
    seeds: [0]
    grid:                       # ... and any trial field by dotted path
      train.lr: [0.01, 0.005]
    workers: 2                  # trials at a time (local executor); --workers overrides it
    executor: local             # local | ray; --executor overrides it
    resources: {num_cpus: 1, num_gpus: 0}   # per trial (Ray); defaults from the trial's device
    target: 0.56                # accuracy line of the Pareto plot (default: the trials' thresholds)
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from amcprune.errors import AmcpruneError
from amcprune.pipeline.config import TrialConfig, check_path
from amcprune.utils.config import read_yaml_mapping, validation_message

# Named axes and the trial field each one sets, in the order they appear in trial names.
AXES = {"archs": "arch", "bits": "bits", "methods": "method", "seeds": "seed"}


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_cpus: float | None = Field(None, gt=0, description="CPUs per trial (Ray); also its torch threads")
    num_gpus: float | None = Field(None, ge=0, description="GPUs per trial (Ray); default 1 for a cuda device, else 0")


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    out: str | None = None
    base: dict[str, Any] = Field(default_factory=dict)
    bits: list[int] | None = None
    methods: list[str | list[str]] | None = None
    archs: list[str] | None = None
    seeds: list[int] | None = None
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    workers: int = Field(1, ge=1)
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    resources: Resources = Field(default_factory=Resources)
    target: float | None = Field(None, gt=0, le=1, description="accuracy target line of the Pareto plot")

    @field_validator("bits", "methods", "archs", "seeds", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        if v is None or isinstance(v, list):
            return v
        return [v]

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_lists(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (val if isinstance(val, list) else [val]) for k, val in v.items()}
        return v

    def axes(self) -> list[tuple[str, list[Any]]]:
        """(trial field path, values) of every grid axis, named axes first."""
        out = []
        for key, field in AXES.items():
            values = getattr(self, key)
            if values is not None:
                out.append((field, list(values)))
        for path, values in self.grid.items():
            out.append((path, list(values)))
        return out

    def check(self, source: str) -> "SweepConfig":
        paths = [p for p, _ in self.axes()]
        for path in paths:
            try:
                check_path(path)
            except AmcpruneError as exc:
                raise AmcpruneError(f"{source}: grid: {exc}") from None
            if not dict(self.axes())[path]:
                raise AmcpruneError(f"{source}: grid axis {path!r} has no values")
        dupes = {p for p in paths if paths.count(p) > 1}
        if dupes:
            raise AmcpruneError(f"{source}: {', '.join(sorted(dupes))} given twice (as a named axis and in grid)")
        if "data" not in self.base:
            raise AmcpruneError(f"{source}: base.data is missing (give base.data.path or base.data.synth)")
        TrialConfig.from_dict(self.base, source=f"{source}: base")
        return self


def load_sweep(path: str | os.PathLike) -> SweepConfig:
    """Read and check a sweep YAML; every problem is one ``AmcpruneError`` line naming the file."""
    data = read_yaml_mapping(path, "sweep")
    if not data:
        raise AmcpruneError(f"{path}: empty sweep file: give base: and grid axes (bits, methods, archs, seeds, grid)")
    return sweep_from_dict(data, str(path))


def sweep_from_dict(data: dict[str, Any], source: str = "sweep config") -> SweepConfig:
    try:
        config = SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise AmcpruneError(f"{source}: {validation_message(exc)}") from None
    return config.check(source)
