"""Every 2021 FINN-era datatype label form scores as its qonnx 1.0 spelling; MACs wider than 8 bits are flagged."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
import torch
from brevitas import nn as qnn
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from torch import nn

from amcprune.cli.main import main
from amcprune.cost import model_cost
from amcprune.errors import AmcpruneError
from amcprune.export import export_qonnx

from cost_helpers import LABEL_FORMS

FINN_DOMAIN = "finn.custom_op.general"


def _labelled_graph(path, in_label: str, w_label: str, via_attribute: bool):
    """x [1, 4] -> (MultiThreshold with out_dtype=in_label | x annotated in_label) -> MatMul with W [4, 3].

    W is all ones (a value every label allows) and annotated ``w_label``; the custom op sits in the
    FINN-era domain, as in a 2021 file.
    """
    w = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), name="W")
    inits, nodes = [w], []
    if via_attribute:
        inits.append(numpy_helper.from_array(np.zeros((4, 1), dtype=np.float32), name="T"))
        nodes.append(helper.make_node("MultiThreshold", ["x", "T"], ["h"], name="thr", domain=FINN_DOMAIN,
                                      out_dtype=in_label))
        mm_in = "h"
    else:
        mm_in = "x"
    nodes.append(helper.make_node("MatMul", [mm_in, "W"], ["y"], name="mm"))
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=inits,
    )
    labels = [("W", w_label)] + ([] if via_attribute else [("x", in_label)])
    for tensor, label in labels:
        ann = onnx.TensorAnnotation(tensor_name=tensor)
        ann.quant_parameter_tensor_names.add(key="finn_datatype", value=label)
        graph.quantization_annotation.append(ann)
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid(FINN_DOMAIN, 1)] if via_attribute else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


@pytest.mark.parametrize("via_attribute", [False, True], ids=["annotation", "node-attribute"])
@pytest.mark.parametrize("old,new", LABEL_FORMS, ids=[old for old, _ in LABEL_FORMS])
def test_every_label_form_scores_as_its_qonnx_spelling(tmp_path, old, new, via_attribute):
    # the weights keep one label throughout so that a width mix-up in either operand shows
    res_old = model_cost(_labelled_graph(tmp_path / "old.onnx", old, old, via_attribute))
    res_new = model_cost(_labelled_graph(tmp_path / "new.onnx", new, new, via_attribute))
    bits = DataType[new].bitwidth()
    assert res_old.bops == res_new.bops == 4 * 3 * bits * bits
    assert res_old.weight_bits == res_new.weight_bits == 12 * bits
    assert res_old.per_layer == res_new.per_layer
    assert res_old.per_layer[0]["input_dtype"] == res_old.per_layer[0]["weight_dtype"] == new
    assert res_old.warnings == res_new.warnings
    # a MAC is flagged exactly when an operand is wider than 8 bits
    assert any("MACs wider than 8 bits" in w for w in res_old.warnings) == (bits > 8)


@pytest.mark.parametrize("via_attribute", [False, True], ids=["annotation", "node-attribute"])
@pytest.mark.parametrize("label", ["SCALEDUFOO4", "SCALEDINT", "INT0", "scaledint4"])
def test_unknown_label_is_an_error_naming_where_it_sits(tmp_path, label, via_attribute):
    path = _labelled_graph(tmp_path / "bad.onnx", label, "INT4", via_attribute)
    where = "attribute 'out_dtype' of node 'thr'" if via_attribute else "tensor 'x'"
    with pytest.raises(AmcpruneError, match=re.escape(repr(label)) + ".*") as info:
        model_cost(path)
    assert where in str(info.value)


def test_unknown_label_is_one_error_line_in_the_cli(tmp_path, capsys):
    path = _labelled_graph(tmp_path / "bad.onnx", "SCALEDUFOO4", "SCALEDUINT4", via_attribute=False)
    assert main(["cost", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: unknown quantization datatype label 'SCALEDUFOO4' on tensor 'x'"


class Residual(nn.Module):
    """As the 2021 winner's blocks: a residual sum feeds a conv without a quantizer in between.

    input (8 bits) -> conv_a (4-bit weights) -> relu_a (4 bits) -> conv_b (12-bit weights) -> relu_b;
    relu_a + relu_b -> conv_c (4-bit weights). qonnx infers the sum as SCALEDINT<32>.
    """

    def __init__(self):
        super().__init__()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv_a = qnn.QuantConv1d(2, 4, 3, padding=1, bias=False, weight_bit_width=4)
        self.relu_a = qnn.QuantReLU(bit_width=4)
        self.conv_b = qnn.QuantConv1d(4, 4, 3, padding=1, bias=False, weight_bit_width=12)
        self.relu_b = qnn.QuantReLU(bit_width=4)
        self.conv_c = qnn.QuantConv1d(4, 4, 3, padding=1, bias=False, weight_bit_width=4)

    def forward(self, x):
        a = self.relu_a(self.conv_a(self.inp(x)))
        return self.conv_c(a + self.relu_b(self.conv_b(a)))


@pytest.fixture(scope="module")
def residual_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = Residual()
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 2, 64))
    path = tmp_path_factory.mktemp("residual") / "residual.onnx"
    export_qonnx(model.eval(), path, input_shape=(1, 2, 64))
    return path


def _share(layer: dict, total: float) -> str:
    return f"{100 * layer['bops'] / total:.2f}%"


def test_wide_macs_are_flagged_with_their_share_of_the_table(residual_onnx):
    res = model_cost(residual_onnx)
    layers = {layer["name"]: layer for layer in res.per_layer}
    assert [(l["input_dtype"], l["weight_dtype"]) for l in res.per_layer] == [
        ("SCALEDINT<8>", "SCALEDINT<4>"), ("SCALEDINT<4>", "SCALEDINT<12>"), ("SCALEDINT<32>", "SCALEDINT<4>")]
    assert res.bops == sum(l["bops"] for l in res.per_layer)  # the table's rows add up to the total it shows
    wide = [w for w in res.warnings if "MACs wider than 8 bits" in w]
    assert len(wide) == 2  # Conv_0 (8 x 4 bits) is not flagged
    conv_b, conv_c = wide
    assert conv_b.startswith("Conv_1 (Conv): ") and "weights SCALEDINT<12> (12 bits)" in conv_b
    assert conv_c.startswith("Conv_2 (Conv): ") and "input SCALEDINT<32> (32 bits)" in conv_c
    for text, name in ((conv_b, "Conv_1"), (conv_c, "Conv_2")):
        layer = layers[name]
        assert f": {layer['bops']:,.0f} bops, {_share(layer, res.bops)} of the total {res.bops:,.0f} bops" in text
    # the un-requantized sum is most of this graph's cost: 32 x 4 bits per MAC against 4 x 12 and 8 x 4
    assert layers["Conv_2"]["bops"] / res.bops > 0.5


def test_wide_mac_warning_in_text_and_json(residual_onnx, capsys):
    assert main(["cost", str(residual_onnx), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    conv_c = next(l for l in d["per_layer"] if l["name"] == "Conv_2")
    expected = f"{conv_c['bops']:,} bops, {_share(conv_c, d['bops'])} of the total {d['bops']:,} bops"
    assert any(w.startswith("Conv_2 (Conv): MACs wider than 8 bits") and expected in w for w in d["warnings"])

    assert main(["cost", str(residual_onnx), "--per-layer"]) == 0
    captured = capsys.readouterr()
    row = next(line for line in captured.out.splitlines() if " Conv_2 " in line)
    cells = [c.strip() for c in re.split(r"[│|]", row) if c.strip()]
    assert f"{cells[5]} bops, {_share(conv_c, d['bops'])}" in captured.err  # the bops cell of the table, quoted
    assert f"bops:         {d['bops']:,}" in captured.out
    assert "warning: Conv_2 (Conv): MACs wider than 8 bits" in captured.err
    assert "MACs wider" not in captured.out
