"""QONNX / QCDQ export and its verification against PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch.nn.utils import prune

from amcprune.errors import AmcpruneError
from amcprune.export import burned_copy, export_model, export_qcdq, export_qonnx, verify_export
from amcprune.export.verify import compare_outputs
from amcprune.models import ModelSpec, build_model, prunable_layers

SMALL = {
    "vgg10": {"conv_filters": 16, "dense_width": 32},
    "compact": {},
}


def small_model(arch: str, bits: int, seed: int = 0, prune_amount: float = 0.3):
    """A small calibrated model with live pruning masks left in the post-training-forward state."""
    torch.manual_seed(seed)
    spec = ModelSpec(arch=arch, weight_bits=bits, act_bits=bits, input_bits=8, **SMALL[arch])
    model = build_model(spec)
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(16, 2, 1024, generator=g) * 4 - 2)
    for _, module in prunable_layers(model):
        prune.l1_unstructured(module, "weight", amount=prune_amount)
    out = model(torch.rand(2, 2, 1024, generator=g) * 4 - 2)  # a training forward with live masks
    getattr(out, "value", out).sum().backward()
    return model.eval()


def frames(n: int = 8, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, size=(n, 2, 1024)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["qonnx", "qcdq"])
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("arch", ["vgg10", "compact"])
def test_export_verifies(tmp_path, arch, bits, fmt):
    model = small_model(arch, bits)
    path = export_model(model, tmp_path / f"{arch}{bits}.onnx", fmt)
    res = verify_export(model, path, frames(), fmt=fmt)
    print(f"{arch} {bits}-bit {fmt}: max abs diff {res.max_abs_diff:.3g} (tol {res.tolerance:.3g}), "
          f"argmax agreement {res.argmax_agreement:.3f} over {res.n}")
    assert res.passed and res.n == 8
    assert res.argmax_agreement == 1.0
    assert res.max_abs_diff < 1e-4
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ("Quant" in ops) == (fmt == "qonnx")
    assert ("QuantizeLinear" in ops) == (fmt == "qcdq")
    # the caller's model still carries its masks; nothing temporary is left beside the file
    assert all(prune.is_pruned(m) for _, m in prunable_layers(model))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{arch}{bits}.onnx"]


def test_masks_are_burned_into_the_export(tmp_path):
    model = small_model("vgg10", 8, prune_amount=0.6)
    path = export_qonnx(model, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    # the first conv's float weight initializer feeds a Quant node: 60% of it must be exact zeros
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    weights = [v for v in inits.values() if v.ndim == 3 and v.shape[1] == 2]
    assert weights and np.mean(weights[0] == 0) >= 0.6
    clone = burned_copy(model)
    assert not any(prune.is_pruned(m) for _, m in prunable_layers(clone))


def _perturbed(path, out, scale=-1.0):
    """Flip the sign of the largest weight initializer (a plausible export bug)."""
    proto = onnx.load(str(path))
    biggest = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    arr = numpy_helper.to_array(biggest)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        new = np.clip(-arr.astype(np.int64), info.min + 1, info.max).astype(arr.dtype)
    else:
        new = (arr * scale).astype(arr.dtype)
    biggest.CopyFrom(numpy_helper.from_array(new, biggest.name))
    onnx.save(proto, str(out))
    return out


@pytest.mark.parametrize("fmt", ["qonnx", "qcdq"])
def test_broken_export_fails_verification(tmp_path, fmt):
    model = small_model("vgg10", 8)
    good = export_model(model, tmp_path / "good.onnx", fmt)
    bad = _perturbed(good, tmp_path / "bad.onnx")
    with pytest.raises(AmcpruneError, match="disagrees"):
        verify_export(model, bad, frames(), fmt=fmt)
    res = verify_export(model, bad, frames(), fmt=fmt, raise_on_failure=False)
    assert not res.passed and res.max_abs_diff > res.tolerance


def test_format_is_detected(tmp_path):
    model = small_model("vgg10", 4)
    q = export_qonnx(model, tmp_path / "q.onnx")
    c = export_qcdq(model, tmp_path / "c.onnx")
    x = frames(2)
    assert verify_export(model, q, x).fmt == "qonnx"
    assert verify_export(model, c, x).fmt == "qcdq"
    # frames in the file layout (n, 1024, 2) are accepted too
    assert verify_export(model, c, x.transpose(0, 2, 1)).passed


def test_tolerance_rules():
    ref = np.array([[1.0, 0.0, -1.0], [0.5, 0.49999, 0.0]])
    ok = compare_outputs(ref, ref + 1e-6)
    assert ok.passed and ok.argmax_agreement == 1.0
    # a near-tie broken the other way by rounding noise is excused
    tie = ref.copy()
    tie[1] = [0.49999, 0.5, 0.0]
    res = compare_outputs(ref, tie)
    assert res.passed and res.argmax_agreement == 0.5 and res.unexplained_argmax_mismatches == 0
    # a real difference is not
    bad = ref.copy()
    bad[0] = [0.0, 1.0, -1.0]
    assert not compare_outputs(ref, bad).passed


def test_export_rejects_bad_format(tmp_path):
    with pytest.raises(AmcpruneError, match="format"):
        export_model(small_model("vgg10", 4), tmp_path / "x.onnx", "tflite")
