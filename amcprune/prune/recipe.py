"""A compression run as data: a :class:`Recipe` is the accuracy criterion and a list of stages.

.. code-block:: yaml

    # structured FMP first (it shrinks the layers), then global unstructured FMP from its result
    max_drop: 0.03
    judge_on: val
    stages:
      - kind: fmp
        criterion: structured
        p: 0.2
        p_min: 0.025
      - kind: fmp
        criterion: global
        p: 0.3
        finetune_lr_scale: 0.3

Each stage is a self-contained block whose ``kind`` selects a registered stage kind
(:mod:`amcprune.prune.stages`) and whose other keys are that kind's settings, validated strictly. The named
recipes shipped in ``amcprune/prune/recipes/*.yaml`` (``imp-2021``, ``fmp-2021``: the published 2021 settings;
``fmp``, ``imp``: ours) are starting points to copy and edit: ``amcprune prune --recipe fmp --dump-recipe``.
``amcprune prune``'s options are a shorthand that builds the same document (:func:`recipe_with_options`).
"""

from __future__ import annotations

import copy
import os
import typing
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from amcprune.errors import AmcpruneError
from amcprune.prune.stages import StageSpec, parse_stage, stage_kind, stage_kinds
from amcprune.utils.config import YamlConfig, read_yaml_mapping

RUN_FIELDS = ("name", "target", "max_drop", "judge_on", "cost", "export")
# The shorthand's names for stage fields (``--method`` lists the stages' kinds).
STAGE_ALIASES = {"methods": "kind", "criteria": "criterion"}


class Recipe(YamlConfig):
    """A prune run: the accuracy criterion every stage is judged by, what is measured, and the stages in order."""

    config_kind: ClassVar[str] = "recipe"
    yaml_section: ClassVar[str | None] = "recipe"

    name: str | None = Field(None, description="where the recipe came from (a named recipe), shown in reports")
    target: float | None = Field(None, gt=0, le=1, description="absolute accuracy the model must keep")
    max_drop: float | None = Field(None, ge=0, lt=1, description="allowed drop below the dense accuracy")
    judge_on: Literal["val", "test"] = "val"
    cost: bool = Field(True, description="score every recorded model (needs a measurer)")
    export: bool = Field(True, description="export final.onnx (QONNX) and score it (needs a measurer)")
    stages: list[SerializeAsAny[StageSpec]]

    @field_validator("stages", mode="before")
    @classmethod
    def _parse_stages(cls, v: Any) -> list[StageSpec]:
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError("a recipe needs a non-empty list of stages")
        return [parse_stage(item, f"stage {i}") for i, item in enumerate(v)]

    @model_validator(mode="after")
    def _one_criterion(self) -> "Recipe":
        if (self.target is None) == (self.max_drop is None):
            raise ValueError("give exactly one accuracy criterion: target (absolute) or max_drop (below the dense model)")
        return self

    def criterion_text(self) -> str:
        """The criterion as the user gave it."""
        if self.target is not None:
            return f"target {self.target:g}"
        return f"max_drop {self.max_drop:g}"


def _stage_takes(stage: dict[str, Any], key: str) -> bool:
    """Whether the stage's kind has the setting ``key`` (an unknown or missing kind takes everything: its
    validation names the problem)."""
    kind = stage.get("kind")
    if key == "kind" or kind not in stage_kinds():
        return True
    return key in stage_kind(kind).spec.model_fields


def _list_setting(stages: list[dict[str, Any]], key: str) -> bool:
    """Whether ``key`` is a list-valued setting (``exclude``, ``ladder``, ``levels``) of a stage kind in ``stages``:
    its list is the value, not one value per stage."""
    for stage in stages:
        kind = stage.get("kind")
        field = stage_kind(kind).spec.model_fields.get(key) if kind in stage_kinds() else None
        if field is not None and typing.get_origin(field.annotation) is list:
            return True
    return False


def named_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("amcprune.prune.recipes").iterdir() if p.name.endswith(".yaml"))


def recipe_source(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The mapping of a named recipe or of a YAML file (not yet validated: options may still complete it)."""
    text = str(name_or_path)
    if text in named_recipes():
        with resources.as_file(resources.files("amcprune.prune.recipes") / f"{text}.yaml") as path:
            data = read_yaml_mapping(path, "recipe")
        return {"name": text, **data}
    path = Path(text)
    if not path.is_file():
        raise AmcpruneError(f"{text}: neither a named recipe ({', '.join(named_recipes())}) nor a recipe file")
    data = read_yaml_mapping(path, "recipe")
    if isinstance(data.get("recipe"), dict):  # a run's config.yaml holds its recipe under this key
        data = data["recipe"]
    return data


def recipe_with_options(base: dict[str, Any], options: dict[str, Any], source: str = "recipe") -> Recipe:
    """``base`` (a recipe mapping) with command-line options applied.

    Run options (``target``, ``max_drop``, ``judge_on``, ``cost``, ``export``) replace the recipe's; giving
    either criterion replaces the recipe's criterion. Every other option sets that field in every stage whose kind
    has it (an option no stage has is an error); a list
    (``methods``/``kind``, ``criteria``/``criterion``, ``p``, ``p_min``) gives one value per stage, and a
    one-stage recipe is repeated to as many stages as the longest list has values. A None value is set as
    None (``patience: None`` turns patience off): leave out what is not given.
    """
    data = copy.deepcopy(base)
    options = {STAGE_ALIASES.get(k, k): v for k, v in options.items()}
    if "target" in options or "max_drop" in options:
        data.pop("target", None)
        data.pop("max_drop", None)
    for key in RUN_FIELDS:
        if key in options:
            data[key] = options.pop(key)
    stages = data.get("stages")
    if options:
        if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
            raise AmcpruneError(f"{source}: stage options need a recipe with a list of stages")
        lengths = {k: len(v) for k, v in options.items() if isinstance(v, list) and not _list_setting(stages, k)}
        n = max([1, *lengths.values()]) if len(stages) == 1 else len(stages)
        if len(stages) < n:
            stages = [copy.deepcopy(stages[0]) for _ in range(n)]
        for key, length in lengths.items():
            if length not in (1, n):
                raise AmcpruneError(f"{key} has {length} values; give 1 or {n} (one per stage)")
            if length == 0:
                raise AmcpruneError(f"{key} is empty")
        takers = {key: [i for i, stage in enumerate(stages) if _stage_takes(stage, key)] for key in options}
        unused = [key for key, where in takers.items() if not where]
        if unused:
            kinds = sorted({str(stage.get("kind")) for stage in stages})
            raise AmcpruneError(f"{source}: no stage ({', '.join(kinds)}) has the setting(s) {', '.join(unused)}")
        for i, stage in enumerate(stages):
            for key, value in options.items():
                if i not in takers[key]:
                    continue
                if key in lengths:
                    value = value[0] if len(value) == 1 else value[i]
                stage[key] = copy.deepcopy(value)
        data["stages"] = stages
    return Recipe.from_dict(data, source=source)


def named_recipe(name: str, **options: Any) -> Recipe:
    return recipe_with_options(recipe_source(name), options, source=f"recipe {name}")
