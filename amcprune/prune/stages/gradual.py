"""Gradual magnitude pruning (Zhu & Gupta 2017): the ``gmp`` stage kind.

Sparsity follows a cubic ramp inside one fine-tuning run instead of prune-then-recover iterations: before ramp
epoch ``e`` of ``ramp_epochs`` the model is pruned (by magnitude, ``criterion`` global or per layer) to

    s_e = s_f + (s_0 - s_f) (1 - e / ramp_epochs)^3

of its prunable weights, where ``s_0`` is the stage's starting sparsity and ``s_f`` is ``final_sparsity``; then
``recover_epochs`` more epochs train at ``s_f``. The learning rate follows one cosine over the whole stage. The
ramp does not wait for the criterion: every epoch is judged, an epoch that meets it is kept (it is the sparsest
model so far that does), and the stage's result is the last kept one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from amcprune.prune.criteria import canonical_criterion, check_selection, mask_summary, prune_model
from amcprune.prune.stages.base import FinetuneRate, StageKind, StageSpec, register_stage_kind

if TYPE_CHECKING:
    from amcprune.prune.engine import PruneRun


class GradualStage(FinetuneRate, StageSpec):
    """Prune to ``final_sparsity`` along a cubic ramp over ``ramp_epochs``, then recover."""

    kind: Literal["gmp"]
    criterion: str = Field("global", description="global or layer (magnitude within each layer)")
    final_sparsity: float = Field(0.9, gt=0, lt=1, description="fraction of the prunable weights masked at the end")
    ramp_epochs: int = Field(8, ge=1, description="epochs over which sparsity rises (pruned before each)")
    recover_epochs: int = Field(2, ge=0, description="epochs at the final sparsity after the ramp")
    exclude: list[str] = Field(default_factory=list, description="layers never pruned (name, conv3, last, glob)")

    @field_validator("criterion")
    @classmethod
    def _unstructured(cls, v: str) -> str:
        v = canonical_criterion(v)
        if v not in ("global", "layer"):
            raise ValueError(f"gmp ramps weight sparsity: criterion global or layer, not {v}")
        return v

    def describe(self) -> str:
        return (f"gmp with {self.criterion} pruning to {self.final_sparsity:g} sparsity over {self.ramp_epochs} "
                f"epochs, then {self.recover_epochs} to recover")

    @property
    def epochs(self) -> int:
        return self.ramp_epochs + self.recover_epochs


def ramp_sparsity(start: float, final: float, epoch: int, ramp_epochs: int) -> float:
    """Zhu & Gupta's cubic schedule: the sparsity to reach before ramp epoch ``epoch`` (1-based)."""
    progress = min(max(epoch, 0), ramp_epochs) / ramp_epochs
    return final + (start - final) * (1.0 - progress) ** 3


def sparsity_of(model: Any) -> float:
    summary = mask_summary(model)
    return 1.0 - summary["unmasked"] / summary["weights"] if summary["weights"] else 0.0


@register_stage_kind
class GradualPruning(StageKind):
    names = ("gmp",)
    spec = GradualStage

    def check(self, model: Any, model_spec: Any, spec: GradualStage) -> None:
        check_selection(model, spec.criterion, spec.exclude, None, model_spec)

    def progress(self, run: "PruneRun", spec: GradualStage) -> dict[str, Any]:
        state = run.st.kind_state or {}
        return {"iteration": int(state.get("epoch", 0)), "p": state.get("p")}

    def start(self, run: "PruneRun", spec: GradualStage, acc: float) -> None:
        run.st.kind_state = {"epoch": 0, "start_sparsity": sparsity_of(run.model), "p": None}
        if run.meets(acc):
            run.keep_met(acc, epochs=0, p_applied=None, reason="start")
        run.trainer.start_finetune(lr=spec.finetune_lr_for(run.train_config.lr), epochs=spec.epochs,
                                   schedule="cosine")

    def step(self, run: "PruneRun", spec: GradualStage) -> None:
        state = dict(run.st.kind_state)
        state["epoch"] += 1
        epoch = state["epoch"]
        state["p"] = None
        if epoch <= spec.ramp_epochs:
            target = ramp_sparsity(state["start_sparsity"], spec.final_sparsity, epoch, spec.ramp_epochs)
            current = sparsity_of(run.model)
            if target > current:
                # prune_model removes a fraction of what remains: the fraction that lands on the target
                state["p"] = 1.0 - (1.0 - target) / (1.0 - current)
                prune_model(run.model, spec.criterion, state["p"], exclude=spec.exclude, spec=run.spec)
                run.st.ps = [*run.st.ps, state["p"]]
        run.st.kind_state = state
        acc = run.train_epoch(iteration=epoch, epoch=epoch, p=state["p"],
                              desc=f"gmp epoch {epoch}/{spec.epochs} sparsity {sparsity_of(run.model):.3f}")
        met = run.meets(acc)
        if met:
            run.keep_met(acc, epochs=epoch, p_applied=state["p"])
        if epoch >= spec.epochs:
            if not met:
                run.record_failed(acc, epochs=epoch, reason="final sparsity below the criterion")
            run.end_stage(reason="ramp-done", current_is_result=met)
