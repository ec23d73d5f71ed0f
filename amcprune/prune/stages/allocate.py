"""Per-layer sparsity allocation under a score budget (knapsack): the ``allocate`` stage kind.

Global magnitude pruning decides how much of each layer goes by comparing magnitudes across layers; this kind
decides it from what each layer costs and what pruning it costs in accuracy, as hls4ml's optimization API does
for FPGA resources. Each iteration:

1. asks for a model whose score is at most ``(1 - cut)`` of the current one;
2. for every prunable layer and every level in ``levels`` (a fraction of the layer's remaining weights, removed by
   magnitude within the layer) measures on a copy of the model, without training, the score it saves (the layer's
   per-weight cost from the measurer's export of the current model, times the weights removed) and the criterion
   accuracy it costs;
3. picks one level per layer (a multiple-choice knapsack, solved exactly by dynamic programming over the saving
   in steps of 1/``resolution`` of the budget) that saves at least the budget at the least summed accuracy cost;
4. prunes to that choice, fine-tunes ``max_epochs`` and is judged.

As in FMP the feedback is on the size of the step: a kept iteration is followed by another with the same
``cut``; a failed one is rolled back and ``cut`` is divided by ``divisor``; the stage stops when ``cut`` falls
below ``min_cut``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from amcprune.prune.criteria import (check_selection, layer_aliases, prunable_layers, prune_model, remaining_weights,
                                     resolve_layers)
from amcprune.prune.stages.base import FinetuneRate, StageKind, StageSpec, register_stage_kind

if TYPE_CHECKING:
    from amcprune.prune.engine import PruneRun


class AllocateStage(FinetuneRate, StageSpec):
    """Per-layer sparsities chosen to meet a score budget at the least estimated accuracy cost."""

    kind: Literal["allocate"]
    cut: float = Field(0.4, gt=0, lt=1, description="each iteration asks for a score this fraction below the current")
    divisor: float = Field(2.0, gt=1, description="a failed iteration divides cut by this")
    min_cut: float = Field(0.05, gt=0, lt=1, description="stop when cut falls below this")
    levels: list[float] = Field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8],
                                description="fractions of a layer's remaining weights an iteration may remove")
    resolution: int = Field(200, ge=10, description="steps of the budget in the knapsack")
    exclude: list[str] = Field(default_factory=list, description="layers never pruned (name, conv3, last, glob)")
    max_epochs: int = Field(1, ge=1, description="fine-tuning epochs per iteration")
    max_iterations: int | None = Field(None, ge=0, description="most allocations in the stage")
    finetune: Literal["cosine", "constant"] = "cosine"

    @field_validator("levels")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < f < 1 for f in v):
            raise ValueError("levels must be fractions in (0, 1)")
        return sorted(set(v))

    @model_validator(mode="after")
    def _cuts(self) -> "AllocateStage":
        if self.min_cut > self.cut:
            raise ValueError(f"min_cut ({self.min_cut}) is above cut ({self.cut}): no iteration would run")
        return self

    @property
    def criterion_name(self) -> str:
        return "knapsack"

    @property
    def needs_measurer(self) -> bool:
        return True

    def describe(self) -> str:
        return (f"allocate: per-layer sparsities (levels {self.levels}) for a score {self.cut:g} below the current, "
                f"chosen by knapsack; a failed cut is divided by {self.divisor:g} down to {self.min_cut:g}")


def choose_levels(options: dict[str, list[tuple[float, float, float]]], need: float,
                  resolution: int) -> dict[str, float] | None:
    """Multiple-choice knapsack: one ``(level, saving, cost)`` per layer (level 0, saving 0, cost 0 is always
    allowed) whose savings sum to at least ``need`` at the least summed cost; None when no choice saves enough.

    Savings are counted in whole steps of ``need / resolution`` rounded down, so a chosen set's true saving is at
    least its counted one and the answer never falls short of ``need``."""
    if need <= 0:
        return {name: 0.0 for name in options}
    step = need / resolution
    inf = math.inf
    best = [inf] * (resolution + 1)  # least cost for a counted saving of b steps (capped at resolution)
    best[0] = 0.0
    picks: list[list[tuple[int, int]]] = []  # per layer: for each b, (previous b, option index) or (-1, -1)
    names = list(options)
    for name in names:
        new = list(best)
        pick = [(b, -1) for b in range(resolution + 1)]
        for b, cost_so_far in enumerate(best):
            if cost_so_far == inf:
                continue
            for i, (_, saving, cost) in enumerate(options[name]):
                nb = min(resolution, b + int(saving / step))
                if cost_so_far + cost < new[nb]:
                    new[nb] = cost_so_far + cost
                    pick[nb] = (b, i)
        picks.append(pick)
        best = new
    if best[resolution] == inf:
        return None
    chosen: dict[str, float] = {}
    b = resolution
    for name, pick in zip(reversed(names), reversed(picks)):
        prev, i = pick[b]
        chosen[name] = options[name][i][0] if i >= 0 else 0.0
        b = prev
    return chosen


@register_stage_kind
class Allocation(StageKind):
    names = ("allocate",)
    spec = AllocateStage

    def check(self, model: Any, model_spec: Any, spec: AllocateStage) -> None:
        check_selection(model, "layer", spec.exclude, None, model_spec)

    def progress(self, run: "PruneRun", spec: AllocateStage) -> dict[str, Any]:
        state = run.st.kind_state or {}
        return {"iteration": int(state.get("iteration", 0)), "p": state.get("cut")}

    def start(self, run: "PruneRun", spec: AllocateStage, acc: float) -> None:
        run.st.kind_state = {"iteration": 0, "cut": spec.cut, "epoch": 0, "plan": None}
        run.keep_start(acc)

    def step(self, run: "PruneRun", spec: AllocateStage) -> None:
        state = dict(run.st.kind_state)
        if state["epoch"] == 0:
            if spec.max_iterations is not None and state["iteration"] >= spec.max_iterations:
                run.end_stage(reason="max-iterations", current_is_result=True)
                return
            plan = None
            while state["cut"] >= spec.min_cut:
                plan = self._plan(run, spec, state["cut"])
                if plan is not None:
                    break
                run.say(f"allocate: no choice of levels cuts the score by {state['cut']:.3g}")
                state["cut"] /= spec.divisor
            if plan is None:
                run.st.kind_state = state
                run.end_stage(reason="p-min", current_is_result=True)
                return
            prune_model(run.model, "layer", 0.0, layer_rates=plan, spec=run.spec)
            run.st.ps = [*run.st.ps, state["cut"]]
            run.trainer.start_finetune(lr=spec.finetune_lr_for(run.train_config.lr), epochs=spec.max_epochs,
                                       schedule=spec.finetune)
            state.update(iteration=state["iteration"] + 1, plan=plan)
        state["epoch"] += 1
        run.st.kind_state = state
        acc = run.train_epoch(iteration=state["iteration"], epoch=state["epoch"], p=state["cut"],
                              desc=f"allocate cut {state['cut']:.3g}")
        if state["epoch"] < spec.max_epochs:
            return
        state = dict(run.st.kind_state)
        state["epoch"] = 0
        run.st.kind_state = state
        if run.meets(acc):
            run.keep_met(acc, epochs=spec.max_epochs, p_applied=state["cut"], reason=_plan_text(state["plan"]))
            return
        run.record_failed(acc, epochs=spec.max_epochs, reason=_plan_text(state["plan"]))
        old = state["cut"]
        state["cut"] = old / spec.divisor
        run.st.kind_state = state
        run.rewind(p_applied=state["cut"], old_p=old)

    def _plan(self, run: "PruneRun", spec: AllocateStage, cut: float) -> dict[str, float] | None:
        """Per-layer levels that save ``cut`` of the current score at the least estimated accuracy cost."""
        rw = run.st.rewind
        score = run.kept_score()
        acc = rw.criterion_acc if rw is not None else run.judge()
        costs = run.weight_costs()
        names = [n for n, _ in prunable_layers(run.model)]
        excluded = set(resolve_layers(spec.exclude, names, layer_aliases(run.spec)))
        options: dict[str, list[tuple[float, float, float]]] = {}
        for name, module in prunable_layers(run.model):
            if name in excluded:
                continue
            remaining = remaining_weights(module)
            options[name] = []
            for level in spec.levels:
                removed = round(level * remaining)
                if removed == 0 or removed >= remaining:
                    continue
                candidate = run.model_for(run.spec)
                prune_model(candidate, "layer", 0.0, layer_rates={name: level}, spec=run.spec)
                drop = max(0.0, acc - run.judge_model(candidate))
                options[name].append((level, removed * costs[name], drop))
        return choose_levels(options, cut * score, spec.resolution)


def _plan_text(plan: dict[str, float] | None) -> str:
    return "levels " + ", ".join(f"{k} {v:g}" for k, v in (plan or {}).items() if v > 0)
