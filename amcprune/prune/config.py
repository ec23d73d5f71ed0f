"""``PruneConfig``: what a prune run does (pydantic v2, loadable from YAML, stored in ``config.yaml``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from amcprune.utils.config import YamlConfig
from amcprune.prune.criteria import canonical_criterion
from amcprune.prune.schedule import METHODS, StageSettings

P_MIN_UNSTRUCTURED = 0.05
P_MIN_STRUCTURED = 0.01


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


class PruneConfig(YamlConfig):
    """A prune run: one or more stages (method x criterion) run in series, judged by an accuracy criterion.

    ``methods``, ``criteria``, ``p`` and ``p_min`` are lists broadcast against each other (a single value
    applies to every stage), e.g. ``methods=["fmp"], criteria=["structured", "global"]`` runs structured FMP
    (p_min 0.01) and then global unstructured FMP (p_min 0.05) from its result.
    """

    config_kind: ClassVar[str] = "prune config"
    yaml_section: ClassVar[str | None] = "prune"

    methods: list[str] = Field(default_factory=lambda: ["fmp"])
    criteria: list[str] = Field(default_factory=lambda: ["global"])
    p: list[float] = Field(default_factory=lambda: [0.2], description="rate pruned from the remaining weights")
    divisor: float = Field(2.0, gt=1.0, description="fmp: p is divided by this after a failed iteration")
    p_min: list[float] | None = Field(None, description="fmp: stop below this p (default 0.05, structured 0.01)")
    target: float | None = Field(None, gt=0, le=1, description="absolute accuracy the model must keep")
    max_drop: float | None = Field(None, ge=0, lt=1, description="allowed drop below the dense accuracy")
    judge_on: Literal["val", "test"] = "val"
    max_epochs: int = Field(3, ge=1, description="training epochs per iteration (the retraining budget)")
    patience: int | None = Field(3, ge=1, description="epochs without a better judged accuracy that end an iteration")
    max_iterations: int | None = Field(None, ge=0, description="most prunes per stage")
    prune_at_start: bool = True
    judge_at: Literal["epoch", "end"] = Field(
        "end", description="imp/fmp: decide an iteration after every epoch (2021 scripts) or at the end of its budget"
    )
    finetune: Literal["cosine", "constant", "train"] = Field(
        "cosine",
        description="fine-tuning schedule of each iteration: a fresh optimizer at finetune_lr decaying to zero over "
        "max_epochs (cosine, per batch) or held (constant); 'train' keeps the dense run's optimizer and scheduler "
        "(the 2021 scripts)",
    )
    finetune_lr: float | None = Field(None, gt=0, description="fine-tuning rate (default finetune_lr_scale x train lr)")
    finetune_lr_scale: float = Field(0.1, gt=0, le=1, description="fine-tuning rate as a fraction of the train lr")
    lr_rewind: bool | None = Field(
        None, description="finetune 'train' only: fresh optimizer/scheduler after every prune (default: imp-converge "
        "yes, imp/fmp no)"
    )
    exclude: list[str] = Field(default_factory=list, description="layers never pruned (name, conv3, last, glob)")
    layer_rates: dict[str, float] = Field(default_factory=dict, description="layers with their own rate")
    cost: bool = Field(True, description="score every recorded model with the cost module")
    export: bool = Field(True, description="export final.onnx (QONNX) and score it")
    save_iterations: bool = True

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
        if (self.target is None) == (self.max_drop is None):
            raise ValueError("give exactly one accuracy criterion: target (absolute) or max_drop (below the dense model)")
        for m in self.methods:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
        self.criteria = [canonical_criterion(c) for c in self.criteria]
        for p in self.p:
            if not 0 < p < 1:
                raise ValueError(f"p must be in (0, 1), got {p}")
        for p in self.p_min or []:
            if not 0 < p < 1:
                raise ValueError(f"p_min must be in (0, 1), got {p}")
        for name, rate in self.layer_rates.items():
            if not 0 <= rate < 1:
                raise ValueError(f"layer_rates[{name!r}] must be in [0, 1), got {rate}")
        for stage in self.stages():  # also checks the list lengths
            if stage.method == "fmp" and stage.p_min > stage.p:
                raise ValueError(f"p_min ({stage.p_min}) is above p ({stage.p}): fmp could never lower p; "
                                 "give a smaller --p-min")
        return self

    def stages(self) -> list[StageSettings]:
        lists = {"methods": self.methods, "criteria": self.criteria, "p": self.p}
        if self.p_min is not None:
            lists["p_min"] = self.p_min
        n = max(len(v) for v in lists.values())
        for key, values in lists.items():
            if len(values) not in (1, n):
                raise ValueError(f"{key} has {len(values)} values; give 1 or {n} (one per stage)")
            if not values:
                raise ValueError(f"{key} is empty")

        def pick(values: list, i: int) -> Any:
            return values[0] if len(values) == 1 else values[i]

        out = []
        for i in range(n):
            criterion = pick(self.criteria, i)
            p_min = pick(self.p_min, i) if self.p_min is not None else (
                P_MIN_STRUCTURED if criterion == "structured" else P_MIN_UNSTRUCTURED
            )
            out.append(
                StageSettings(
                    method=pick(self.methods, i),
                    criterion=criterion,
                    p=pick(self.p, i),
                    divisor=self.divisor,
                    p_min=p_min,
                    max_epochs=self.max_epochs,
                    patience=self.patience,
                    max_iterations=self.max_iterations,
                    prune_at_start=self.prune_at_start,
                    judge_at=self.judge_at,
                )
            )
        return out

    def finetune_lr_for(self, train_lr: float) -> float:
        return self.finetune_lr if self.finetune_lr is not None else self.finetune_lr_scale * train_lr

    def lr_rewind_for(self, method: str) -> bool:
        return self.lr_rewind if self.lr_rewind is not None else method == "imp-converge"
