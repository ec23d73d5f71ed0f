"""Structured pruning then shrinking keeps the outputs exactly and leaves a spec that rebuilds the model."""

from __future__ import annotations

import pytest
import torch
from prune_helpers import tiny_data, tiny_spec

from amcprune.models import build_model, validate_spec
from amcprune.prune.criteria import masked_parameters, prunable_layers, prune_model
from amcprune.prune.shrink import alive_channels, plan_shrink, shrink_state, shrink_with_spec
from amcprune.utils.checkpoint import model_state


def _logits(out):
    return out.value if hasattr(out, "value") and not isinstance(out, torch.Tensor) else out


def _trained(spec, steps=4):
    torch.manual_seed(0)
    model = build_model(spec)
    data = tiny_data(spec)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    batches = list(data.batches("train", 32, shuffle=True, generator=torch.Generator().manual_seed(0)))
    for xb, yb, _ in batches[:steps]:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(_logits(model(xb)), yb).backward()
        opt.step()
    return model, data, opt


@pytest.mark.parametrize("quantized", [True, False])
def test_shrink_keeps_outputs_and_spec_rebuilds(quantized):
    spec = tiny_spec(conv_filters=[6, 8, 5, 8, 7, 8, 6], dense_width=[12, 10], quantized=quantized)
    model, data, opt = _trained(spec)
    prune_model(model, "structured", 0.4)
    # Train a little with the channel masks on (BN statistics move; masked gamma/beta stay zero).
    model.train()
    xb, yb, _ = next(data.batches("train", 32))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(_logits(model(xb)), yb).backward()
        opt.step()
    scales_before = {k: v.clone() for k, v in model.state_dict().items() if "scaling_impl.value" in k}
    x = torch.cat([b[0] for b in data.batches("test", 64)])
    model.eval()
    with torch.no_grad():
        before = _logits(model(x)).clone()

    new_spec, result = shrink_with_spec(model, spec)

    model.eval()
    with torch.no_grad():
        after = _logits(model(x))
    assert torch.allclose(after, before, atol=1e-6, rtol=0)
    assert result.removed > 0
    expected = [max(1, w - int(w * 0.4 + 0.5)) for w in [6, 8, 5, 8, 7, 8, 6]]
    assert new_spec.filters_list() == expected
    assert new_spec.dense_list() == [12 - 5, 10 - 4]
    assert [m.weight.shape[0] for _, m in prunable_layers(model)] == expected + [7, 6, 4]
    # No masks left: every channel that stayed is whole.
    assert masked_parameters(model) == []
    # Activation quantizer scales were kept, not re-initialised.
    scales_after = {k: v for k, v in model.state_dict().items() if "scaling_impl.value" in k}
    assert scales_before.keys() == scales_after.keys()
    for k in scales_before:
        assert torch.equal(scales_before[k], scales_after[k])
    # The shrunk spec rebuilds a model that takes the shrunk weights strictly and computes the same outputs.
    spec_again = validate_spec(new_spec.model_dump(mode="json"))
    rebuilt = build_model(spec_again)
    rebuilt.load_state_dict(model_state(model)["model"], strict=True)
    rebuilt.eval()
    with torch.no_grad():
        assert torch.allclose(_logits(rebuilt(x)), before, atol=1e-6, rtol=0)


def test_shrink_keeps_unstructured_masks_and_drops_only_dead_channels():
    spec = tiny_spec(conv_filters=8, dense_width=12)
    model, data, _ = _trained(spec)
    prune_model(model, "global", 0.5)  # unstructured zeros do not make a channel removable
    prune_model(model, "structured", 0.25)
    alive = {name: alive_channels(model, name) for name, _ in prunable_layers(model)[:-1]}
    x = torch.cat([b[0] for b in data.batches("test", 64)])
    model.eval()
    with torch.no_grad():
        before = _logits(model(x)).clone()
    new_spec, _ = shrink_with_spec(model, spec)
    assert new_spec.filters_list() == [int(alive[n].sum()) for n, _ in prunable_layers(model)[:7]]
    with torch.no_grad():
        assert torch.allclose(_logits(model(x)), before, atol=1e-6, rtol=0)
    # Layers with unstructured zeros keep a live mask.
    assert len(masked_parameters(model)) > 0


def test_zeroed_filter_without_masked_batchnorm_is_not_removed():
    """A filter that is zero but whose BN still adds beta - gamma*mean/sqrt(var+eps) is not dead."""
    spec = tiny_spec(conv_filters=4)
    model, _, _ = _trained(spec)
    with torch.no_grad():
        model[1].weight[0].zero_()
    assert bool(alive_channels(model, "1")[0])
    with torch.no_grad():
        model[2].weight[0] = 0.0
        model[2].bias[0] = 0.0
    assert not bool(alive_channels(model, "1")[0])


# ---- compact: every block kind, channel groups tied across depthwise convolutions and residual adds ----------
COMPACT_BLOCKS = [
    {"channels": 6, "kernel": 5, "stride": 2, "separable": False},  # full conv from the input
    {"channels": 6, "kernel": 3, "separable": False, "residual": True},  # full conv, residual
    {"channels": 8, "kernel": 3, "stride": 2, "pool": 2},  # separable, pooled (a cheap stem's shape)
    {"channels": 8, "kernel": 3, "residual": True},  # separable, residual
    {"channels": 7, "kernel": 3},  # separable, read by the classifier
]
# Channel groups: blocks 0+1 (6, tied by block 1's add), block 2+3 (8, tied by block 3's add), block 4 (7).
# Structured p 0.4 removes round_half_up(0.4 * width) of each: 6 -> 4, 8 -> 5, 7 -> 4.
EXPECTED_CHANNELS = [4, 4, 5, 5, 4]


def _compact_weights(channels, blocks, classes, c_in=2):
    """Weights of the conv/linear layers of a compact model, counted by hand."""
    total = 0
    for block, c_out in zip(blocks, channels):
        k = block.get("kernel", 3)
        if block.get("separable", True):
            total += c_in * k + c_in * c_out  # depthwise + pointwise
        else:
            total += c_in * c_out * k
        c_in = c_out
    return total + c_in * classes


@pytest.mark.parametrize("quantized,global_pool", [(True, "max"), (True, "avg"), (False, "max")])
def test_compact_structured_shrink_keeps_outputs_of_every_block_kind(quantized, global_pool):
    spec = tiny_spec(arch="compact", conv_filters=64, dense_width=128, blocks=COMPACT_BLOCKS,
                     global_pool=global_pool, quantized=quantized)
    model, data, opt = _trained(spec)
    report = prune_model(model, "structured", 0.4)
    assert [layer.name for layer in report.layers] == ["blocks.0.conv", "blocks.2.pw", "blocks.4.pw"]
    model.train()
    xb, yb, _ = next(data.batches("train", 32))
    for _ in range(2):  # BN statistics and unmasked weights move; masked channels stay zero
        opt.zero_grad()
        torch.nn.functional.cross_entropy(_logits(model(xb)), yb).backward()
        opt.step()
    x = torch.cat([b[0] for b in data.batches("test", 64)])
    model.eval()
    with torch.no_grad():
        before = _logits(model(x)).clone()
    scales_before = {k: v.clone() for k, v in model.state_dict().items() if "scaling_impl.value" in k}

    new_spec, result = shrink_with_spec(model, spec)

    with torch.no_grad():
        after = _logits(model(x))
    assert torch.allclose(after, before, atol=1e-6, rtol=0)
    assert [b.channels for b in new_spec.compact_blocks()] == EXPECTED_CHANNELS
    weights = sum(m.weight.numel() for _, m in prunable_layers(model))
    assert weights == _compact_weights(EXPECTED_CHANNELS, COMPACT_BLOCKS, spec.num_classes)
    assert weights < _compact_weights([b["channels"] for b in COMPACT_BLOCKS], COMPACT_BLOCKS, spec.num_classes)
    assert result.widths_after["blocks.3.dw"] == 5 and result.widths_after["blocks.1.conv"] == 4
    assert masked_parameters(model) == []
    scales_after = {k: v for k, v in model.state_dict().items() if "scaling_impl.value" in k}
    assert scales_before.keys() == scales_after.keys()
    assert all(torch.equal(scales_before[k], scales_after[k]) for k in scales_before)
    rebuilt = build_model(validate_spec(new_spec.model_dump(mode="json")))
    rebuilt.load_state_dict(model_state(model)["model"], strict=True)
    rebuilt.eval()
    with torch.no_grad():
        assert torch.allclose(_logits(rebuilt(x)), before, atol=1e-6, rtol=0)
    # Another round on the shrunk model works the same way.
    prune_model(model, "structured", 0.5)
    with torch.no_grad():
        before = _logits(model(x)).clone()
    new_spec, _ = shrink_with_spec(model, new_spec)
    assert [b.channels for b in new_spec.compact_blocks()] == [2, 2, 2, 2, 2]
    with torch.no_grad():
        assert torch.allclose(_logits(model(x)), before, atol=1e-6, rtol=0)


def test_compact_residual_channels_are_one_group_and_the_input_is_never_pruned():
    spec = tiny_spec(arch="compact", blocks=[{"channels": 2, "kernel": 3, "residual": True}, {"channels": 4}])
    model = build_model(spec)
    # Block 0 adds the model input: its channels are the input's and stay; only block 1's group is prunable.
    report = prune_model(model, "structured", 0.5)
    assert [layer.name for layer in report.layers] == ["blocks.1.pw"]
    new_spec, _ = shrink_with_spec(model, spec)
    assert [b.channels for b in new_spec.compact_blocks()] == [2, 2]


def test_compact_channel_alive_needs_every_tied_tensor_zero():
    """A channel tied across a residual add is dead only when both producers and the depthwise carrier are."""
    spec = tiny_spec(arch="compact", blocks=[{"channels": 4, "separable": False}, {"channels": 4, "residual": True}])
    model, _, _ = _trained(spec, steps=2)
    block0, block1 = model.blocks[0], model.blocks[1]
    with torch.no_grad():
        block0.conv.weight[1].zero_()
        block0.bn.weight[1] = 0.0
        block0.bn.bias[1] = 0.0
    assert bool(alive_channels(model, "blocks.0.conv")[1])  # block 1 still writes channel 1
    with torch.no_grad():
        block1.pw.weight[1].zero_()
        block1.pw_bn.weight[1] = 0.0
        block1.pw_bn.bias[1] = 0.0
    assert bool(alive_channels(model, "blocks.1.pw")[1])  # block 1's depthwise channel 1 still does
    with torch.no_grad():
        block1.dw.weight[1].zero_()
        block1.dw_bn.weight[1] = 0.0
        block1.dw_bn.bias[1] = 0.0
    assert not bool(alive_channels(model, "blocks.1.dw")[1])


def test_per_channel_quantizer_parameters_are_sliced():
    """A layer with a learned per-output-channel weight scale keeps the scales of the channels it keeps."""
    import brevitas.nn as qnn
    from brevitas.quant import Int8WeightPerChannelFloat

    spec = tiny_spec(arch="compact", blocks=[{"channels": 6, "separable": False}, {"channels": 5}])
    model, data, _ = _trained(spec, steps=1)

    class PerChannelParam(Int8WeightPerChannelFloat):
        scaling_impl_type = "parameter_from_stats"

    old = model.blocks[0].conv
    conv = qnn.QuantConv1d(2, 6, 3, padding=1, bias=False, weight_quant=PerChannelParam, weight_bit_width=4)
    with torch.no_grad():
        conv.weight.copy_(old.weight)
    model.blocks[0].conv = conv
    model.train()
    model(next(data.batches("train", 8))[0])  # the learned scale is initialised from the weights' statistics
    key = "blocks.0.conv.weight_quant.tensor_quant.scaling_impl.value"
    assert model.state_dict()[key].shape == (6, 1, 1)
    prune_model(model, "structured", 0.5)
    kept = plan_shrink(model)["blocks.0.conv"]
    state, _, widths = shrink_state(model, plan_shrink(model))
    assert widths["blocks.0.conv"] == len(kept) == 3
    assert torch.equal(state[key], model.state_dict()[key][kept])
    # the BatchNorm, the depthwise carrier and the pointwise inputs follow the kept channels
    assert state["blocks.0.bn.running_mean"].shape == (3,)
    assert state["blocks.1.dw.weight"].shape[0] == 3 and state["blocks.1.pw.weight"].shape[1] == 3


def test_structured_fmp_runs_on_compact_and_rewinds_to_a_wider_model(tmp_path, monkeypatch):
    """The prune stage shrinks a compact model, and a rewind rebuilds the wider saved model in place."""
    from prune_helpers import trained_checkpoint

    from amcprune.models import load_model
    from amcprune.prune.config import PruneConfig
    from amcprune.prune.engine import PruneRun, prune_run, read_records

    def judge(run):  # met at the start and on even iterations, so the run prunes, fails, rewinds, prunes again
        sched = run.st.schedule
        return 0.9 if sched is None or sched.epoch == 0 or sched.iteration % 2 == 0 else 0.1

    monkeypatch.setattr(PruneRun, "_judge", judge)
    spec = tiny_spec(arch="compact", blocks=COMPACT_BLOCKS)
    data = tiny_data(spec, n_train=16)
    ckpt = trained_checkpoint(tmp_path / "start.pt", spec, data, epochs=1)
    config = PruneConfig(methods="fmp", criteria="structured", p=0.5, p_min=0.2, target=0.7, max_epochs=1,
                         patience=None, cost=False, export=False)
    prune_run(config, ckpt, None, tmp_path / "run", data=data, quiet=True)
    events = [r["event"] for r in read_records(tmp_path / "run")]
    assert "rewind" in events and events[-1] == "stop"
    model, final_spec, _ = load_model(tmp_path / "run" / "final.pt")
    channels = [b.channels for b in final_spec.compact_blocks()]
    assert channels != [b["channels"] for b in COMPACT_BLOCKS]
    assert channels[0] == channels[1] and channels[2] == channels[3]  # residual groups shrink together
    assert [m.weight.shape[0] for n, m in prunable_layers(model) if n.endswith(("conv", "pw"))] == channels
