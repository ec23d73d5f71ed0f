"""Magnitude pruning under an accuracy criterion: the ``imp``, ``imp-converge`` and ``fmp`` stage kinds.

The decisions (train on, prune, rewind, stop) come from the pure state machine in
:mod:`amcprune.prune.schedule`; this module carries them out on the run: which weights go
(:mod:`amcprune.prune.criteria`), physical shrinking after structured pruning, and the fine-tuning schedule
each iteration starts with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from amcprune.outputs import WORK_DIR
from amcprune.prune.criteria import canonical_criterion, check_selection, prune_model
from amcprune.prune.schedule import PRUNE, REWIND, STOP, TRAIN, Decision, ScheduleState, StageSettings, decide, initial_state
from amcprune.prune.shrink import check_structured, shrink_with_spec
from amcprune.prune.stages.base import FinetuneRate, StageKind, StageSpec, register_stage_kind

if TYPE_CHECKING:
    from amcprune.prune.engine import PruneRun

P_MIN_UNSTRUCTURED = 0.05
P_MIN_STRUCTURED = 0.01


class MagnitudeOptions(FinetuneRate):
    """The settings of a magnitude-pruning stage that are one value per stage: also the flat shorthand's
    (:class:`~amcprune.prune.config.PruneConfig`), which applies each of them to every stage it builds."""

    model_config = ConfigDict(extra="forbid")

    divisor: float = Field(2.0, gt=1.0, description="fmp: p is divided by this after a failed iteration")
    max_epochs: int = Field(3, ge=1, description="training (fine-tuning) epochs per iteration")
    patience: int | None = Field(3, ge=1, description="epochs without a better judged accuracy that end an iteration")
    max_iterations: int | None = Field(None, ge=0, description="most prunes in a stage")
    prune_at_start: bool = True
    judge_at: Literal["epoch", "end"] = Field(
        "end", description="imp/fmp: decide an iteration after every epoch (2021 scripts) or at the end of its budget"
    )
    finetune: Literal["cosine", "constant", "train"] = Field(
        "cosine",
        description="each iteration's fine-tuning: a fresh optimizer at finetune_lr decaying to zero over max_epochs "
        "(cosine, per batch) or held (constant); 'train' keeps the dense run's optimizer and scheduler (2021 scripts)",
    )
    lr_rewind: bool | None = Field(
        None, description="finetune 'train' only: fresh optimizer/scheduler after every prune (default: imp-converge "
        "yes, imp/fmp no)"
    )
    exclude: list[str] = Field(default_factory=list, description="layers never pruned (name, conv3, last, glob)")
    layer_rates: dict[str, float] = Field(default_factory=dict, description="layers with their own rate")
    importance: Literal["l1", "cost"] = Field(
        "l1", description="global ranking of weights: by magnitude (l1), or by magnitude divided by the score one "
        "weight of its layer costs (cost, from the measurer's per-layer cost of the exported graph)"
    )
    cost_power: float = Field(1.0, gt=0, description="importance cost: divide by the weight's cost to this power")
    distill_weight: float = Field(
        0.0, ge=0, le=1, description="fine-tune on (1 - w) x cross-entropy + w x distillation from the dense model"
    )
    distill_temperature: float = Field(4.0, gt=0, description="temperature of the distillation term")


class MagnitudeStage(MagnitudeOptions, StageSpec):
    """A magnitude-pruning stage: which weights (``criterion``), how fast (``p``, and for fmp ``divisor`` and
    ``p_min``), the budget of each iteration and how it fine-tunes (:class:`MagnitudeOptions`)."""

    kind: Literal["imp", "imp-converge", "fmp"]
    criterion: str = Field("global", description="global, layer or structured (filters/neurons, shrunk)")
    p: float = Field(0.2, gt=0, lt=1, description="rate pruned from the remaining weights per iteration")
    p_min: float | None = Field(None, gt=0, lt=1, description="fmp: stop below this p (default 0.05, structured 0.01)")

    @field_validator("criterion")
    @classmethod
    def _canonical(cls, v: str) -> str:
        return canonical_criterion(v)

    @model_validator(mode="after")
    def _check(self) -> "MagnitudeStage":
        for name, rate in self.layer_rates.items():
            if not 0 <= rate < 1:
                raise ValueError(f"layer_rates[{name!r}] must be in [0, 1), got {rate}")
        if self.importance == "cost" and self.criterion != "global":
            raise ValueError(f"importance cost ranks weights across layers: it needs criterion global, not "
                             f"{self.criterion}")
        if self.kind == "fmp" and self.resolved_p_min > self.p:
            raise ValueError(f"p_min ({self.resolved_p_min}) is above p ({self.p}): fmp could never lower p; "
                             "give a smaller p_min")
        return self

    @property
    def needs_measurer(self) -> bool:
        return self.importance == "cost"

    @property
    def resolved_p_min(self) -> float:
        if self.p_min is not None:
            return self.p_min
        return P_MIN_STRUCTURED if self.criterion == "structured" else P_MIN_UNSTRUCTURED

    def settings(self) -> StageSettings:
        return StageSettings(method=self.kind, criterion=self.criterion, p=self.p, divisor=self.divisor,
                             p_min=self.resolved_p_min, max_epochs=self.max_epochs, patience=self.patience,
                             max_iterations=self.max_iterations, prune_at_start=self.prune_at_start,
                             judge_at=self.judge_at)

    def describe(self) -> str:
        ranking = "" if self.importance == "l1" else f" ranked by magnitude / cost^{self.cost_power:g}"
        return f"{self.kind} with {self.criterion} pruning{ranking}, p {self.p}, p_min {self.resolved_p_min}"

    def lr_rewind_for(self) -> bool:
        return self.lr_rewind if self.lr_rewind is not None else self.kind == "imp-converge"


@register_stage_kind
class MagnitudePruning(StageKind):
    names = ("imp", "imp-converge", "fmp")
    spec = MagnitudeStage

    def check(self, model: Any, model_spec: Any, spec: MagnitudeStage) -> None:
        if spec.criterion == "structured":
            check_structured(model_spec)
        check_selection(model, spec.criterion, spec.exclude, spec.layer_rates, model_spec)

    def progress(self, run: "PruneRun", spec: MagnitudeStage) -> dict[str, Any]:
        sched = run.st.schedule
        return {"iteration": sched.iteration if sched else 0, "p": sched.p if sched else spec.p}

    # --- the two entry points ------------------------------------------------------------------
    def start(self, run: "PruneRun", spec: MagnitudeStage, acc: float) -> None:
        stage = spec.settings()
        run.st.schedule = initial_state(stage)
        if spec.kind == "imp-converge":
            run.st.best_path = run.st.stage_start.path
        decision, new_sched = decide(stage, run.st.schedule, acc, run.meets(acc))
        self._apply(run, spec, decision, acc, new_sched)

    def step(self, run: "PruneRun", spec: MagnitudeStage) -> None:
        sched = run.st.schedule
        run.st.schedule = sched = sched.model_copy(update={"epoch": sched.epoch + 1})
        # Set before every epoch, not once per iteration: a resumed run starts here too.
        run.trainer.set_teacher(run.teacher_logits() if spec.distill_weight > 0 else None,
                                spec.distill_temperature, spec.distill_weight)
        acc = run.train_epoch(iteration=sched.iteration, epoch=sched.epoch, p=sched.p,
                              desc=f"{spec.kind}/{spec.criterion} p={sched.p:.3g} it {sched.iteration}")
        if spec.kind == "imp-converge" and (sched.best is None or acc > sched.best):
            rel = f"{WORK_DIR}/round-best.pt"
            run.save_model(rel, {"epoch": sched.epoch, "criterion_acc": acc})
            run.st.best_path = rel
        decision, new_sched = decide(spec.settings(), sched, acc, run.meets(acc))
        self._apply(run, spec, decision, acc, new_sched)

    # --- carrying out a decision -----------------------------------------------------------------
    def _apply(self, run: "PruneRun", spec: MagnitudeStage, decision: Decision, acc: float,
               new_sched: ScheduleState) -> None:
        old_sched = run.st.schedule
        epochs = old_sched.epoch
        if decision.kind == TRAIN:
            run.st.schedule = new_sched
            if epochs == 0:  # the stage's starting model trains: its first iteration begins
                self._begin_iteration(run, spec)
            return
        if decision.met:
            if decision.restore and run.st.best_path:
                # imp-converge: the round's best epoch (judged earlier) is its result; same lineage of rates.
                run.load_model(run.st.best_path)
                acc = float(old_sched.best)
            run.keep_met(acc, epochs=epochs, p_applied=decision.p if decision.kind == PRUNE else None,
                         reason=decision.reason)
        elif decision.kind in (REWIND, STOP):
            run.record_failed(acc, epochs=epochs, reason=decision.reason or "budget")

        run.st.schedule = new_sched
        if decision.kind == PRUNE:
            self._prune_or_stop(run, spec, decision.p)
        elif decision.kind == REWIND:
            run.rewind(p_applied=decision.p, old_p=decision.old_p)
            self._prune_or_stop(run, spec, decision.p)
        elif decision.kind == STOP:
            self._end(run, decision)

    def _end(self, run: "PruneRun", decision: Decision) -> None:
        met = run.st.rewind is not None
        run.end_stage(reason=decision.reason, current_is_result=decision.met and not decision.restore and met)

    def _prune(self, run: "PruneRun", spec: MagnitudeStage, p: float) -> dict[str, Any]:
        costs = None
        if spec.importance == "cost":
            costs = {name: cost ** spec.cost_power for name, cost in run.weight_costs().items()}
        report = prune_model(run.model, spec.criterion, p, exclude=spec.exclude, layer_rates=spec.layer_rates,
                             spec=run.spec, weight_costs=costs)
        info: dict[str, Any] = {"pruned": report.pruned, "unit": report.unit}
        run.st.ps = [*run.st.ps, p]
        if spec.criterion == "structured":
            run.spec, shrink = shrink_with_spec(run.model, run.spec)
            info["widths_after"] = list(shrink.widths_after.values())
            run.trainer.reset_optimizer()  # new, smaller parameter tensors
        elif spec.finetune == "train" and spec.lr_rewind_for():
            run.trainer.reset_optimizer()  # learning-rate rewinding
        self._begin_iteration(run, spec)
        return info

    def _begin_iteration(self, run: "PruneRun", spec: MagnitudeStage) -> None:
        """Every iteration fine-tunes with its own schedule (a fresh optimizer at the fine-tuning rate), not the
        dense run's: one epoch at the dense run's initial rate after a prune cost more accuracy than the prune
        itself. ``finetune: train`` keeps the 2021 behaviour (the train config's optimizer and scheduler)."""
        if spec.finetune == "train":
            return
        run.trainer.start_finetune(lr=spec.finetune_lr_for(run.train_config.lr), epochs=spec.max_epochs,
                                   schedule=spec.finetune)

    def _prune_or_stop(self, run: "PruneRun", spec: MagnitudeStage, p: float) -> None:
        """Prune with ``p``; when ``p`` is too small to remove a single weight or channel (e.g. a few channels
        left and a small structured rate) no later iteration can make progress: the stage ends with the current
        model, the last that met the criterion."""
        info = self._prune(run, spec, p)
        if info["pruned"] == 0:
            run.st.ps = run.st.ps[:-1]
            run.say(f"p {p:.4g} removes nothing from the remaining {info['unit']}: ending the stage")
            run.st.schedule = run.st.schedule.model_copy(update={"done": True, "stop_reason": "nothing-to-prune"})
            self._end(run, Decision(STOP, met=True, reason="nothing-to-prune"))
