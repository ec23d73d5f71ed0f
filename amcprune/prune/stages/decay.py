"""Weight decay with threshold rounds (the 2021 winner's method): the ``decay`` stage kind.

Each round trains ``decay_epochs`` with an extra L2 pull of the prunable weights towards zero (a gradient hook
adds ``weight_decay x w`` to their gradients only, so BatchNorm and quantizer scales are not decayed), then masks
every weight below the round's threshold (a fraction of its layer's largest magnitude), fine-tunes
``finetune_epochs`` without decay and is judged: a round that meets the criterion is kept and the next round
starts from it; a round that fails is rolled back and ends the stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from amcprune.prune.criteria import check_selection, prunable_layers, prune_below
from amcprune.prune.stages.base import FinetuneRate, StageKind, StageSpec, register_stage_kind

if TYPE_CHECKING:
    from amcprune.prune.engine import PruneRun


class DecayStage(FinetuneRate, StageSpec):
    """Rounds of weight decay, then zeroing the weights below a threshold, then fine-tuning."""

    kind: Literal["decay"]
    thresholds: list[float] = Field(default_factory=lambda: [0.15, 0.25, 0.25],
                                    description="one threshold per round")
    relative: bool = Field(True, description="thresholds are fractions of each layer's largest weight magnitude "
                                             "(false: absolute magnitudes)")
    weight_decay: float = Field(1e-3, ge=0, description="L2 coefficient on the prunable weights during the decay")
    decay_epochs: int = Field(2, ge=0, description="epochs with decay before each threshold")
    finetune_epochs: int = Field(1, ge=1, description="epochs without decay after each threshold")
    exclude: list[str] = Field(default_factory=list, description="layers never pruned (name, conv3, last, glob)")

    @field_validator("thresholds")
    @classmethod
    def _some(cls, v: list[float]) -> list[float]:
        if not v or any(t <= 0 for t in v):
            raise ValueError("thresholds needs at least one value, each > 0")
        return v

    @model_validator(mode="after")
    def _fractions(self) -> "DecayStage":
        if self.relative and any(t >= 1 for t in self.thresholds):
            raise ValueError("relative thresholds are fractions of a layer's largest weight: each must be < 1")
        return self

    @property
    def criterion_name(self) -> str:
        return "threshold"

    def describe(self) -> str:
        kind = "x the layer's largest weight" if self.relative else "(absolute)"
        return (f"decay: {len(self.thresholds)} rounds of weight decay {self.weight_decay:g} for "
                f"{self.decay_epochs} epochs, then zero below {self.thresholds} {kind}, then fine-tune")

    @property
    def round_epochs(self) -> int:
        return self.decay_epochs + self.finetune_epochs


class _WeightDecayHooks:
    """Adds ``coefficient x w`` to the gradients of the prunable weights while active."""

    def __init__(self, model: Any, coefficient: float) -> None:
        self.handles = []
        if coefficient <= 0:
            return
        for _, module in prunable_layers(model):
            param = getattr(module, "weight_orig", None)
            param = param if param is not None else module.weight
            self.handles.append(param.register_hook(lambda grad, p=param: grad + coefficient * p.detach()))

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@register_stage_kind
class DecayThreshold(StageKind):
    names = ("decay",)
    spec = DecayStage

    def check(self, model: Any, model_spec: Any, spec: DecayStage) -> None:
        check_selection(model, "global", spec.exclude, None, model_spec)

    def progress(self, run: "PruneRun", spec: DecayStage) -> dict[str, Any]:
        state = run.st.kind_state or {}
        return {"iteration": int(state.get("round", 0)), "p": None}

    def start(self, run: "PruneRun", spec: DecayStage, acc: float) -> None:
        run.st.kind_state = {"round": 0, "epoch": 0}
        run.keep_start(acc)

    def step(self, run: "PruneRun", spec: DecayStage) -> None:
        state = dict(run.st.kind_state)
        if state["epoch"] == 0:
            if state["round"] >= len(spec.thresholds):
                run.end_stage(reason="rounds-done", current_is_result=True)
                return
            state["round"] += 1
            run.trainer.start_finetune(lr=spec.finetune_lr_for(run.train_config.lr), epochs=spec.round_epochs,
                                       schedule="cosine")
        state["epoch"] += 1
        threshold = spec.thresholds[state["round"] - 1]
        decaying = state["epoch"] <= spec.decay_epochs
        if state["epoch"] == spec.decay_epochs + 1:
            prune_below(run.model, threshold, relative=spec.relative, exclude=spec.exclude, spec=run.spec)
        run.st.kind_state = state
        hooks = _WeightDecayHooks(run.model, spec.weight_decay if decaying else 0.0)
        try:
            acc = run.train_epoch(iteration=state["round"], epoch=state["epoch"], p=None,
                                  desc=f"decay round {state['round']} "
                                       f"({'decay' if decaying else f'threshold {threshold:g}'})")
        finally:
            hooks.close()
        if state["epoch"] < spec.round_epochs:
            return
        state = dict(run.st.kind_state)
        state["epoch"] = 0
        run.st.kind_state = state
        if run.meets(acc):
            run.keep_met(acc, epochs=spec.round_epochs, p_applied=None, reason=f"threshold {threshold:g}")
            return
        run.record_failed(acc, epochs=spec.round_epochs, reason=f"threshold {threshold:g}")
        run.rewind(p_applied=None)
        run.end_stage(reason="round-failed", current_is_result=True)
