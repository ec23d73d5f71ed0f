"""Structured pruning then shrinking keeps the outputs exactly and leaves a spec that rebuilds the model."""

from __future__ import annotations

import pytest
import torch
from prune_helpers import tiny_data, tiny_spec

from amcprune.models import build_model, validate_spec
from amcprune.prune.criteria import masked_parameters, prunable_layers, prune_model
from amcprune.prune.shrink import alive_channels, shrink_with_spec
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
