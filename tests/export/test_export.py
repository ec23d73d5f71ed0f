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
from amcprune.export.verify import batch_effect, compare_outputs
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


def test_tolerance_is_counted_in_output_steps():
    q = 0.01  # one step of the output quantizer
    rng = np.random.default_rng(0)
    ref = np.round(rng.normal(size=(40, 5)) / q) * q
    ref[:, 0] += 1.0  # a clear winner in every frame
    ok = compare_outputs(ref, ref + 0.5 * q, output_step=q)
    assert ok.passed and ok.tolerance == q and ok.max_diff_steps == pytest.approx(0.5)
    # a defect moves every frame by more than a step
    assert not compare_outputs(ref, ref + 2 * q, output_step=q).passed
    # one rounding flip in 40 frames (5% of 40 = 2 allowed) with the same argmax is not a defect
    flip = ref.copy()
    flip[7, 1] += 3 * q
    res = compare_outputs(ref, flip, output_step=q)
    assert res.passed and res.frames_over_tolerance == 1 and res.allowed_frames_over_tolerance == 2
    # ... and below 20 frames none is allowed
    assert not compare_outputs(ref[:10], flip[:10], output_step=q).passed


def test_argmax_agreement_handles_ties():
    q = 0.01
    ref = np.array([[1.0, 1.0, 0.0], [0.5, 0.49, 0.0], [2.0, 0.0, 0.0]])
    cand = ref.copy()
    cand[0] = [0.99 + 0.01, 1.0, 0.0]  # exact tie in both: argmax picks the same class, and ties agree anyway
    cand[0, 0] -= 1e-9  # float noise breaks the tie the other way
    res = compare_outputs(ref, cand, output_step=q)
    assert res.passed and res.argmax_agreement == 1.0 and res.unexplained_argmax_mismatches == 0
    # a near-tie (1 step apart) broken by a difference within the tolerance is explained, not a defect
    near = ref.copy()
    near[1] = [0.495, 0.4951, 0.0]
    res = compare_outputs(ref, near, output_step=q)
    assert res.passed and res.argmax_agreement == pytest.approx(2 / 3) and res.unexplained_argmax_mismatches == 0
    # a clear winner replaced is not
    bad = ref.copy()
    bad[2] = [0.0, 2.0, 0.0]
    assert not compare_outputs(ref, bad, output_step=q).passed


class BatchSensitive(torch.nn.Module):
    """A model whose logits move by a few output steps when it runs at batch > 1 (as PyTorch's own
    convolutions do for a frame near a rounding boundary). Export traces it at batch 1."""

    def __init__(self, inner, shift):
        super().__init__()
        self.inner = inner
        self.shift = shift

    def forward(self, x):
        out = self.inner(x)
        out = getattr(out, "value", out)
        return out + self.shift if x.shape[0] > 1 else out


def test_verification_compares_like_with_like(tmp_path):
    # The reported case: PyTorch ran the whole batch and ONNX frame by frame, so a correct export failed.
    inner = burned_copy(small_model("vgg10", 4))
    probe = BatchSensitive(inner, 0.0)
    step = verify_export(probe, export_qonnx(probe, tmp_path / "probe.onnx"), frames(2)).output_step
    model = BatchSensitive(inner, 3 * step)
    path = export_qonnx(model, tmp_path / "m.onnx")
    res = verify_export(model, path, frames(8))
    assert res.passed and res.max_abs_diff < 1e-4 and res.frames_over_tolerance == 0
    effect = batch_effect(model, frames(8), batch_size=4)
    assert effect["frames_differing"] == 8 and effect["max_diff_steps"] == pytest.approx(3, rel=1e-3)


def test_output_step_is_the_last_layers_accumulator_step(tmp_path):
    model = burned_copy(small_model("vgg10", 4))
    x = torch.from_numpy(frames(1))
    with torch.no_grad():
        hidden = model[:36](x)  # the QuantTensor the last layer reads
    expected = float(hidden.scale.detach()) * float(model[36].quant_weight().scale.detach())
    res = verify_export(model, export_qonnx(model, tmp_path / "m.onnx"), frames(2))
    assert res.output_step == pytest.approx(expected) and res.tolerance == pytest.approx(expected)


def test_export_rejects_bad_format(tmp_path):
    with pytest.raises(AmcpruneError, match="format"):
        export_model(small_model("vgg10", 4), tmp_path / "x.onnx", "tflite")
