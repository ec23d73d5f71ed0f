"""Model presets and cheap stems: the winner-like preset costs what its topology should, with no 32-bit layer."""

from __future__ import annotations

import pytest
import torch

from amcprune.cost import model_cost
from amcprune.errors import AmcpruneError
from amcprune.models import ModelSpec, build_model, check_spec_options, spec_from_options, validate_spec
from amcprune.models.spec import MODEL_PRESETS


def _out(model, x):
    y = model(x)
    return y.value if hasattr(y, "value") and not isinstance(y, torch.Tensor) else y


def test_winner_preset_expands_to_the_2021_topology():
    spec = ModelSpec(arch="compact-winner")
    assert spec.arch == "compact" and spec.global_pool == "max"
    assert (spec.weight_bits, spec.act_bits, spec.input_bits) == (6, 6, 8)
    blocks = spec.compact_blocks()
    assert [b.kernel for b in blocks] == [27, 21, 15, 9, 9]
    assert [b.stride for b in blocks] == [2, 1, 2, 1, 2]
    assert [b.channels for b in blocks] == [24, 24, 48, 48, 48]
    assert [b.residual for b in blocks] == [b.stride == 1 for b in blocks]
    assert all(b.separable for b in blocks)
    # explicit options win over the preset's
    assert spec_from_options(arch="compact-winner", bits=4).weight_bits == 4
    assert ModelSpec(arch="compact-winner", act_bits=5).act_bits == 5
    check_spec_options(spec, "run", arch="compact-winner")  # agrees: no error
    with pytest.raises(AmcpruneError, match="disagree"):
        check_spec_options(ModelSpec(arch="compact"), "run", arch="compact-winner")


def test_winner_preset_exports_without_cost_warnings_and_matches_the_published_float_cost():
    model = build_model(ModelSpec(arch="compact-winner"))
    cost = model_cost(model)
    assert cost.warnings == []  # every MAC input re-quantized: nothing billed at 32 bits, no unknown op
    assert cost.weights == 9318
    assert 0 < cost.score < 0.078  # the 2021 winner at 6 bits scored 0.078 with two layers billed at 32 bits
    # Unquantized, the topology costs what the 2021 winner's did in float (1.4155): the same MACs and weights.
    float_cost = model_cost(build_model(ModelSpec(arch="compact-winner", quantized=False)))
    assert float_cost.score == pytest.approx(1.4155, abs=5e-4)


@pytest.mark.parametrize("name", sorted(MODEL_PRESETS))
def test_every_preset_builds_runs_and_exports_without_cost_warnings(name):
    model = build_model(ModelSpec(arch=name)).eval()
    with torch.no_grad():
        assert _out(model, torch.randn(2, 2, 1024)).shape == (2, 24)
    assert model_cost(model).warnings == []


def test_stems_cut_the_first_layers_cost():
    base = dict(arch="vgg10", conv_filters=16, dense_width=32, weight_bits=4, act_bits=4)
    torch.manual_seed(0)  # zero weights after quantization are discounted: fix them
    plain = model_cost(build_model(ModelSpec(**base)))
    strided = build_model(ModelSpec(**base, stem_stride=2))
    pooled = build_model(ModelSpec(**base, stem_pool=4))
    assert strided[1].stride == (2,) and pooled[4].kernel_size == 4
    # Every layer after the stem sees half the samples, and dense0 reads half as much. Strided, conv0 too:
    # about half the bops; pooled, conv0 (about a fifth of this model's bops at its 8-bit input) keeps its own.
    for model, low, high in ((strided, 0.4, 0.55), (pooled, 0.5, 0.66)):
        cost = model_cost(model)
        assert cost.warnings == []
        assert low * plain.bops < cost.bops < high * plain.bops
        assert model[30].in_features == 16 * 4
    winner = model_cost(build_model(ModelSpec(arch="compact-winner")))
    stem = model_cost(build_model(ModelSpec(arch="compact-winner-stem")))
    assert stem.bops < 0.6 * winner.bops and stem.warnings == []


def test_default_vgg10_is_still_the_challenge_graph():
    model = build_model(ModelSpec(arch="vgg10"))
    assert model[1].stride == (1,) and model[4].kernel_size == 2 and model[30].in_features == 512


@pytest.mark.parametrize("data,message", [
    ({"arch": "compact", "stem_stride": 2}, "vgg10 settings"),
    ({"arch": "vgg10", "global_pool": "max"}, "compact setting"),
    ({"arch": "compact", "blocks": [{"channels": 2, "residual": True, "pool": 2}]}, "residual block cannot pool"),
    ({"arch": "vgg10", "input_length": 256, "stem_stride": 4}, "leaves no samples"),
    ({"arch": "compact", "input_length": 8, "blocks": [{"channels": 4, "stride": 4, "pool": 4}]}, "no samples"),
    ({"arch": "nope"}, "presets: compact-winner"),
])
def test_bad_stem_and_preset_settings_are_one_line_errors(data, message):
    with pytest.raises(AmcpruneError, match=message) as info:
        validate_spec(data)
    assert "\n" not in str(info.value)
