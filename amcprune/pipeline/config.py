"""``TrialConfig``: one full train -> prune -> export -> cost -> evaluate -> report run (pydantic v2).

A trial config names its data (an existing RadioML-layout file, or a synthetic preset generated on first
use), the model (``arch``, ``bits`` and any ``ModelSpec`` field under ``model``), the dense training
(``TrainConfig`` fields under ``train``) and the pruning (``PruneConfig`` fields under ``prune``). The
top-level shortcuts ``arch``, ``bits``, ``method``, ``criterion``, ``seed``, ``device`` and ``threads``
override their section when set, so a sweep grid can vary them by name; any other field is reached with a
dotted path (``model.conv_filters``, ``train.lr``, ``prune.p``) through :func:`set_path`.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from amcprune.data.synth import synth_config
from amcprune.errors import AmcpruneError
from amcprune.models import DEFAULT_ARCH, DEFAULT_BITS, DEFAULT_INPUT_BITS, ModelSpec, spec_from_options
from amcprune.prune.config import PruneConfig
from amcprune.prune.recipe import Recipe, recipe_source, recipe_with_options
from amcprune.prune.stages import stage_kind, stage_kinds
from amcprune.train.config import TrainConfig
from amcprune.utils.config import YamlConfig

DEFAULT_METHOD = "fmp"
DEFAULT_MAX_DROP = 0.02  # accuracy criterion when the prune section gives none: 2 points below the dense model


class DataConfig(BaseModel):
    """Where the frames come from: an existing file (``path``) or a synthetic preset (``synth``).

    With ``synth`` the file is generated at ``path`` (default: ``<trial>/data/synth-<preset>.h5``; a sweep
    puts it under ``<sweep>/data/``) unless a file with the same synthetic config is already there.
    """

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    synth: str | None = Field(None, description="synthetic preset: tiny, quick, standard, full")
    synth_overrides: dict[str, Any] = Field(default_factory=dict, description="SynthConfig fields over the preset")
    synth_workers: int = Field(1, ge=1, description="processes generating the synthetic file")

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.path is None and self.synth is None:
            raise ValueError("give data.path (a RadioML-layout HDF5 file) or data.synth (a synthetic preset)")
        if self.synth is not None:
            self.synth_config()  # unknown preset or fields
        elif self.synth_overrides:
            raise ValueError("data.synth_overrides needs data.synth")
        return self

    def synth_config(self):
        if self.synth is None:
            return None
        try:
            return synth_config(self.synth, **self.synth_overrides)
        except AmcpruneError as exc:
            raise ValueError(str(exc)) from None


class TrialConfig(YamlConfig):
    """One trial. ``model``, ``train`` and ``prune`` hold ``ModelSpec``, ``TrainConfig`` and ``PruneConfig``
    fields; the shortcuts below override them when not None."""

    config_kind: ClassVar[str] = "trial config"

    name: str | None = None
    data: DataConfig
    arch: str | None = Field(None, description=f"architecture (default {DEFAULT_ARCH})")
    bits: int | None = Field(None, description=f"weight and activation bits (default {DEFAULT_BITS}, as every command); "
                             f"the input keeps model.input_bits (default {DEFAULT_INPUT_BITS})")
    recipe: str | None = Field(None, description="named recipe or recipe file to prune with; the prune section's "
                               "fields then override its stages (default: the prune section is the flat shorthand)")
    method: str | list[str] | None = Field(None, description=f"prune method(s) (default {DEFAULT_METHOD})")
    criterion: str | list[str] | None = Field(None, description="prune criterion/criteria (default global)")
    seed: int | None = Field(None, description="train seed (default 0)")
    device: str | None = Field(None, description="auto | cpu | cuda | cuda:N (default auto)")
    threads: int | None = Field(None, ge=1, description="torch threads (default: torch's choice or the executor's)")
    model: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    prune: dict[str, Any] = Field(default_factory=dict)
    verify_frames: int = Field(32, ge=0, description="test frames the QONNX export is verified on (0: no check)")
    eval_plots: bool = Field(True, description="write the PNG plots of eval_dense/ and eval_final/")

    @model_validator(mode="after")
    def _check(self) -> "TrialConfig":
        # Build every stage's config once so that a bad value fails here, with its field named.
        for what, build in (("model", self.model_spec), ("train", self.train_config), ("prune", self.prune_config)):
            try:
                build()
            except AmcpruneError as exc:
                raise ValueError(f"{what}: {exc}") from None
        return self

    # --- resolved stage configs ---------------------------------------------------------------------
    def model_dict(self, num_classes: int | None = None) -> dict[str, Any]:
        return self.model_spec(num_classes).model_dump(mode="json")

    def model_spec(self, num_classes: int | None = None) -> ModelSpec:
        """The ``ModelSpec`` through the same bridge as the commands (``amcprune.models.spec_from_options``):
        the ``model`` section is the base (``ModelSpec`` defaults, as in ``amcprune train``, for what it leaves
        out), the shortcuts ``arch`` and ``bits`` override it; ``num_classes`` (the data file's) applies unless
        the section sets one."""
        classes = num_classes if "num_classes" not in self.model else None
        return spec_from_options(self.model, source="model spec", arch=self.arch, bits=self.bits, num_classes=classes)

    def train_config(self):
        values = dict(self.train)
        for key in ("seed", "device", "threads"):
            if getattr(self, key) is not None:
                values[key] = getattr(self, key)
        return TrainConfig.from_dict(values)

    def prune_config(self) -> Recipe:
        """The recipe the prune stage runs: ``recipe`` with the prune section's fields over its stages, or the
        prune section as the flat shorthand (:class:`PruneConfig`)."""
        values = dict(self.prune)
        if self.recipe is not None:
            if self.method is not None or self.criterion is not None:
                raise AmcpruneError("recipe names the stages: drop method/criterion, or drop recipe")
            base = recipe_source(self.recipe)
            if values.get("target") is None and values.get("max_drop") is None and \
                    base.get("target") is None and base.get("max_drop") is None:
                values["max_drop"] = DEFAULT_MAX_DROP
            return recipe_with_options(base, values, source=f"recipe {self.recipe}")
        if self.method is not None:
            values["methods"] = self.method
        if self.criterion is not None:
            values["criteria"] = self.criterion
        if values.get("target") is None and values.get("max_drop") is None:
            values["max_drop"] = DEFAULT_MAX_DROP
        return PruneConfig.from_dict(values).to_recipe()

    def label(self) -> dict[str, Any]:
        """The headline parameters of the trial (arch, bits, method, criterion, seed) as resolved."""
        spec = self.model_dict()
        prune = self.prune_config()
        return {
            "arch": spec["arch"],
            "bits": spec["weight_bits"] if spec["weight_bits"] == spec["act_bits"] else f"{spec['weight_bits']}/{spec['act_bits']}",
            "method": self.recipe or ",".join(dict.fromkeys(stage.kind for stage in prune.stages)),
            "criterion": ",".join(dict.fromkeys(s.criterion_name for s in prune.stages if s.criterion_name)),
            "seed": self.train_config().seed,
        }


# Sections whose keys are checked against the stage's own config class by :func:`check_path`.
def _section_fields() -> dict[str, set[str]]:
    return {
        "model": set(ModelSpec.model_fields),
        "train": set(TrainConfig.model_fields),
        # the shorthand's fields, and with a recipe, any stage kind's
        "prune": set(PruneConfig.model_fields).union(*(stage_kind(k).spec.model_fields for k in stage_kinds())),
        "data": set(DataConfig.model_fields),
    }


def check_path(path: str) -> None:
    """Raise ``AmcpruneError`` unless ``path`` (e.g. ``bits``, ``train.lr``) names a trial config field."""
    parts = path.split(".")
    if parts[0] not in TrialConfig.model_fields:
        raise AmcpruneError(f"unknown trial field {parts[0]!r} (fields: {', '.join(TrialConfig.model_fields)})")
    sections = _section_fields()
    if len(parts) > 1:
        if parts[0] not in sections:
            raise AmcpruneError(f"{path!r}: {parts[0]} has no sub-fields")
        if parts[0] != "data" or parts[1] != "synth_overrides":
            if parts[1] not in sections[parts[0]]:
                raise AmcpruneError(f"{path!r}: unknown {parts[0]} field {parts[1]!r}")


def set_path(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of the trial config dict with ``path`` (dotted) set to ``value``."""
    out = copy.deepcopy(config)
    node = out
    parts = path.split(".")
    for key in parts[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[parts[-1]] = copy.deepcopy(value)
    return out
