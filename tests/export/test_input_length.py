"""Export and cost use the input length of the spec the model carries, not a fixed 1024."""

from __future__ import annotations

import onnx
import pytest
import torch

from amcprune.cost import model_cost, onnx_cost
from amcprune.export import export_qonnx
from amcprune.export.onnx_export import input_shape_of
from amcprune.models import ModelSpec, build_model, load_model
from amcprune.utils.checkpoint import model_state, save_checkpoint

SMALL = {"vgg10": {"conv_filters": 4, "dense_width": 8}, "compact": {}}


def _calibrated(spec: ModelSpec):
    torch.manual_seed(0)
    model = build_model(spec)
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 2, spec.input_length) * 4 - 2)
    return model.eval()


def _input_shape(path) -> tuple[int, ...]:
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims)


@pytest.mark.parametrize("arch", ["vgg10", "compact"])
def test_export_uses_the_carried_input_length(tmp_path, arch):
    model = _calibrated(ModelSpec(arch=arch, weight_bits=4, act_bits=4, input_length=512, **SMALL[arch]))
    assert input_shape_of(model) == (1, 2, 512)
    export_qonnx(model, tmp_path / "m.onnx")
    assert _input_shape(tmp_path / "m.onnx") == (1, 2, 512)


def test_cost_is_billed_for_the_carried_input_length(tmp_path):
    spec = ModelSpec(arch="vgg10", weight_bits=4, act_bits=4, input_length=512, conv_filters=4, dense_width=8)
    model = _calibrated(spec)
    cost = model_cost(model, use_cache=False)
    first = cost.per_layer[0]
    assert first["weights"] == 4 * 2 * 3
    assert first["macs"] == 512 * first["nonzero"]  # each non-zero first-conv weight at 512 samples, not 1024
    export_qonnx(model, tmp_path / "m.onnx")
    assert onnx_cost(tmp_path / "m.onnx", use_cache=False).bops == cost.bops
    # the same through a checkpoint: the loaded model carries the stored spec
    save_checkpoint(tmp_path / "m.pt", {"spec": spec.model_dump(mode="json"), **model_state(model)})
    loaded, _, _ = load_model(tmp_path / "m.pt")
    assert model_cost(loaded, use_cache=False).bops == cost.bops == model_cost(tmp_path / "m.pt", use_cache=False).bops
    full = model_cost(_calibrated(spec.model_copy(update={"input_length": 1024})), use_cache=False)
    assert full.per_layer[0]["macs"] == 2 * first["macs"]
