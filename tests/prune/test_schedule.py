"""The schedules as a pure function of a scripted accuracy sequence."""

from __future__ import annotations

import pytest

from amcprune.errors import AmcpruneError
from amcprune.prune.config import PruneConfig
from amcprune.prune.recipe import named_recipe
from amcprune.prune.schedule import PRUNE, REWIND, STOP, TRAIN, StageSettings, formula_ratio, p_sequence, simulate


def _kinds(steps):
    return [s.kind for s in steps]


def test_fmp_divides_p_and_stops_below_p_min():
    stage = StageSettings(method="fmp", p=0.2, divisor=2, p_min=0.05, max_epochs=2, patience=None)
    accs = [
        0.60,  # start: met -> prune 0.2
        0.55,  # it 1 ep 1: met -> prune 0.2
        0.40, 0.45,  # it 2: fails within 2 epochs -> rewind, p 0.1
        0.52,  # it 3: met -> prune 0.1
        0.30, 0.30,  # it 4: fails -> rewind, p 0.05
        0.30, 0.49,  # it 5: fails -> p 0.025 < p_min: stop
        0.99,  # never reached
    ]
    steps = simulate(stage, accs, threshold=0.5)
    assert _kinds(steps) == [PRUNE, PRUNE, TRAIN, REWIND, PRUNE, TRAIN, REWIND, TRAIN, STOP]
    assert p_sequence(steps) == [0.2, 0.2, 0.1, 0.1, 0.05]
    assert steps[-1].reason == "p-min"
    assert [s.iteration for s in steps] == [0, 1, 2, 2, 3, 4, 4, 5, 5]


def test_fmp_p_min_is_inclusive_and_structured_default_goes_lower():
    # p = 0.05 is still used (the run stops when p < p_min), 0.025 is not.
    stage = StageSettings(method="fmp", p=0.1, p_min=0.05, max_epochs=1, patience=None)
    steps = simulate(stage, [0.9, 0.1, 0.1, 0.1], threshold=0.5)
    assert p_sequence(steps) == [0.1, 0.05]
    assert steps[-1].kind == STOP
    cfg = PruneConfig(methods="fmp", criteria="structured,global", target=0.56)
    stages = cfg.stages()
    assert [(s.criterion, s.p_min) for s in stages] == [("structured", 0.01), ("global", 0.05)]
    structured = stages[0].model_copy(update={"max_epochs": 1})
    steps = simulate(structured, [0.9] + [0.1] * 20, threshold=0.5)
    assert p_sequence(steps) == [0.2, 0.1, 0.05, 0.025, 0.0125]


def test_fmp_without_any_met_model_stops():
    stage = StageSettings(method="fmp", p=0.2, max_epochs=2, patience=None)
    steps = simulate(stage, [0.1, 0.2, 0.3], threshold=0.5)
    assert _kinds(steps) == [TRAIN, TRAIN, STOP]
    assert steps[-1].reason == "never-met"


def test_imp_prunes_as_soon_as_met_and_stops_at_the_first_failure():
    stage = StageSettings(method="imp", p=0.2, max_epochs=3, patience=None)
    steps = simulate(stage, [0.4, 0.45, 0.51, 0.6, 0.3, 0.52, 0.1, 0.2, 0.3, 0.9], threshold=0.5)
    assert _kinds(steps) == [TRAIN, TRAIN, PRUNE, PRUNE, TRAIN, PRUNE, TRAIN, TRAIN, STOP]
    assert steps[-1].reason == "budget"
    assert p_sequence(steps) == [0.2, 0.2, 0.2]


def test_patience_ends_an_iteration_early():
    stage = StageSettings(method="imp", p=0.2, max_epochs=10, patience=2)
    steps = simulate(stage, [0.6, 0.40, 0.39, 0.38, 0.9], threshold=0.5)
    assert _kinds(steps) == [PRUNE, TRAIN, TRAIN, STOP]


def test_max_iterations_caps_the_prunes():
    stage = StageSettings(method="imp", p=0.2, max_epochs=3, max_iterations=2)
    steps = simulate(stage, [0.6, 0.6, 0.6, 0.6], threshold=0.5)
    assert _kinds(steps) == [PRUNE, PRUNE, STOP]
    assert steps[-1].reason == "max-iterations"


def test_imp_converge_trains_to_convergence_then_prunes_the_best_epoch():
    stage = StageSettings(method="imp-converge", p=0.3, max_epochs=4, patience=2)
    accs = [
        0.40,  # start: not met
        0.55, 0.60, 0.58, 0.59,  # round 0: converged after 4 epochs (max), best epoch 2 met -> restore + prune
        0.52, 0.50, 0.49,  # round 1: best epoch 1, patience 2 -> prune (restore epoch 1)
        0.40, 0.45, 0.44, 0.43,  # round 2: best 0.45 not met -> stop
    ]
    steps = simulate(stage, accs, threshold=0.5)
    assert _kinds(steps) == [TRAIN, TRAIN, TRAIN, TRAIN, PRUNE, TRAIN, TRAIN, PRUNE, TRAIN, TRAIN, TRAIN, STOP]
    assert steps[4].restore and steps[7].restore
    assert p_sequence(steps) == [0.3, 0.3]


def test_formula_ratio():
    assert formula_ratio([]) == 1.0
    assert formula_ratio([0.2] * 10) == pytest.approx(1 / 0.8**10)
    assert formula_ratio([0.5, 0.5]) == pytest.approx(4.0)


def test_config_validation():
    with pytest.raises(AmcpruneError, match="exactly one accuracy criterion"):
        PruneConfig.from_dict({"target": 0.5, "max_drop": 0.03})
    with pytest.raises(AmcpruneError, match="exactly one accuracy criterion"):
        PruneConfig.from_dict({})
    with pytest.raises(AmcpruneError, match="unknown method"):
        PruneConfig.from_dict({"methods": "lottery", "target": 0.5})
    with pytest.raises(AmcpruneError, match="give 1 or 3"):
        PruneConfig.from_dict({"methods": "imp,fmp", "criteria": "global,layer,structured", "target": 0.5})
    cfg = PruneConfig.from_dict({"methods": "imp,fmp", "criteria": "structured", "p": "0.1,0.2", "max_drop": 0.03})
    assert [(s.method, s.criterion, s.p) for s in cfg.stages()] == [("imp", "structured", 0.1), ("fmp", "structured", 0.2)]


def test_judge_at_end_decides_only_when_the_budget_is_spent():
    """One good or bad epoch in the middle of an iteration decides nothing; the iteration's last epoch does."""
    stage = StageSettings(method="fmp", p=0.2, p_min=0.05, max_epochs=3, patience=1, judge_at="end")
    accs = [
        0.60,  # start: met -> prune 0.2
        0.40, 0.30, 0.55,  # it 1: bad epochs (patience would have ended it), met at its end -> prune
        0.70, 0.60, 0.45,  # it 2: met early, not at the end -> rewind, p 0.1
        0.50, 0.50, 0.50,  # it 3 -> prune 0.1
    ]
    steps = simulate(stage, accs, threshold=0.5)
    assert _kinds(steps) == [PRUNE, TRAIN, TRAIN, PRUNE, TRAIN, TRAIN, REWIND, TRAIN, TRAIN, PRUNE]
    assert p_sequence(steps) == [0.2, 0.2, 0.1, 0.1]


def test_named_recipes_and_p_min_above_p():
    legacy = named_recipe("fmp-2021", target=0.56).stages[0]
    assert (legacy.judge_at, legacy.finetune, legacy.p, legacy.max_epochs) == ("epoch", "train", 0.2, 10)
    default = PruneConfig.from_dict({"max_drop": 0.02}).to_recipe().stages[0]
    ours = named_recipe("fmp", max_drop=0.02).stages[0]
    # The shorthand's defaults are the fmp recipe.
    assert default.model_dump() == ours.model_dump()
    assert default.finetune_lr_for(0.01) == pytest.approx(0.003)
    with pytest.raises(AmcpruneError, match="neither a named recipe"):
        named_recipe("lottery", target=0.5)
    with pytest.raises(AmcpruneError, match=r"p_min \(0.5\) is above p \(0.2\)"):
        PruneConfig.from_dict({"p": 0.2, "p_min": 0.5, "target": 0.5})
    with pytest.raises(AmcpruneError, match="max_epochs"):
        PruneConfig.from_dict({"max_epochs": 0, "target": 0.5})
