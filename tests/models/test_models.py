"""Tests of the models stage: specs, architectures, loading, input quantization."""

from __future__ import annotations

import brevitas.nn as qnn
import pytest
import torch
from brevitas.export import export_qonnx
from pydantic import ValidationError
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model
from torch import nn
from torch.nn.utils import prune

from amcprune.cost import model_cost
from amcprune.errors import AmcpruneError
from helpers.challenge import challenge_vgg10
from amcprune.models import (
    ARCHITECTURES,
    ModelSpec,
    available_archs,
    build_model,
    dequantize_input,
    input_quant_info,
    layer_bit_names,
    load_challenge_state_dict,
    load_model,
    prunable_layers,
    quantize_input_int8,
    register_arch,
    spec_from_yaml,
    spec_to_yaml,
)
from amcprune.models.quantizers import InputQuant
from amcprune.utils.checkpoint import model_state, save_checkpoint

RELU_SCALE = "act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl.value"


def _calibrate(model: nn.Module, n: int = 8, length: int = 1024) -> nn.Module:
    """One training-mode forward (activation statistics, BN stats), then eval."""
    torch.manual_seed(1)
    model.train()
    with torch.no_grad():
        model(torch.randn(n, 2, length))
    return model.eval()


# ---- building -------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["vgg10", "compact"])
@pytest.mark.parametrize("quantized,bits", [(True, 8), (True, 4), (False, 8)])
def test_build_and_forward(arch, quantized, bits):
    spec = ModelSpec(arch=arch, quantized=quantized, input_bits=bits, weight_bits=bits, act_bits=bits)
    model = build_model(spec)
    model.train()
    out = model(torch.randn(2, 2, 1024))
    assert out.shape == (2, 24)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, 1024))
    assert out.shape == (2, 24) and torch.isfinite(out).all()
    if not quantized:
        assert not any(type(m).__module__.startswith("brevitas") for m in model.modules())


def test_registry():
    assert {"vgg10", "compact"} <= set(available_archs())

    @register_arch("tiny_test_arch")
    def _tiny(spec):
        return nn.Sequential(nn.Flatten(), nn.Linear(2 * spec.input_length, spec.num_classes))

    try:
        model = build_model({"arch": "tiny_test_arch", "input_length": 16})
        assert model(torch.randn(2, 2, 16)).shape == (2, 24)
    finally:
        del ARCHITECTURES["tiny_test_arch"]
    with pytest.raises(AmcpruneError, match="unknown arch"):
        build_model({"arch": "nope"})


def test_vgg10_layout_and_weight_count():
    model = build_model(ModelSpec(arch="vgg10"))
    assert isinstance(model, nn.Sequential) and len(model) == 37
    expected = []
    for i in range(7):
        conv, bn, act = 1 + 4 * i, 2 + 4 * i, 3 + 4 * i
        expected += [f"{conv}.weight"]
        expected += [f"{bn}.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
        expected += [f"{act}.{RELU_SCALE}"]
    for lin, bn, act in ((30, 31, 32), (33, 34, 35)):
        expected += [f"{lin}.weight"]
        expected += [f"{bn}.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
        expected += [f"{act}.{RELU_SCALE}"]
    expected += ["36.weight", "36.bias"]
    assert list(model.state_dict()) == expected
    layers = prunable_layers(model)
    assert [name for name, _ in layers] == ["1", "5", "9", "13", "17", "21", "25", "30", "33", "36"]
    assert sum(m.weight.numel() for _, m in layers) == 159_104
    assert isinstance(model[0], qnn.QuantHardTanh) and isinstance(model[29], nn.Flatten)
    assert model[35].return_quant_tensor and not model[32].return_quant_tensor
    # float variant: same indices, torch.nn layers
    flt = build_model(ModelSpec(arch="vgg10", quantized=False))
    assert isinstance(flt[0], nn.Hardtanh) and (flt[0].min_val, flt[0].max_val) == (-2.0, 2.0)
    assert [n for n, _ in prunable_layers(flt)] == [n for n, _ in layers]
    assert set(flt.state_dict()) == {k for k in expected if RELU_SCALE not in k}


def test_per_layer_widths():
    filters = [8, 16, 16, 12, 12, 10, 6]
    spec = ModelSpec(arch="vgg10", conv_filters=filters, dense_width=[20, 10], weight_bits=4, act_bits=4)
    model = build_model(spec)
    assert [model[1 + 4 * i].out_channels for i in range(7)] == filters
    assert model[30].in_features == 6 * 8 and model[30].out_features == 20 and model[36].in_features == 10
    _calibrate(model)
    assert model(torch.randn(2, 2, 1024)).shape == (2, 24)
    with pytest.raises(ValidationError, match="list of 7"):
        ModelSpec(arch="vgg10", conv_filters=[8, 8])
    with pytest.raises(ValidationError, match="list of 2"):
        ModelSpec(arch="vgg10", dense_width=[8, 8, 8])


def test_per_layer_bits():
    spec = ModelSpec(
        arch="vgg10",
        weight_bits=8,
        act_bits=8,
        input_bits=6,
        layer_bits={"conv0": {"weight_bits": 6}, "dense1": {"act_bits": 4}, "dense2": {"weight_bits": 3}},
    )
    model = build_model(spec)
    assert int(model[0].act_quant.bit_width()) == 6
    assert int(model[1].quant_weight().bit_width) == 6
    assert int(model[5].quant_weight().bit_width) == 8
    assert int(model[35].act_quant.bit_width()) == 4
    assert int(model[32].act_quant.bit_width()) == 8
    assert int(model[36].quant_weight().bit_width) == 3

    cspec = ModelSpec(arch="compact", layer_bits={"block1.dw": {"weight_bits": 5, "act_bits": 3}, "pool": {"act_bits": 7}})
    cmodel = build_model(cspec)
    assert int(cmodel.blocks[1].dw.quant_weight().bit_width) == 5
    assert int(cmodel.blocks[1].dw_act.act_quant.bit_width()) == 3
    assert int(cmodel.blocks[1].pw.quant_weight().bit_width) == 8
    assert int(cmodel.pool_act.act_quant.bit_width()) == 7
    assert "block4.add" in layer_bit_names(cspec)

    with pytest.raises(ValidationError, match="unknown layer"):
        ModelSpec(arch="vgg10", layer_bits={"conv9": {"weight_bits": 4}})
    with pytest.raises(ValidationError, match="has no act_bits"):
        ModelSpec(arch="vgg10", layer_bits={"dense2": {"act_bits": 4}})
    with pytest.raises(ValidationError, match="unknown key"):
        ModelSpec(arch="vgg10", layer_bits={"conv0": {"bits": 4}})
    with pytest.raises(ValidationError, match="weight_bits must be in 2..32"):
        ModelSpec(arch="vgg10", weight_bits=1)
    with pytest.raises(ValidationError, match="act_bits must be in 1..32"):
        ModelSpec(arch="vgg10", act_bits=33)


# ---- specs ----------------------------------------------------------------------------------------


def test_spec_round_trip(tmp_path):
    specs = [
        ModelSpec(arch="vgg10", conv_filters=[8, 8, 8, 8, 8, 8, 4], dense_width=16, layer_bits={"conv3": {"act_bits": 2}}),
        ModelSpec(arch="compact", quantized=False, blocks=[{"channels": 8, "stride": 4, "separable": False}, {"channels": 8, "residual": True}]),
        ModelSpec(arch="compact"),
    ]
    for i, spec in enumerate(specs):
        data = spec.model_dump(mode="json")
        assert ModelSpec.model_validate(data) == spec
        path = tmp_path / f"spec{i}.yaml"
        spec_to_yaml(spec, path)
        assert spec_from_yaml(path) == spec
    (tmp_path / "bad.yaml").write_text("arch: vgg10\nfilters: 3\n")
    with pytest.raises(AmcpruneError, match="filters"):
        spec_from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(AmcpruneError, match="no such model spec file"):
        spec_from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ValidationError, match="residual"):
        ModelSpec(arch="compact", blocks=[{"channels": 8, "residual": True}])
    with pytest.raises(ValidationError, match="blocks is a compact setting"):
        ModelSpec(arch="vgg10", blocks=[{"channels": 8}])


# ---- compact ------------------------------------------------------------------------------------


def test_compact_default_size():
    model = build_model(ModelSpec(arch="compact"))
    layers = prunable_layers(model)
    assert layers[0][0] == "blocks.0.conv" and layers[-1][0] == "classifier"
    assert [n for n, _ in layers][1:3] == ["blocks.1.dw", "blocks.1.pw"]
    assert layers[1][1].groups == layers[1][1].in_channels
    assert sum(m.weight.numel() for _, m in layers) == 21_040


def test_compact_requantizes_every_mac_input(tmp_path):
    """Exported QONNX: every Conv/MatMul/Gemm input (activation and weight) comes from a Quant node."""

    spec = ModelSpec(arch="compact", weight_bits=6, act_bits=6)
    model = _calibrate(build_model(spec))
    path = tmp_path / "compact.onnx"
    export_qonnx(model, input_t=torch.randn(1, 2, 1024), export_path=str(path), dynamo=False)
    graph = cleanup_model(ModelWrapper(str(path))).graph
    producer = {out: node for node in graph.node for out in node.output}
    macs = [n for n in graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    assert len(macs) == len(prunable_layers(model))
    for node in macs:
        for name in node.input[:2]:
            src = producer.get(name)
            while src is not None and src.op_type in ("MaxPool", "Flatten", "Reshape"):
                src = producer.get(src.input[0])
            assert src is not None and src.op_type == "Quant", f"{node.name} input {name} is not re-quantized"


# ---- input quantization -----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 4])
def test_input_int8_round_trip_exact(bits):
    spec = ModelSpec(arch="vgg10", input_bits=bits, conv_filters=8, dense_width=16)
    assert input_quant_info(spec) == (bits, -2.0, 2.0)
    model = _calibrate(build_model(spec))
    scale = 2.0 / 2 ** (bits - 1)
    torch.manual_seed(3)
    x = torch.randn(4, 2, 1024) * 1.5
    # exact half-way points, range edges and values beyond the range
    x[0, 0, :8] = torch.tensor([0.5, 1.5, -0.5, -2.5, 2 ** (bits - 1) - 0.5, 200.0, -200.0, 0.0]) * scale
    q = quantize_input_int8(x, spec)
    assert q.dtype == torch.int8
    assert int(q.min()) >= -(2 ** (bits - 1)) and int(q.max()) <= 2 ** (bits - 1) - 1
    # codes equal Brevitas' own integer representation
    ref = qnn.QuantHardTanh(act_quant=InputQuant, bit_width=bits, return_quant_tensor=True)(x)
    assert float(ref.scale) == scale and float(ref.zero_point) == 0.0
    assert torch.equal(ref.int().to(torch.int8), q)
    with torch.no_grad():
        assert torch.equal(model(dequantize_input(q, spec)), model(x))
    assert input_quant_info(ModelSpec(arch="vgg10", quantized=False)) is None
    assert input_quant_info(ModelSpec(arch="vgg10", input_bits=9)) is None
    with pytest.raises(AmcpruneError):
        quantize_input_int8(x, ModelSpec(arch="vgg10", quantized=False))


# ---- loading ------------------------------------------------------------------------------------


def test_load_challenge_state_dict(tmp_path):
    ref = _calibrate(challenge_vgg10(weight_bits=4, act_bits=4, input_bits=4, filters=16, dense=32))
    path = tmp_path / "challenge.pth"
    torch.save(ref.state_dict(), path)
    spec = ModelSpec(arch="vgg10", input_bits=4, weight_bits=4, act_bits=4, conv_filters=16, dense_width=32)
    model = load_challenge_state_dict(path, spec)
    x = torch.randn(3, 2, 1024)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    # wrapped in {"state_dict": ...} too
    model2 = load_challenge_state_dict({"state_dict": ref.state_dict()}, spec)
    assert torch.equal(model2[1].weight, ref[1].weight)
    # wrong widths: the error names the layers
    with pytest.raises(AmcpruneError, match=r"shape mismatch: 1\.weight"):
        load_challenge_state_dict(path, spec.model_copy(update={"conv_filters": 8}))
    # wrong architecture
    with pytest.raises(AmcpruneError, match="missing: blocks.0.conv.weight.*unexpected: 1.weight"):
        load_challenge_state_dict(path, ModelSpec(arch="compact"))


def test_default_challenge_layout_loads_strict():
    """A full-size 2021-style state dict (64 filters, 128 dense, 8 bits) fits the default spec exactly."""
    ref = challenge_vgg10(weight_bits=8, act_bits=8, input_bits=8)
    ref.train()
    with torch.no_grad():
        ref(torch.randn(4, 2, 1024))
    model = load_challenge_state_dict(ref.state_dict(), ModelSpec(arch="vgg10"))
    assert set(model.state_dict()) == set(ref.state_dict())


def test_load_model_checkpoint_and_run_dir(tmp_path):
    spec = ModelSpec(arch="compact", weight_bits=4, act_bits=4, blocks=[{"channels": 8, "stride": 4, "separable": False}, {"channels": 8, "kernel": 3, "stride": 2}])
    model = _calibrate(build_model(spec), length=1024)
    mask = torch.rand_like(model.blocks[1].pw.weight) > 0.5
    prune.custom_from_mask(model.blocks[1].pw, "weight", mask)
    x = torch.randn(2, 2, 1024)
    with torch.no_grad():
        expected = model(x)
    ckpt = {"spec": spec.model_dump(mode="json"), **model_state(model), "epoch": 3}
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "last.pt", ckpt)
    for target in (run / "checkpoints" / "last.pt", run):
        loaded, lspec, lckpt = load_model(target)
        assert lspec == spec and lckpt["epoch"] == 3
        assert hasattr(loaded.blocks[1].pw, "weight_mask")
        assert torch.equal(loaded.blocks[1].pw.weight_mask.bool(), mask)
        with torch.no_grad():
            assert torch.equal(loaded(x), expected)
    # best.pt is preferred over last.pt; final.pt is the last resort
    save_checkpoint(run / "checkpoints" / "best.pt", {**ckpt, "epoch": 5})
    assert load_model(run)[2]["epoch"] == 5
    prune_run = tmp_path / "prune"
    save_checkpoint(prune_run / "final.pt", {**ckpt, "epoch": 7})
    assert load_model(prune_run)[2]["epoch"] == 7
    with pytest.raises(AmcpruneError, match="without a checkpoint"):
        load_model(_empty_dir(tmp_path))
    # a bare state dict: tell the user to pass --arch
    bare = tmp_path / "bare.pth"
    torch.save(build_model(ModelSpec(arch="vgg10")).state_dict(), bare)
    with pytest.raises(AmcpruneError, match="--arch"):
        load_model(bare)
    # a checkpoint whose weights do not fit its spec names the layer
    bad = dict(ckpt)
    bad["spec"] = spec.model_copy(update={"blocks": [spec.blocks[0].model_copy(update={"channels": 16}), spec.blocks[1]]}).model_dump(mode="json")
    save_checkpoint(tmp_path / "bad.pt", bad)
    with pytest.raises(AmcpruneError, match="blocks.0.conv.weight"):
        load_model(tmp_path / "bad.pt")


def _empty_dir(tmp_path):
    d = tmp_path / "empty_run"
    d.mkdir()
    return d


def test_fresh_checkpoint_round_trip(tmp_path):
    """A never-trained model's checkpoint loads strictly (activation scale keys are always present)."""
    spec = ModelSpec(arch="vgg10", conv_filters=4, dense_width=8)
    model = build_model(spec)
    save_checkpoint(tmp_path / "c.pt", {"spec": spec.model_dump(mode="json"), **model_state(model)})
    loaded, _, _ = load_model(tmp_path / "c.pt")
    assert loaded.state_dict().keys() == model.state_dict().keys()


def test_compact_cost_has_no_warnings():
    """No MAC billed at 32 bits and no op unknown to the cost tool: the compact score is comparable."""

    model = _calibrate(build_model(ModelSpec(arch="compact", weight_bits=6, act_bits=6)))
    result = model_cost(model, use_cache=False)
    assert result.warnings == []
    assert result.weights == 21_040
