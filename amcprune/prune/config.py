"""``PruneConfig``: the flat shorthand of a one-criterion recipe (``amcprune prune``'s options, a trial's ``prune:``
section). It validates as the :class:`~amcprune.prune.recipe.Recipe` it stands for, which is what runs."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from amcprune.errors import AmcpruneError
from amcprune.prune.recipe import Recipe, recipe_with_options
from amcprune.prune.schedule import METHODS, StageSettings
from amcprune.prune.stages.magnitude import P_MIN_STRUCTURED, P_MIN_UNSTRUCTURED  # noqa: F401 (re-exported)
from amcprune.prune.stages.magnitude import MagnitudeOptions
from amcprune.utils.config import YamlConfig

# Fields that apply to every stage alike.
STAGE_SCALARS = tuple(MagnitudeOptions.model_fields)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


class PruneConfig(YamlConfig, MagnitudeOptions):
    """Magnitude-pruning stages (method x criterion) run in series, judged by one accuracy criterion.

    ``methods``, ``criteria``, ``p`` and ``p_min`` are lists broadcast against each other (a single value
    applies to every stage), e.g. ``methods=["fmp"], criteria=["structured", "global"]`` runs structured FMP
    (p_min 0.01) and then global unstructured FMP (p_min 0.05) from its result. The fields of
    :class:`~amcprune.prune.stages.magnitude.MagnitudeOptions` apply to every stage.
    """

    config_kind: ClassVar[str] = "prune config"
    yaml_section: ClassVar[str | None] = "prune"

    methods: list[str] = Field(default_factory=lambda: ["fmp"])
    criteria: list[str] = Field(default_factory=lambda: ["global"])
    p: list[float] = Field(default_factory=lambda: [0.2], description="rate pruned from the remaining weights")
    p_min: list[float] | None = Field(None, description="fmp: stop below this p (default 0.05, structured 0.01)")
    target: float | None = Field(None, gt=0, le=1, description="absolute accuracy the model must keep")
    max_drop: float | None = Field(None, ge=0, lt=1, description="allowed drop below the dense accuracy")
    judge_on: Literal["val", "test"] = "val"
    cost: bool = Field(True, description="score every recorded model with the cost module")
    export: bool = Field(True, description="export final.onnx (QONNX) and score it")

    @field_validator("methods", "criteria", "exclude", mode="before")
    @classmethod
    def _split(cls, v: Any) -> list:
        return _as_list(v)

    @field_validator("p", "p_min", mode="before")
    @classmethod
    def _split_floats(cls, v: Any) -> Any:
        if v is None:
            return None
        return [float(x) for x in _as_list(v)]

    @model_validator(mode="after")
    def _check(self) -> "PruneConfig":
        for m in self.methods:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
        self.to_recipe()  # the recipe's validation (criterion, rates, list lengths) is the shorthand's
        return self

    def stage_options(self) -> dict[str, Any]:
        """The stage fields of the shorthand (lists one value per stage; a single value applies to every stage)."""
        out: dict[str, Any] = {"methods": self.methods, "criteria": self.criteria, "p": self.p}
        if self.p_min is not None:
            out["p_min"] = self.p_min
        for key in STAGE_SCALARS:
            out[key] = getattr(self, key)
        return out

    def to_recipe(self) -> Recipe:
        """The recipe this shorthand stands for (``amcprune prune --dump-recipe`` prints it)."""
        base = {"stages": [{"kind": "fmp"}], "judge_on": self.judge_on, "cost": self.cost, "export": self.export,
                "target": self.target, "max_drop": self.max_drop}
        try:
            return recipe_with_options(base, self.stage_options(), source="prune config")
        except AmcpruneError as exc:
            raise ValueError(str(exc).removeprefix("prune config: ")) from None

    def stages(self) -> list[StageSettings]:
        """The schedule settings of each stage."""
        return [stage.settings() for stage in self.to_recipe().stages]
