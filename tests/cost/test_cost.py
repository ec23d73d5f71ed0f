"""Inference cost: the challenge figures, sparsity discounting, legacy labels, warnings, caching."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.util.inference_cost import inference_cost
from torch.nn.utils import prune

from amcprune.cost import CHALLENGE_BASELINE, Baseline, baseline_from, clear_memory_cache, model_cost
from amcprune.cost import core
from amcprune.cost.resolve import load_for_cost
from amcprune.errors import AmcpruneError
from amcprune.export import export_qonnx, translate_datatype_name
from amcprune.models import ModelSpec, build_model, prunable_layers

from cost_helpers import LABEL_FORMS, calibrate
from helpers.challenge import challenge_vgg10

# Dense (nothing pruned) MACs of the full-size VGG10 at batch 1: 7 convs (k=3) over 1024, 512, ... 16 samples
# plus the three dense layers.
VGG10_MACS = 2 * 64 * 3 * 1024 + sum(64 * 64 * 3 * (1024 >> i) for i in range(1, 7)) + 512 * 128 + 128 * 128 + 128 * 24
VGG10_WEIGHTS = 2 * 64 * 3 + 6 * 64 * 64 * 3 + 512 * 128 + 128 * 128 + 128 * 24


def qonnx_totals(path):
    total = inference_cost(str(path), preprocess=True, discount_sparsity=True)["total_cost"]
    return total["total_bops"], total["total_mem_w_bits"]


def test_vgg10_constants():
    assert VGG10_WEIGHTS == 159_104  # the challenge baseline's weight count
    assert VGG10_MACS == 12_864_512


def test_fresh_default_vgg10_scores_slightly_above_one():
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch="vgg10"))
    res = model_cost(model)
    assert res.weights == VGG10_WEIGHTS
    # A fresh model has a few weights that quantize to zero (|w| < half an 8-bit step of the per-tensor
    # scale): about 0.4%, versus 2.2% (155,617 of 159,104 non-zero) in the trained baseline. Every weight
    # is 8 bits and every MAC 8 x 8 bits, so the figures are exactly:
    assert res.weight_bits == 8 * res.nonzero_weights
    assert 0.99 * VGG10_WEIGHTS < res.nonzero_weights < VGG10_WEIGHTS
    dense_bops = 64 * VGG10_MACS  # 823,328,768 if no weight were zero
    expected_bops = sum(64 * l["macs"] for l in res.per_layer)
    assert res.bops == expected_bops
    assert res.bops <= dense_bops
    # bops and weight bits both above the trained baseline's, so the score is slightly above 1.0
    assert res.bops > CHALLENGE_BASELINE.bops and res.weight_bits > CHALLENGE_BASELINE.weight_bits
    assert 1.0 < res.score < 1.03
    assert res.warnings == []
    for layer in res.per_layer:
        assert layer["input_dtype"] == "SCALEDINT<8>" and layer["weight_dtype"] == "SCALEDINT<8>"
        assert layer["weight_bits"] == 8 * layer["nonzero"]
    # per-layer MACs are the dense MACs scaled by the layer's density
    assert sum(l["macs"] * l["weights"] / l["nonzero"] for l in res.per_layer) == pytest.approx(VGG10_MACS)
    assert [l["module"] for l in res.per_layer] == ["1", "5", "9", "13", "17", "21", "25", "30", "33", "36"]


def test_challenge_state_dict_loads_strict_and_costs_as_qonnx(tmp_path):
    torch.manual_seed(1)
    original = calibrate(challenge_vgg10(weight_bits=4, act_bits=4, input_bits=8, filters=16, dense=32))
    # prune some weights to zero so that the discount is exercised too
    with torch.no_grad():
        original[5].weight[original[5].weight.abs() < 0.05] = 0.0
    sd_path = tmp_path / "challenge_vgg10.pth"
    torch.save(original.state_dict(), sd_path)  # a plain nn.Sequential state dict, as the 2021 notebook saved it

    model = load_for_cost(sd_path, arch="vgg10", weight_bits=4, act_bits=4, input_bits=8, filters=16, dense=32)
    assert list(model.state_dict().keys()) == list(original.state_dict().keys())

    reference_onnx = tmp_path / "reference.onnx"
    export_qonnx(original, reference_onnx, cleanup=False)  # raw Brevitas export of the original Sequential
    bops, w_bits = qonnx_totals(reference_onnx)

    res = model_cost(model)
    assert res.bops == bops
    assert res.weight_bits == w_bits
    assert res.score == pytest.approx(0.5 * bops / 807_699_904 + 0.5 * w_bits / 1_244_936)
    assert res.weight_bits == 4 * res.nonzero_weights
    # the 4-bit weights and activations show in the per-layer datatypes; the first conv reads the 8-bit input
    assert res.per_layer[0]["input_dtype"] == "SCALEDINT<8>"
    assert all(l["weight_dtype"] == "SCALEDINT<4>" for l in res.per_layer)
    assert all(l["input_dtype"] in ("SCALEDINT<4>", "UINT4") for l in res.per_layer[1:])
    # the file route (ONNX path) gives the same figures as the in-memory route
    assert model_cost(reference_onnx).bops == res.bops


def test_bare_state_dict_needs_arch_and_must_fit(tmp_path):
    sd_path = tmp_path / "sd.pth"
    torch.save(calibrate(challenge_vgg10(filters=8, dense=16)).state_dict(), sd_path)  # trained checkpoints hold the ReLU scales
    with pytest.raises(AmcpruneError, match="--arch"):
        load_for_cost(sd_path)
    with pytest.raises(AmcpruneError, match="does not fit"):
        load_for_cost(sd_path, arch="vgg10", bits=8)  # default widths 64/128
    model = load_for_cost(sd_path, arch="vgg10", bits=8, filters=8, dense=16)
    assert sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1) > 0


def _quantized_nonzero(module) -> int:
    return int(torch.count_nonzero(module.quant_weight().value).item())


def test_unstructured_sparsity_is_discounted_exactly():
    torch.manual_seed(2)
    spec = ModelSpec(arch="vgg10", conv_filters=16, dense_width=32, weight_bits=6, act_bits=5, input_bits=8)
    model = calibrate(build_model(spec))
    layers = prunable_layers(model)
    for _, module in layers:
        prune.l1_unstructured(module, "weight", amount=0.5)
    # a training forward leaves live masks in a state that cannot be deep-copied; the cost must cope
    model.train()
    out = model(torch.rand(4, 2, 1024) * 4 - 2)
    getattr(out, "value", out).sum().backward()
    model.eval()

    res = model_cost(model)
    assert len(res.per_layer) == len(layers)
    total_nonzero = 0
    for (name, module), layer in zip(layers, res.per_layer):
        with torch.no_grad():
            nz = _quantized_nonzero(module)
        total_nonzero += nz
        assert layer["nonzero"] == nz, name
        assert layer["weights"] == module.weight.numel()
        assert nz <= module.weight.numel() // 2 + 1
        assert layer["weight_bits"] == 6 * nz, name
        dense_macs = layer["macs"] * layer["weights"] / layer["nonzero"]
        assert dense_macs == pytest.approx(round(dense_macs))
    assert res.nonzero_weights == total_nonzero
    assert res.weight_bits == 6 * total_nonzero
    assert res.sparsity == pytest.approx(1 - total_nonzero / res.weights)
    assert res.sparsity >= 0.5
    # the caller's model keeps its masks
    assert all(prune.is_pruned(module) for _, module in layers)


def _legacy_copy(proto: onnx.ModelProto, unsigned: bool = False) -> onnx.ModelProto:
    """Rewrite a qonnx 1.0 file back into the 2021 FINN style: SCALEDINT<4> -> SCALEDINT4, finn domains.

    With ``unsigned``, the outputs of unsigned quantizers (ReLUs) are labelled SCALEDUINT4, as FINN-era
    tools wrote them; qonnx 1.0 labels them SCALEDINT<4> like every scaled output.
    """
    old = onnx.ModelProto()
    old.CopyFrom(proto)
    unsigned_outputs = {
        node.output[0] for node in old.graph.node
        if node.op_type == "Quant" and any(a.name == "signed" and a.i == 0 for a in node.attribute)
    } if unsigned else set()
    for ann in old.graph.quantization_annotation:
        for entry in ann.quant_parameter_tensor_names:
            if entry.key == "finn_datatype":
                form = r"SCALEDUINT\1" if ann.tensor_name in unsigned_outputs else r"SCALEDINT\1"
                entry.value = re.sub(r"^SCALEDINT<(\d+)>$", form, entry.value)
    for node in old.graph.node:
        if node.domain == "qonnx.custom_op.general":
            node.domain = "finn.custom_op.general"
    for op in old.opset_import:
        if op.domain == "qonnx.custom_op.general":
            op.domain = "finn.custom_op.general"
    return old


@pytest.mark.parametrize("form", ["SCALEDINT", "SCALEDUINT"])
@pytest.mark.parametrize("folded", [False, True], ids=["quant-nodes", "folded-weights"])
def test_legacy_labels_are_translated(tmp_path, folded, form):
    torch.manual_seed(3)
    model = calibrate(build_model(ModelSpec(arch="vgg10", conv_filters=16, dense_width=32, weight_bits=4, act_bits=4)))
    new_path = tmp_path / "new.onnx"
    export_qonnx(model, new_path)
    if folded:
        # a file as FINN-era tools saved it after preprocessing: weights folded into annotated initializers
        folded_path = tmp_path / "new_folded.onnx"
        inference_cost(str(new_path), preprocess=True, discount_sparsity=True, output_onnx=str(folded_path))
        new_path = folded_path
    proto = onnx.load(str(new_path))
    legacy = _legacy_copy(proto, unsigned=form == "SCALEDUINT")
    labels = [e.value for a in legacy.graph.quantization_annotation for e in a.quant_parameter_tensor_names]
    if folded:
        assert "SCALEDINT4" in labels  # the weights
        if form == "SCALEDUINT":
            assert "SCALEDUINT4" in labels  # the ReLU outputs, as in the 2021 file that failed (Quant_1_out0)
    legacy_path = tmp_path / "legacy.onnx"
    onnx.save(legacy, str(legacy_path))

    new = model_cost(new_path)
    old = model_cost(legacy_path)
    assert (old.bops, old.weight_bits, old.weights, old.nonzero_weights) == (new.bops, new.weight_bits, new.weights, new.nonzero_weights)
    assert old.per_layer == new.per_layer
    assert old.score == new.score
    assert old.warnings == new.warnings == []
    # ... and the same as the model the file came from, scored in memory
    in_memory = model_cost(model)
    assert (old.bops, old.weight_bits) == (in_memory.bops, in_memory.weight_bits)

    if folded:
        # qonnx 1.0 alone cannot read the old labels ...
        with pytest.raises(Exception):
            inference_cost(str(legacy_path), preprocess=True, discount_sparsity=True)
        # ... and dropping them instead of translating bills every weight at 32 bits
        stripped = onnx.ModelProto()
        stripped.CopyFrom(legacy)
        del stripped.graph.quantization_annotation[:]
        for node in stripped.graph.node:
            node.domain = "" if node.domain == "finn.custom_op.general" else node.domain
        stripped_path = tmp_path / "stripped.onnx"
        onnx.save(stripped, str(stripped_path))
        dropped = model_cost(stripped_path)
        assert dropped.weight_bits == 32 * dropped.nonzero_weights
        assert dropped.weight_bits == 8 * new.weight_bits
        assert any("not quantized" in w for w in dropped.warnings)


def test_translate_datatype_name():
    for old, new in LABEL_FORMS:
        assert translate_datatype_name(old) == new, old
        assert translate_datatype_name(new) == new, new  # qonnx 1.0 labels are left alone
        assert DataType[new].get_canonical_name() == new  # and the result is qonnx's own spelling
    # qonnx 1.0 has no scaled unsigned type; the translation bills the same width
    assert DataType[translate_datatype_name("SCALEDUINT5")].bitwidth() == 5
    assert translate_datatype_name("FIXED8_4") == "FIXED<8,4>"
    assert translate_datatype_name("NOSUCHTYPE") == "NOSUCHTYPE"  # left for the check to reject


def _float_graph(path, extra_op="Sin"):
    """A tiny float graph: MatMul with a constant weight, then an op the cost tool does not know."""
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) - 5, name="W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm")]
    nodes.append(helper.make_node(extra_op, ["h"], ["y"], name="odd"))
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))
    return path


def test_warnings_for_float_graph_and_unknown_ops(tmp_path):
    res = model_cost(_float_graph(tmp_path / "float.onnx"))
    text = "\n".join(res.warnings)
    assert "no quantizers" in text
    assert ("MatMul_0 (MatMul): MACs wider than 8 bits, input FLOAT32 (32 bits, not quantized) x weights FLOAT32 "
            "(32 bits, not quantized)") in text
    assert "100.00% of the total" in text and "each weight is billed at 32 bits" in text
    assert "does not know" in text and "Sin" in text
    assert res.weights == 12 and res.nonzero_weights == 11  # one weight is zero
    assert res.bops == 32 * 32 * 4 * 3 * 11 / 12
    assert res.weight_bits == 32 * 11


def test_float_model_is_flagged():
    torch.manual_seed(4)
    model = build_model(ModelSpec(arch="vgg10", quantized=False, conv_filters=8, dense_width=16))
    res = model_cost(model)
    assert any("no quantizers" in w for w in res.warnings)
    assert any("not quantized" in w for w in res.warnings)
    assert res.weight_bits == 32 * res.nonzero_weights


def test_baseline_normalisation(tmp_path):
    torch.manual_seed(5)
    model = build_model(ModelSpec(arch="vgg10", conv_filters=8, dense_width=16, weight_bits=4, act_bits=4))
    path = tmp_path / "m.onnx"
    export_qonnx(model, path)
    base = baseline_from(path)
    assert model_cost(path, baseline=base).score == pytest.approx(1.0)
    half = Baseline(bops=2 * base.bops, weight_bits=2 * base.weight_bits)
    assert model_cost(path, baseline=half).score == pytest.approx(0.5)
    # scores against the challenge baseline use the published constants
    res = model_cost(path)
    assert res.score == pytest.approx(0.5 * res.bops / 807_699_904 + 0.5 * res.weight_bits / 1_244_936)


def test_cache_hits_do_not_call_qonnx(tmp_path, monkeypatch):
    calls = []
    real = core.qonnx_inference_cost

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "qonnx_inference_cost", counting)
    torch.manual_seed(6)
    model = build_model(ModelSpec(arch="vgg10", conv_filters=8, dense_width=16))
    first = model_cost(model)
    assert len(calls) == 1
    again = model_cost(model)
    assert len(calls) == 1
    assert again.to_dict() == first.to_dict()
    clear_memory_cache()  # the on-disk cache answers too
    from_disk = model_cost(model)
    assert len(calls) == 1
    assert from_disk.to_dict() == first.to_dict()
    # another baseline reuses the cached figures
    other = model_cost(model, baseline=Baseline(bops=first.bops, weight_bits=first.weight_bits))
    assert len(calls) == 1 and other.score == pytest.approx(1.0)
    # any change of content is a miss: a pruned weight ...
    prune.l1_unstructured(prunable_layers(model)[1][1], "weight", amount=0.3)
    pruned = model_cost(model)
    assert len(calls) == 2 and pruned.nonzero_weights < first.nonzero_weights
    # ... or another bit width with identical parameters
    model4 = build_model(ModelSpec(arch="vgg10", conv_filters=8, dense_width=16, weight_bits=4))
    model8 = build_model(ModelSpec(arch="vgg10", conv_filters=8, dense_width=16, weight_bits=8))
    model8.load_state_dict(model4.state_dict())
    assert core.module_key(model4, (1, 2, 1024)) != core.module_key(model8, (1, 2, 1024))
    # ONNX files are keyed by their bytes
    path = tmp_path / "m.onnx"
    export_qonnx(model4, path)
    model_cost(path)
    n = len(calls)
    model_cost(path)
    assert len(calls) == n
    assert any(core.cache_dir().rglob("*.json"))


def test_bad_onnx_inputs(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 10)
    with pytest.raises(AmcpruneError, match="ONNX"):
        model_cost(text)
    torch.manual_seed(7)
    good = tmp_path / "good.onnx"
    export_qonnx(build_model(ModelSpec(arch="vgg10", conv_filters=8, dense_width=16)), good)
    truncated = tmp_path / "truncated.onnx"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AmcpruneError):
        model_cost(truncated)
    with pytest.raises(AmcpruneError, match="no such file"):
        model_cost(tmp_path / "missing.onnx")
