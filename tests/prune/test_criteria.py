"""Each criterion prunes exactly the requested amount of the *remaining* weights, and masks hold in training."""

from __future__ import annotations

import pytest
import torch
from prune_helpers import tiny_data, tiny_spec, tiny_train_config

from amcprune.errors import AmcpruneError
from amcprune.models import build_model
from amcprune.prune.criteria import (
    check_selection,
    prunable_layers,
    prune_model,
    remaining_channels,
    remaining_weights,
    round_half_up,
)
from amcprune.prune.records import quantized_weight, weight_counts


def _model(**overrides):
    torch.manual_seed(0)
    return build_model(tiny_spec(**overrides))


def _remaining(model):
    return {name: remaining_weights(m) for name, m in prunable_layers(model)}


@pytest.mark.parametrize("p", [0.2, 0.5, 0.37])
def test_global_prunes_exactly_p_of_the_remaining_weights(p):
    model = _model()
    for _ in range(3):  # the rate applies to what is left each time
        before = sum(_remaining(model).values())
        report = prune_model(model, "global", p)
        after = sum(_remaining(model).values())
        assert before - after == round_half_up(p * before) == report.pruned
    # One global threshold: every surviving weight is at least as large as every pruned one of this step.
    assert len({n for n, m in prunable_layers(model)}) == 10


def test_global_uses_one_threshold_across_layers():
    model = _model()
    layers = prunable_layers(model)
    prune_model(model, "global", 0.5)
    kept = torch.cat([m.weight_orig[m.weight_mask.bool()].abs().flatten() for _, m in layers])
    pruned = torch.cat([m.weight_orig[~m.weight_mask.bool()].abs().flatten() for _, m in layers])
    assert pruned.max() <= kept.min()
    rates = {n: 1 - remaining_weights(m) / m.weight.numel() for n, m in layers}
    assert max(rates.values()) - min(rates.values()) > 0.05  # layers end at different rates


def test_layerwise_prunes_exactly_p_of_each_layer():
    model = _model()
    prune_model(model, "layer", 0.3)
    before = _remaining(model)
    prune_model(model, "layer", 0.3)
    after = _remaining(model)
    for name in before:
        assert before[name] - after[name] == round_half_up(0.3 * before[name])


def test_excluded_layers_and_own_rates():
    model = _model()
    names = [n for n, _ in prunable_layers(model)]
    totals = _remaining(model)
    report = prune_model(model, "global", 0.5, exclude=["conv0"], layer_rates={"last": 0.0, "dense0": 0.25},
                         spec=tiny_spec())
    after = _remaining(model)
    assert after["1"] == totals["1"]  # conv0 is module 1
    assert after[names[-1]] == totals[names[-1]]  # the classifier stays dense
    assert totals["30"] - after["30"] == round_half_up(0.25 * totals["30"])  # dense0 at its own rate
    shared = [n for n in names if n not in ("1", "30", names[-1])]
    assert sum(totals[n] - after[n] for n in shared) == round_half_up(0.5 * sum(totals[n] for n in shared))
    assert report.pruned == sum(totals[n] - after[n] for n in names)


def test_unknown_layer_is_a_user_error():
    with pytest.raises(AmcpruneError, match="no prunable layer matches"):
        prune_model(_model(), "global", 0.2, exclude=["conv99"])
    with pytest.raises(AmcpruneError, match="unknown pruning criterion"):
        prune_model(_model(), "random", 0.2)
    with pytest.raises(AmcpruneError, match=r"in \[0, 1\)"):
        prune_model(_model(), "global", 1.0)
    # Excluding everything used to "prune" with p 0.2 and remove nothing.
    for criterion in ("global", "layer", "structured"):
        with pytest.raises(AmcpruneError, match="leave no layer to prune"):
            prune_model(_model(), criterion, 0.2, exclude=["*"])
    with pytest.raises(AmcpruneError, match="leave no layer to prune"):
        check_selection(_model(), "global", layer_rates={"*": 0.0})
    check_selection(_model(), "global", exclude=["conv0"], spec=tiny_spec())  # something left: fine


def test_structured_prunes_exactly_p_of_the_remaining_channels_and_masks_the_whole_channel():
    model = _model(conv_filters=8, dense_width=16)
    layers = prunable_layers(model)
    before = {n: remaining_channels(m) for n, m in layers}
    report = prune_model(model, "structured", 0.25)
    after = {n: remaining_channels(m) for n, m in layers}
    for name, _ in layers[:-1]:
        assert before[name] - after[name] == round_half_up(0.25 * before[name])
    assert after[layers[-1][0]] == before[layers[-1][0]]  # never the classes
    assert report.unit == "channels" and report.pruned == sum(before[n] - after[n] for n in before)
    # The filter rows and the BatchNorm gamma and beta of every removed channel are masked.
    seq = model
    for name, module in layers[:-1]:
        alive = module.weight_mask.reshape(module.weight_mask.shape[0], -1).any(dim=1)
        bn = seq[int(name) + 1]
        assert torch.equal(bn.weight_mask.bool(), alive)
        assert torch.equal(bn.bias_mask.bool(), alive)
    # Again: p applies to the remaining channels.
    before = after
    prune_model(model, "structured", 0.25)
    after = {n: remaining_channels(m) for n, m in layers}
    for name, _ in layers[:-1]:
        assert before[name] - after[name] == round_half_up(0.25 * before[name])


def test_structured_keeps_at_least_one_channel():
    model = _model()
    for _ in range(6):
        prune_model(model, "structured", 0.9)
    for _, module in prunable_layers(model):
        assert remaining_channels(module) >= 1


def test_masked_channel_outputs_exactly_zero():
    model = _model(conv_filters=8)
    data = tiny_data()
    model.train()
    xb, _, _ = next(data.batches("train", 16))
    model(xb)  # BN statistics away from their initial values
    prune_model(model, "structured", 0.5)
    with torch.no_grad():
        model.eval()
        out = xb
        for i, module in enumerate(model):
            out = module(out)
            if i == 4:  # after conv0, BN, QuantReLU, MaxPool
                break
    dead = ~model[1].weight_mask.reshape(8, -1).any(dim=1)
    value = out.value if hasattr(out, "value") and not isinstance(out, torch.Tensor) else out
    assert dead.sum() == 4
    assert torch.count_nonzero(value[:, dead]) == 0


@pytest.mark.parametrize("criterion", ["global", "layer", "structured"])
def test_masks_survive_training_steps(criterion):
    from amcprune.train.trainer import Trainer

    spec = tiny_spec()
    model = _model()
    data = tiny_data(spec)
    trainer = Trainer(model, tiny_train_config(), data, quiet=True)
    prune_model(model, criterion, 0.5)
    zero = {n: ~m.weight_mask.bool() for n, m in prunable_layers(model) if hasattr(m, "weight_mask")}
    orig_before = {n: m.weight_orig.detach().clone() for n, m in prunable_layers(model) if hasattr(m, "weight_orig")}
    trainer.train_epoch()
    trainer.train_epoch()
    changed = False
    for name, module in prunable_layers(model):
        if name in zero:
            w = module.weight  # recomputed by the mask hook at the last forward
            assert torch.count_nonzero(w[zero[name]]) == 0
            assert torch.count_nonzero(quantized_weight(module)[zero[name]]) == 0
            changed |= not torch.equal(module.weight_orig[~zero[name]], orig_before[name][~zero[name]])
    assert changed  # the surviving weights did train
    counts = weight_counts(model)
    assert counts["unmasked_weights"] == sum(int(m.weight_mask.sum()) if hasattr(m, "weight_mask") else m.weight.numel()
                                             for _, m in prunable_layers(model))
    assert counts["nonzero_weights"] <= counts["unmasked_weights"]


def test_weight_costs_prune_the_costlier_layers_first():
    """With every layer's magnitudes alike, a global rate ranked by magnitude / cost takes the weights of the
    costly layer before any of the cheap ones; without costs the same rate spreads over both."""
    model = _model()
    layers = prunable_layers(model)
    torch.manual_seed(1)
    for _, m in layers:
        with torch.no_grad():
            m.weight.copy_(torch.rand_like(m.weight) + 0.5)  # magnitudes in [0.5, 1.5) in every layer
    first, rest = layers[0][0], [n for n, _ in layers[1:]]
    dense = _remaining(model)
    costs = {first: 100.0, **{n: 1.0 for n in rest}}
    # Fewer weights than the first layer holds: all of them come from it (1.5 / 100 < 0.5 / 1).
    amount = 0.5 * dense[first] / sum(dense.values())
    report = prune_model(model, "global", amount, weight_costs=costs)
    after = _remaining(model)
    assert dense[first] - after[first] == report.pruned and report.pruned > 0
    assert all(after[n] == dense[n] for n in rest)
    plain = _model()
    for (_, m), (_, src) in zip(prunable_layers(plain), layers):
        with torch.no_grad():
            m.weight.copy_(src.weight_orig)
    prune_model(plain, "global", amount)
    assert any(_remaining(plain)[n] < dense[n] for n in rest)
    with pytest.raises(AmcpruneError, match="need the global criterion"):
        prune_model(_model(), "layer", 0.2, weight_costs=costs)
    with pytest.raises(AmcpruneError, match="no positive weight cost"):
        prune_model(_model(), "global", 0.2, weight_costs={first: 1.0})
