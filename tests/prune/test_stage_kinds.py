"""The stage kinds beyond imp/fmp: gradual magnitude pruning (gmp), weight decay with threshold rounds (decay) and
per-layer bit lowering (bits).

Where a test asserts on a run's course (which step is kept, which is rolled back) the criterion's judgments are
scripted (``PruneRun._judge`` / ``judge_model`` patched), so no assertion rests on a training trajectory."""

from __future__ import annotations

import re

import pytest
import torch
from prune_helpers import tiny_data, tiny_spec, trained_checkpoint

from amcprune.cost import model_cost
from amcprune.errors import AmcpruneError
from amcprune.models import build_model, load_model
from amcprune.pipeline.measure import QonnxMeasurer
from amcprune.prune.criteria import mask_summary, prunable_layers, prune_below, weight_mask
from amcprune.prune.engine import PruneRun, prune_run, read_records
from amcprune.prune.recipe import Recipe, named_recipe, recipe_with_options
from amcprune.prune.stages import stage_kind
from amcprune.prune.stages.allocate import choose_levels
from amcprune.prune.stages.bits import candidate_quantizers, next_width, with_width
from amcprune.prune.stages.decay import _WeightDecayHooks
from amcprune.prune.stages.gradual import ramp_sparsity
from amcprune.utils.checkpoint import load_checkpoint


@pytest.fixture()
def start(tmp_path):
    spec = tiny_spec(conv_filters=8, dense_width=16)
    data = tiny_data(spec, n_train=16)
    return spec, data, trained_checkpoint(tmp_path / "start.pt", spec, data, epochs=1)


def scripted_judge(monkeypatch, accuracies):
    """The criterion's judgments, in order: the dense model first, then one per trained epoch."""
    values = iter(accuracies)
    monkeypatch.setattr(PruneRun, "_judge", lambda self: next(values))


# --- gmp -------------------------------------------------------------------------------------------------------
def test_the_gmp_ramp_is_zhu_and_gupta_cubic():
    assert ramp_sparsity(0.0, 0.9, 0, 4) == 0.0
    assert ramp_sparsity(0.0, 0.9, 4, 4) == pytest.approx(0.9)
    assert ramp_sparsity(0.0, 0.9, 2, 4) == pytest.approx(0.9 * (1 - 0.5**3))
    assert ramp_sparsity(0.5, 0.9, 1, 4) == pytest.approx(0.9 - 0.4 * 0.75**3)


def test_gmp_follows_the_ramp_and_keeps_the_sparsest_epoch_that_met(tmp_path, start, monkeypatch):
    _, data, ckpt = start
    # Met until the third ramp epoch, then never again: the result is the second ramp epoch's model.
    scripted_judge(monkeypatch, [0.9, 0.8, 0.8, 0.1, 0.1, 0.1])
    recipe = Recipe.from_dict({"target": 0.5, "cost": False, "export": False, "stages": [
        {"kind": "gmp", "final_sparsity": 0.8, "ramp_epochs": 4, "recover_epochs": 1}]})
    summary = prune_run(recipe, ckpt, None, tmp_path / "run", data=data, quiet=True)
    records = read_records(tmp_path / "run")
    assert [(r["event"], r["iteration"]) for r in records] == [
        ("met", 0), ("met", 1), ("met", 2), ("failed", 5), ("stop", 5)]
    # each kept epoch's sparsity is the ramp's (to the nearest weight)
    dense = records[0]["nonzero_weights"]
    for r in records[1:3]:
        unmasked = r["unmasked_weights"] / r["weights"]
        assert unmasked == pytest.approx(1 - ramp_sparsity(0.0, 0.8, r["iteration"], 4), abs=2 / r["weights"])
    assert summary["final"]["path"].endswith("s0-i002.pt")
    final, _, _ = load_model(tmp_path / "run" / "final.pt")
    assert mask_summary(final)["unmasked"] == records[2]["unmasked_weights"] < dense


# --- decay -----------------------------------------------------------------------------------------------------
def test_prune_below_masks_exactly_the_weights_under_the_threshold():
    model = build_model(tiny_spec(conv_filters=8, dense_width=16))
    before = {n: m.weight.detach().abs().clone() for n, m in prunable_layers(model)}
    prune_below(model, 0.3, relative=True)
    for name, module in prunable_layers(model):
        expected = before[name] >= 0.3 * before[name].max()
        assert torch.equal(weight_mask(module), expected)
    prune_below(model, 0.05, relative=False, exclude=["last"])
    last_name, last = prunable_layers(model)[-1]
    assert torch.equal(weight_mask(last), before[last_name] >= 0.3 * before[last_name].max())


def test_the_decay_hooks_pull_only_the_prunable_weights():
    model = build_model(tiny_spec(conv_filters=8, dense_width=16))
    x = torch.randn(4, 2, 128)
    hooks = _WeightDecayHooks(model, 0.5)
    model(x).sum().backward()
    with_decay = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    hooks.close()
    model.zero_grad()
    model(x).sum().backward()
    prunable = {f"{n}.weight" for n, _ in prunable_layers(model)}
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        extra = with_decay[name] - param.grad
        if name in prunable:
            assert torch.allclose(extra, 0.5 * param.detach(), atol=1e-6), name
        else:
            assert torch.equal(extra, torch.zeros_like(extra)), name


def test_a_decay_round_that_fails_is_rolled_back_and_ends_the_stage(tmp_path, start, monkeypatch):
    _, data, ckpt = start
    # round 1 (decay epoch, threshold epoch) meets; round 2 fails
    scripted_judge(monkeypatch, [0.9, 0.1, 0.8, 0.1, 0.2])
    recipe = Recipe.from_dict({"target": 0.5, "cost": False, "export": False, "stages": [
        {"kind": "decay", "thresholds": [0.2, 0.4, 0.6], "decay_epochs": 1, "finetune_epochs": 1}]})
    summary = prune_run(recipe, ckpt, None, tmp_path / "run", data=data, quiet=True)
    records = read_records(tmp_path / "run")
    assert [(r["event"], r["iteration"], r.get("reason")) for r in records] == [
        ("met", 0, "start"), ("met", 1, "threshold 0.2"), ("failed", 2, "threshold 0.4"), ("rewind", 2, None),
        ("stop", 2, "round-failed")]
    assert records[1]["nonzero_weights"] < records[0]["nonzero_weights"]
    assert summary["final"]["path"] == records[1]["checkpoint"]
    final, _, _ = load_model(tmp_path / "run" / "final.pt")
    assert mask_summary(final)["unmasked"] == records[1]["unmasked_weights"]


def dtype_bits(name: str) -> int:
    """Bits of a qonnx datatype name (INT4, UINT3, SCALEDINT<4>)."""
    return int(re.fullmatch(r"(?:SCALED)?U?INT<?(\d+)>?", name).group(1))


# --- bits ------------------------------------------------------------------------------------------------------
class BitsMeasurer:
    """A score that falls with every weight bit and input bit, a conv1 bit twice as much (no export)."""

    def score(self, model):
        spec = model.spec
        weights = sum(spec.bits(name)["weight_bits"] for name in ("conv0", "conv1", "conv1", "conv2", "dense2"))
        return {"bops": 0.0, "weight_bits": 0.0, "score": (weights + spec.input_bits) / 100, "warnings": []}


def judge_by_bits(monkeypatch, fails):
    """The criterion fails exactly when ``fails(spec)``: for the run's model and for candidates alike."""
    def acc_of(model):
        return 0.2 if fails(model.spec) else 0.9
    monkeypatch.setattr(PruneRun, "_judge", lambda self: acc_of(self.model))
    monkeypatch.setattr(PruneRun, "judge_model", lambda self, model: acc_of(model))


def test_bit_steps_are_kept_while_they_meet_and_a_failed_step_is_rolled_back(tmp_path, start, monkeypatch):
    spec, data, ckpt = start
    judge_by_bits(monkeypatch, lambda s: s.bits("conv1")["weight_bits"] < 3)
    recipe = Recipe.from_dict({"target": 0.5, "cost": True, "export": False, "stages": [
        {"kind": "bits", "ladder": [4, 3, 2], "targets": "weights", "layers": ["conv0", "conv1"]}]})
    summary = prune_run(recipe, ckpt, None, tmp_path / "run", data=data, measurer=BitsMeasurer(), quiet=True)
    records = read_records(tmp_path / "run")
    assert [(r["event"], r.get("reason")) for r in records] == [
        ("met", "start"),
        ("met", "conv1 weight_bits 4->3"),  # no accuracy lost either way: the larger saving first
        ("met", "conv0 weight_bits 4->3"),  # conv1's next step costs accuracy (estimated before fine-tuning)
        ("met", "conv0 weight_bits 3->2"),  # conv0's next step, queued after its first was kept
        ("failed", "conv1 weight_bits 3->2 rolled back"),
        ("rewind", None),
        ("stop", "no-steps-left")]
    assert [r["score"] for r in records[:4]] == pytest.approx([0.28, 0.26, 0.25, 0.24])
    final = load_checkpoint(tmp_path / "run" / "final.pt")
    assert final["spec"]["layer_bits"] == {"conv0": {"weight_bits": 2}, "conv1": {"weight_bits": 3}}
    assert summary["final"]["path"] == records[3]["checkpoint"]
    # the rolled-back step left the run's model at the kept spec (the state resumes from it)
    state = load_checkpoint(tmp_path / "run" / "state.pt")
    assert state["spec"]["layer_bits"] == final["spec"]["layer_bits"]


def test_a_bit_step_keeps_the_weights_and_the_export_bills_the_new_width(tmp_path, start, monkeypatch):
    spec, data, ckpt = start
    judge_by_bits(monkeypatch, lambda s: False)
    recipe = Recipe.from_dict({"target": 0.01, "stages": [
        {"kind": "bits", "ladder": [4, 2], "targets": "weights", "layers": ["conv1"], "max_epochs": 1}]})
    summary = prune_run(recipe, ckpt, None, tmp_path / "run", data=data, measurer=QonnxMeasurer(), quiet=True)
    records = read_records(tmp_path / "run")
    assert [r["event"] for r in records] == ["met", "met", "stop"] and records[1]["score"] < records[0]["score"]
    cost = model_cost(tmp_path / "run" / "final.onnx")
    assert summary["final_cost"]["score"] == pytest.approx(cost.score) == pytest.approx(records[1]["score"])
    weight_bits = [dtype_bits(layer["weight_dtype"]) for layer in cost.per_layer]
    assert weight_bits[1] == 2 and set(weight_bits[:1] + weight_bits[2:]) == {4}


def test_exported_bits_equal_the_specs_for_every_quantizer():
    spec = tiny_spec(conv_filters=8, dense_width=16, input_bits=6,
                     layer_bits={"conv0": {"weight_bits": 3, "act_bits": 2}, "conv3": {"act_bits": 5},
                                 "dense1": {"weight_bits": 5}})
    cost = model_cost(build_model(spec))
    names = [f"conv{i}" for i in range(7)] + ["dense0", "dense1", "dense2"]
    assert len(cost.per_layer) == len(names)
    input_bits = spec.input_bits
    for name, layer in zip(names, cost.per_layer):
        assert dtype_bits(layer["weight_dtype"]) == spec.weight_bits_of(name), (name, layer["weight_dtype"])
        assert dtype_bits(layer["input_dtype"]) == input_bits, (name, layer["input_dtype"])
        input_bits = spec.act_bits_of(name) if name != "dense2" else None


def test_bit_candidates_and_ladder():
    spec = tiny_spec()
    stage = Recipe.from_dict({"target": 0.5, "stages": [{"kind": "bits", "layers": ["conv*", "input"],
                                                         "exclude": ["conv6"]}]}).stages[0]
    quantizers = candidate_quantizers(spec, stage)
    assert ("input", "input_bits") in quantizers and ("conv0", "act_bits") in quantizers
    assert not any(layer in ("conv6", "dense0") for layer, _ in quantizers)
    assert next_width([8, 6, 4, 2, 1], 4, "weight_bits") == 2 and next_width([8, 6, 4, 2, 1], 2, "weight_bits") is None
    assert next_width([8, 6, 4, 2, 1], 2, "act_bits") == 1
    assert with_width(spec, "input", "input_bits", 6).input_bits == 6
    assert with_width(spec, "conv2", "act_bits", 3).bits("conv2") == {"weight_bits": 4, "act_bits": 3}
    nothing = Recipe.from_dict({"target": 0.5, "stages": [{"kind": "bits", "layers": ["nothing"]}]}).stages[0]
    with pytest.raises(AmcpruneError, match="no quantizer"):
        stage_kind("bits").check(build_model(spec), spec, nothing)
    with pytest.raises(AmcpruneError, match="needs a quantized model"):
        stage_kind("bits").check(build_model(tiny_spec(quantized=False)), tiny_spec(quantized=False), stage)


# --- recipes with mixed kinds ----------------------------------------------------------------------------------
def test_options_go_to_the_stages_that_have_them():
    recipe = named_recipe("fmp-bits", max_drop=0.03, p=0.3, patience=1, max_epochs=2)
    fmp, bits = recipe.stages
    assert (fmp.p, fmp.patience, fmp.max_epochs) == (0.3, 1, 2) and bits.max_epochs == 2
    with pytest.raises(AmcpruneError, match=r"no stage \(gmp\) has the setting\(s\) p"):
        named_recipe("gmp", max_drop=0.03, p=0.3)
    with pytest.raises(AmcpruneError, match="relative thresholds"):
        recipe_with_options({"max_drop": 0.03, "stages": [{"kind": "decay", "thresholds": [1.5]}]}, {})


# --- allocate --------------------------------------------------------------------------------------------------
def test_the_knapsack_finds_the_cheapest_choice_that_saves_enough():
    import itertools
    import random

    rng = random.Random(0)
    for _ in range(30):
        options = {f"l{i}": [(f, rng.uniform(0, 5), rng.uniform(0, 1)) for f in (0.2, 0.5, 0.8)] for i in range(4)}
        need, resolution = rng.uniform(1, 12), 400
        chosen = choose_levels(options, need, resolution)
        # brute force over every combination, savings counted in whole budget steps as the knapsack counts them
        step = need / resolution
        feasible = [sum(o[2] for o in combo)
                    for combo in itertools.product(*[[(0.0, 0.0, 0.0), *opts] for opts in options.values()])
                    if sum(int(o[1] / step) for o in combo) >= resolution]
        if not feasible:
            assert chosen is None
            continue
        by_level = {name: {o[0]: o for o in opts} for name, opts in options.items()}
        picked = [by_level[n][level] if level else (0.0, 0.0, 0.0) for n, level in chosen.items()]
        assert sum(o[1] for o in picked) >= need
        assert sum(o[2] for o in picked) == pytest.approx(min(feasible))


class LayerCosts:
    """A weight of the first prunable layer adds 1e-3 to the score, any other 1e-4: the score is their sum."""

    def weight_costs(self, model):
        return {n: 1e-3 if i == 0 else 1e-4 for i, (n, _) in enumerate(prunable_layers(model))}

    def score(self, model):
        costs = self.weight_costs(model)
        total = sum(costs[n] * int(weight_mask(m).sum()) for n, m in prunable_layers(model))
        return {"bops": 0.0, "weight_bits": 0.0, "score": total, "warnings": []}


def test_allocation_meets_the_score_budget_where_accuracy_is_cheap_and_halves_a_failed_cut(tmp_path, start,
                                                                                          monkeypatch):
    _, data, ckpt = start
    classifier = lambda model: prunable_layers(model)[-1][1]  # noqa: E731
    # Pruning the classifier costs accuracy in the estimates; the trained models' judgments are scripted:
    # the first allocation fails, the second (half the cut) is met.
    monkeypatch.setattr(PruneRun, "judge_model",
                        lambda self, model: 0.2 if bool((~weight_mask(classifier(model))).any()) else 0.9)
    scripted_judge(monkeypatch, [0.9, 0.1, 0.9])
    recipe = Recipe.from_dict({"target": 0.5, "cost": True, "export": False, "stages": [
        {"kind": "allocate", "cut": 0.3, "levels": [0.5], "max_iterations": 2}]})
    summary = prune_run(recipe, ckpt, None, tmp_path / "run", data=data, measurer=LayerCosts(), quiet=True)
    records = read_records(tmp_path / "run")
    assert [(r["event"], r["iteration"], r["p"]) for r in records] == [
        ("met", 0, 0.3), ("failed", 1, 0.3), ("rewind", 1, 0.15), ("met", 2, 0.15), ("stop", 2, 0.15)]
    assert records[1]["score"] <= 0.7 * records[0]["score"] and records[3]["score"] <= 0.85 * records[0]["score"]
    final, _, _ = load_model(tmp_path / "run" / "final.pt")
    assert not bool((~weight_mask(classifier(final))).any())  # the costly-in-accuracy layer was left alone
    assert summary["final"]["path"] == records[3]["checkpoint"]


# --- resume ----------------------------------------------------------------------------------------------------
def _judge_by_state(kind):
    """Judgments that depend only on where the run stands, so a resumed run is judged as the uninterrupted one."""
    def judge(run):
        state = run.st.kind_state or {}
        if kind == "gmp":
            return 0.1 if state.get("epoch", 0) >= 3 else 0.9
        if kind == "decay":
            return 0.1 if state.get("round", 0) == 2 else 0.9
        if kind == "allocate":
            return 0.1 if state.get("iteration", 0) == 1 else 0.9
        return 0.2 if run.model.spec.bits("conv1")["weight_bits"] < 3 else 0.9
    return judge


RESUME_STAGES = {
    "gmp": {"kind": "gmp", "final_sparsity": 0.7, "ramp_epochs": 3, "recover_epochs": 1},
    "decay": {"kind": "decay", "thresholds": [0.2, 0.3, 0.4], "decay_epochs": 1, "finetune_epochs": 1},
    "allocate": {"kind": "allocate", "cut": 0.3, "levels": [0.5], "max_iterations": 2},
    "bits": {"kind": "bits", "ladder": [4, 3, 2], "targets": "weights", "layers": ["conv0", "conv1"]},
}


@pytest.mark.parametrize("kind", list(RESUME_STAGES))
def test_a_killed_run_of_each_kind_resumes_to_the_same_records_and_model(kind, tmp_path, start, monkeypatch):
    _, data, ckpt = start
    judge = _judge_by_state(kind)
    monkeypatch.setattr(PruneRun, "_judge", judge)
    monkeypatch.setattr(PruneRun, "judge_model", lambda self, model: judge(self) if kind != "bits" else
                        (0.2 if model.spec.bits("conv1")["weight_bits"] < 3 else 0.9))
    measurer = LayerCosts() if kind == "allocate" else BitsMeasurer()
    recipe = Recipe.from_dict({"target": 0.5, "cost": True, "export": False, "stages": [RESUME_STAGES[kind]]})
    prune_run(recipe, ckpt, None, tmp_path / "full", data=data, measurer=measurer, quiet=True)

    class Killed(Exception):
        pass

    kills = iter([1, 2] if kind == "allocate" else [1, 3])  # epochs after which the run is killed
    at = next(kills)

    def hook(info):
        if info["epochs_total"] >= at and info["phase"] == "train":
            raise Killed

    out, n_kills = tmp_path / "killed", 0
    while True:
        try:
            prune_run(None if n_kills else recipe, None if n_kills else ckpt, None, out, data=data, measurer=measurer,
                      quiet=True, resume=n_kills > 0, on_epoch=hook)
            break
        except Killed:
            n_kills += 1
            at = next(kills, 10**9)
    assert n_kills == 2

    def strip(records):
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]

    assert strip(read_records(out)) == strip(read_records(tmp_path / "full"))
    full, killed = load_checkpoint(tmp_path / "full" / "final.pt"), load_checkpoint(out / "final.pt")
    assert full["spec"] == killed["spec"]
    assert all(torch.equal(full["model"][k], killed["model"][k]) for k in full["model"])
