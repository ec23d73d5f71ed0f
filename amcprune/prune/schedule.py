"""The pruning schedules as a pure state machine (no torch, no files): easy to test and to resume.

After every judgment of the accuracy criterion (at the start of a stage and after every training epoch) the
engine calls :func:`decide` with the stage settings, the schedule state and the judged accuracy; it gets back
a :class:`Decision` and the next state, and carries the decision out (train, prune, rewind, stop).

``imp``
    Iterative magnitude pruning with an accuracy criterion: as soon as the criterion holds (judged after every
    epoch), the model is saved and a fraction ``p`` of the remaining weights is pruned; training goes on. The
    stage stops when an iteration exhausts its budget (``max_epochs`` epochs, or ``patience`` epochs without a
    better judged accuracy) without meeting the criterion.
``imp-converge``
    Each round trains to convergence (``max_epochs`` or ``patience``), then, if the best epoch of the round met
    the criterion, that model is saved and pruned, with learning-rate rewinding (fresh optimizer and scheduler).
    Otherwise the stage stops.
``fmp``
    Feedback magnitude pruning: like ``imp``, but when an iteration fails, ``p`` is divided by ``n`` and the
    model rewinds to the last one that met the criterion, which is pruned with the smaller ``p``; the stage
    stops when ``p`` would fall below ``p_min``.

Every stage starts by judging its starting model (epoch 0): if it already meets the criterion it is pruned
at once (``prune_at_start``). Later iterations train at least one epoch. ``judge_at`` says when an ``imp`` or
``fmp`` iteration is decided: ``"epoch"`` (the 2021 scripts) prunes as soon as one epoch's judgment meets the
criterion, so one lucky (or unlucky) epoch decides; ``"end"`` (the default) trains the iteration's whole budget
(``max_epochs``, a fine-tuning schedule that decays to a low rate) and decides on the model at its end.
``max_iterations`` caps the number of prunes in a stage: the model that meets the criterion after the last
allowed prune ends the stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict

METHODS = ("imp", "imp-converge", "fmp")

# Decision kinds.
TRAIN = "train"  # train one more epoch
PRUNE = "prune"  # the current model met the criterion: save it, prune it with ``p``
REWIND = "rewind"  # fmp: the iteration failed; rewind to the last met model and prune it with the new ``p``
STOP = "stop"  # the stage is over (``reason``); its result is the last model that met the criterion

_EPS = 1e-12


class StageSettings(BaseModel):
    """The schedule settings of one stage (one method with one criterion)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["imp", "imp-converge", "fmp"]
    criterion: str = "global"
    p: float = 0.2
    divisor: float = 2.0
    p_min: float = 0.05
    max_epochs: int = 10
    patience: int | None = 3
    max_iterations: int | None = None
    prune_at_start: bool = True
    judge_at: Literal["epoch", "end"] = "epoch"


class ScheduleState(BaseModel):
    """Where a stage stands; JSON-able, stored in ``state.pt``."""

    model_config = ConfigDict(extra="forbid")

    p: float
    iteration: int = 0  # prunes applied in this stage so far
    epoch: int = 0  # epochs trained in the current iteration
    best: float | None = None  # best judged accuracy in the current iteration
    best_epoch: int = 0
    best_met: bool = False
    since_best: int = 0
    have_rewind: bool = False  # a model of this stage met the criterion (a rewind point exists)
    done: bool = False
    stop_reason: str | None = None


@dataclass(frozen=True)
class Decision:
    kind: str
    met: bool  # the judged model (with ``restore``: the round's best model) met the criterion
    p: float | None = None  # the rate to prune with (prune, rewind)
    old_p: float | None = None  # rewind: the rate before the division
    reason: str | None = None  # stop: why
    restore: bool = False  # imp-converge: first restore the round's best epoch (the one that met)


def initial_state(stage: StageSettings) -> ScheduleState:
    return ScheduleState(p=stage.p)


def _next_iteration(state: ScheduleState, **changes) -> ScheduleState:
    return state.model_copy(
        update={
            "iteration": state.iteration + 1,
            "epoch": 0,
            "best": None,
            "best_epoch": 0,
            "best_met": False,
            "since_best": 0,
            "have_rewind": True,
            **changes,
        }
    )


def _stop(state: ScheduleState, reason: str, met: bool) -> tuple[Decision, ScheduleState]:
    return Decision(STOP, met=met, reason=reason), state.model_copy(update={"done": True, "stop_reason": reason})


def decide(stage: StageSettings, state: ScheduleState, acc: float, met: bool) -> tuple[Decision, ScheduleState]:
    """The decision after a judgment with accuracy ``acc`` (``met``: it satisfies the criterion) made after
    ``state.epoch`` epochs of the current iteration (0: the stage's starting model)."""
    if state.done:
        raise ValueError("the stage is already over")
    at_start = state.epoch == 0
    if state.best is None or acc > state.best:
        state = state.model_copy(update={"best": acc, "best_epoch": state.epoch, "best_met": met, "since_best": 0})
    elif not at_start:
        state = state.model_copy(update={"since_best": state.since_best + 1})
    exhausted = state.epoch >= stage.max_epochs or (stage.patience is not None and state.since_best >= stage.patience)
    capped = stage.max_iterations is not None and state.iteration >= stage.max_iterations

    if at_start:
        if met and stage.prune_at_start:
            if capped:
                return _stop(state, "max-iterations", met=True)
            return Decision(PRUNE, met=True, p=state.p), _next_iteration(state)
        if stage.max_epochs <= 0:
            return _stop(state, "budget", met=met)
        return Decision(TRAIN, met=met), state

    if stage.method in ("imp", "fmp"):
        if stage.judge_at == "end" and state.epoch < stage.max_epochs:
            return Decision(TRAIN, met=met), state
        if met:
            if capped:
                return _stop(state, "max-iterations", met=True)
            return Decision(PRUNE, met=True, p=state.p), _next_iteration(state)
        if not exhausted:
            return Decision(TRAIN, met=False), state
        if stage.method == "imp":
            return _stop(state, "budget", met=False)
        if not state.have_rewind:
            return _stop(state, "never-met", met=False)
        new_p = state.p / stage.divisor
        if new_p < stage.p_min - _EPS:
            return _stop(state, "p-min", met=False)
        if capped:
            return _stop(state, "max-iterations", met=False)
        return Decision(REWIND, met=False, p=new_p, old_p=state.p), _next_iteration(state, p=new_p)

    # imp-converge
    if not exhausted:
        return Decision(TRAIN, met=met), state
    if not state.best_met:
        return _stop(state, "budget", met=False)
    restore = state.best_epoch != state.epoch
    if capped:
        return Decision(STOP, met=True, reason="max-iterations", restore=restore), state.model_copy(
            update={"done": True, "stop_reason": "max-iterations"}
        )
    return Decision(PRUNE, met=True, p=state.p, restore=restore), _next_iteration(state)


@dataclass(frozen=True)
class Step:
    """One judgment of a simulated schedule."""

    judgment: int
    iteration: int
    epoch: int
    acc: float
    kind: str
    p: float | None
    reason: str | None = None
    restore: bool = False


def simulate(stage: StageSettings, accuracies: Sequence[float], threshold: float) -> list[Step]:
    """Run the schedule on a scripted accuracy sequence (one value per judgment, the first is the starting
    model's). Stops at the end of the stage or of the sequence."""
    state = initial_state(stage)
    steps: list[Step] = []
    for i, acc in enumerate(accuracies):
        epoch, iteration = state.epoch, state.iteration
        decision, state = decide(stage, state, acc, acc >= threshold)
        steps.append(Step(i, iteration, epoch, acc, decision.kind, decision.p, decision.reason, decision.restore))
        if state.done:
            break
        state = state.model_copy(update={"epoch": state.epoch + 1})  # one epoch of training
    return steps


def p_sequence(steps: Sequence[Step]) -> list[float]:
    """The rates actually pruned with, in order."""
    return [s.p for s in steps if s.kind in (PRUNE, REWIND) and s.p is not None]


def formula_ratio(ps: Sequence[float]) -> float:
    """The compression ratio a formula would claim after pruning the rates ``ps``: prod 1/(1-p)."""
    ratio = 1.0
    for p in ps:
        ratio /= 1.0 - p
    return ratio
