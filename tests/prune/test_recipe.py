"""Recipes: named recipes, options on top of them, and a stage kind added from outside the package."""

from __future__ import annotations

from typing import Literal

import pytest
import torch
import yaml
from prune_helpers import tiny_data, tiny_spec, trained_checkpoint
from torch.nn.utils import prune as torch_prune

from amcprune.errors import AmcpruneError
from amcprune.prune.config import PruneConfig
from amcprune.prune.criteria import prunable_layers
from amcprune.prune.engine import prune_run, read_records
from amcprune.prune.recipe import Recipe, named_recipe, named_recipes, recipe_source, recipe_with_options
from amcprune.prune.stages import StageKind, StageSpec, register_stage_kind
from amcprune.utils.atomic import read_jsonl
from amcprune.utils.checkpoint import load_checkpoint


def test_named_recipes_parse_and_the_2021_ones_are_faithful():
    assert {"imp-2021", "fmp-2021", "fmp", "imp"} <= set(named_recipes())
    for name in named_recipes():
        recipe = named_recipe(name, max_drop=0.03)
        assert recipe.name == name and recipe.stages
    imp = named_recipe("imp-2021", target=0.5).stages[0]
    assert (imp.kind, imp.p, imp.judge_at, imp.finetune, imp.lr_rewind, imp.max_epochs, imp.patience) == (
        "imp", 0.2, "epoch", "train", False, 10, 3)
    fmp = named_recipe("fmp-2021", target=0.5).stages[0]
    assert (fmp.kind, fmp.p, fmp.divisor, fmp.p_min, fmp.judge_at, fmp.finetune) == (
        "fmp", 0.2, 2.0, 0.05, "epoch", "train")


def test_options_override_every_stage_and_lists_give_one_value_per_stage():
    base = {"max_drop": 0.03, "stages": [{"kind": "fmp", "criterion": "structured", "p": 0.2},
                                         {"kind": "fmp", "criterion": "global", "p": 0.3}]}
    recipe = recipe_with_options(base, {"max_epochs": 1, "p": [0.1, 0.4], "target": 0.5})
    assert (recipe.target, recipe.max_drop) == (0.5, None)  # a criterion given replaces the recipe's
    assert [(s.criterion, s.p, s.max_epochs) for s in recipe.stages] == [("structured", 0.1, 1), ("global", 0.4, 1)]
    with pytest.raises(AmcpruneError, match="give 1 or 2"):
        recipe_with_options(base, {"p": [0.1, 0.2, 0.3]})
    # A one-stage recipe is repeated to the longest list.
    one = recipe_with_options({"target": 0.5, "stages": [{"kind": "imp", "max_epochs": 2}]},
                              {"criteria": ["structured", "global"]})
    assert [(s.kind, s.criterion, s.max_epochs) for s in one.stages] == [("imp", "structured", 2), ("imp", "global", 2)]
    with pytest.raises(AmcpruneError, match=r"no stage \(fmp\) has the setting\(s\) warmup"):
        recipe_with_options(base, {"warmup": 3})
    with pytest.raises(AmcpruneError, match="unknown stage kind 'lottery'"):
        Recipe.from_dict({"target": 0.5, "stages": [{"kind": "lottery"}]})
    with pytest.raises(AmcpruneError, match="exactly one accuracy criterion"):
        Recipe.from_dict({"stages": [{"kind": "fmp"}]})


def test_the_shorthand_is_a_recipe_and_a_dumped_recipe_reads_back(tmp_path):
    cfg = PruneConfig(methods="fmp", criteria="structured,global", p="0.2,0.3", max_drop=0.03, max_epochs=1)
    recipe = cfg.to_recipe()
    assert [(s.kind, s.criterion, s.p, s.resolved_p_min) for s in recipe.stages] == [
        ("fmp", "structured", 0.2, 0.01), ("fmp", "global", 0.3, 0.05)]
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml())
    assert Recipe.from_dict(recipe_source(path)).model_dump() == recipe.model_dump()


# --- a stage kind from outside the package ------------------------------------------------------------
class ThresholdStage(StageSpec):
    """Zero every weight below ``threshold`` at once, fine-tune ``epochs`` epochs, keep the model if it meets."""

    kind: Literal["test-threshold"]
    threshold: float
    epochs: int = 1


@register_stage_kind
class ThresholdPruning(StageKind):
    names = ("test-threshold",)
    spec = ThresholdStage

    def start(self, run, spec, acc):
        for _, module in prunable_layers(run.model):
            torch_prune.custom_from_mask(module, "weight", (module.weight.detach().abs() >= spec.threshold).float())
        run.st.kind_state = {"epoch": 0, "iteration": 1}

    def step(self, run, spec):
        state = dict(run.st.kind_state)
        state["epoch"] += 1
        run.st.kind_state = state
        acc = run.train_epoch(iteration=1, epoch=state["epoch"], p=None, desc="threshold")
        if state["epoch"] < spec.epochs:
            return
        if run.meets(acc):
            run.keep_met(acc, epochs=state["epoch"], p_applied=None)
        else:
            run.record_failed(acc, epochs=state["epoch"], reason="budget")
        run.end_stage(reason="done", current_is_result=run.meets(acc))


def test_a_stage_kind_from_a_test_module_runs_through_a_recipe(tmp_path):
    spec = tiny_spec(conv_filters=8, dense_width=16)
    data = tiny_data(spec, n_train=32)
    ckpt = trained_checkpoint(tmp_path / "start.pt", spec, data, epochs=2)
    recipe = Recipe.from_dict({
        "target": 0.01, "cost": False, "export": False,  # target: any model meets it, so the result is kept
        "stages": [{"kind": "test-threshold", "threshold": 0.05, "epochs": 2},
                   {"kind": "fmp", "criterion": "global", "p": 0.5, "max_epochs": 1, "max_iterations": 1}],
    })
    out = tmp_path / "run"
    summary = prune_run(recipe, ckpt, None, out, data=data, quiet=True)
    records = read_records(out)
    toy = [r for r in records if r["stage"] == 0]
    assert [(r["event"], r["method"], r["criterion"]) for r in toy] == [
        ("met", "test-threshold", None), ("stop", "test-threshold", None)]
    assert toy[0]["epochs"] == 2 and toy[0]["sparsity"] > 0
    # The next stage started from the toy stage's result and pruned half of what was left.
    fmp = [r for r in records if r["stage"] == 1 and r["event"] == "met"]
    assert fmp[-1]["nonzero_weights"] < toy[0]["nonzero_weights"]
    assert summary["met"] and summary["final"]["stats"]["nonzero_weights"] == fmp[-1]["nonzero_weights"]
    stored = yaml.safe_load((out / "config.yaml").read_text())["recipe"]
    assert stored["stages"][0] == {"kind": "test-threshold", "threshold": 0.05, "epochs": 2}


def test_a_recipe_that_scores_needs_a_measurer(tmp_path):
    spec = tiny_spec(conv_filters=8, dense_width=16)
    data = tiny_data(spec, n_train=16)
    ckpt = trained_checkpoint(tmp_path / "start.pt", spec, data, epochs=1)
    with pytest.raises(AmcpruneError, match="no measurer"):
        prune_run(named_recipe("fmp", target=0.5), ckpt, None, tmp_path / "run", data=data, quiet=True)
    assert not (tmp_path / "run" / "config.yaml").exists()


class FirstLayerCosts:
    """A measurer whose first prunable layer costs 1000 times any other (no export, no score)."""

    def __init__(self):
        self.calls = 0

    def weight_costs(self, model):
        self.calls += 1
        names = [n for n, _ in prunable_layers(model)]
        return {n: 1000.0 if i == 0 else 1.0 for i, n in enumerate(names)}


def test_a_cost_aware_stage_asks_the_measurer_and_prunes_the_costly_layer_first(tmp_path):
    spec = tiny_spec(conv_filters=8, dense_width=16)
    data = tiny_data(spec, n_train=16)
    ckpt = trained_checkpoint(tmp_path / "start.pt", spec, data, epochs=1)
    recipe = named_recipe("fmp", target=0.01, p=0.1, max_epochs=1, max_iterations=1, importance="cost")
    recipe = recipe.model_copy(update={"cost": False, "export": False})
    with pytest.raises(AmcpruneError, match="no measurer"):
        prune_run(recipe, ckpt, None, tmp_path / "none", data=data, quiet=True)
    measurer = FirstLayerCosts()
    prune_run(recipe, ckpt, None, tmp_path / "run", data=data, measurer=measurer, quiet=True)
    assert measurer.calls == 1
    masks = load_checkpoint(tmp_path / "run" / "final.pt")["masks"]
    fractions = {k: float(v.float().mean()) for k, v in masks.items()}
    first = min(fractions, key=lambda k: int(k.split(".")[0]))
    others = [f for k, f in fractions.items() if k != first]
    # The costly layer goes first (here wholly: it holds fewer than 10 % of the weights), the rest pays the balance.
    assert fractions[first] == 0.0 and min(others) > 0.85
    with pytest.raises(AmcpruneError, match="needs criterion global"):
        named_recipe("fmp", target=0.5, criterion="layer", importance="cost")


def test_a_distilling_stage_fine_tunes_on_the_dense_models_outputs(tmp_path):
    spec = tiny_spec(conv_filters=8, dense_width=16)
    data = tiny_data(spec, n_train=16)
    ckpt = trained_checkpoint(tmp_path / "start.pt", spec, data, epochs=1)
    losses = {}
    for weight in (0.0, 0.8):
        recipe = named_recipe("fmp", target=0.01, p=0.2, max_epochs=1, max_iterations=1, distill_weight=weight)
        recipe = recipe.model_copy(update={"cost": False, "export": False})
        out = tmp_path / f"w{weight}"
        prune_run(recipe, ckpt, None, out, data=data, quiet=True)
        losses[weight] = [line["train_loss"] for line in read_jsonl(out / "epochs.jsonl")]
    # Same model, same batches, same prune: only the loss differs.
    assert len(losses[0.0]) == len(losses[0.8]) >= 1 and losses[0.0][0] != losses[0.8][0]
