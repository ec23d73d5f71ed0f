"""The training fast path (amcprune.train.fastquant) against Brevitas, its definition.

Forward values must be identical, gradients equal to float rounding; the statistics phase must update Brevitas'
state identically; a model trained with the fast path must export, cost and verify exactly as the unchanged
Brevitas model with the same weights.
"""

from __future__ import annotations

import copy
import math

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from brevitas.core.stats.stats_op import AbsPercentile

from amcprune.data import radioml
from amcprune.export import export_qonnx, verify_export
from amcprune.cost import onnx_cost
from amcprune.models import ModelSpec, build_model
from amcprune.models.quantizers import InputQuant, ReluActQuant, SignedActQuant
from amcprune.train import fastquant
from amcprune.train.data import InMemoryData
from amcprune.train.evaluate import _logits
from amcprune.train.fastquant import FakeQuant, fast_quant, fast_quant_modules
from amcprune.train.trainer import Trainer, _stats_modules

from train_helpers import tiny_config, tiny_spec

BACKENDS = ["c", "torch"]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    monkeypatch.setenv("AMCPRUNE_FASTQUANT_BACKEND", request.param)
    if request.param == "c" and fastquant._load_c() is None:
        pytest.skip("no C compiler here: the PyTorch backend is what runs")
    assert fastquant.backend() == request.param
    return request.param


def _stats_phase(model, steps: int) -> None:
    for _, m in _stats_modules(model):
        m.collect_stats_steps = steps


def _grads(model):
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _assert_grads_close(ref, got, rtol=1e-4, scale_rtol=2e-3):
    """Within ``rtol`` of the largest gradient of each parameter. A learned activation scale's gradient is a
    difference of two sums over the whole activation that nearly cancel, and Brevitas sums in float32 in one
    order, the fast path in another (double in the C kernel): ``scale_rtol`` for those."""
    assert ref.keys() == got.keys()
    for k in ref:
        scale = ref[k].abs().max().item()
        diff = (ref[k] - got[k]).abs().max().item()
        tol = scale_rtol if k.endswith("scaling_impl.value") else rtol
        assert diff <= tol * scale + 1e-12, f"{k}: max diff {diff:.3g}, max |grad| {scale:.3g}"


def _no_trace(model) -> bool:
    return all("forward" not in m.__dict__ and "_fastquant_kind" not in m.__dict__ for m in model.modules())


# --- the exact percentile of the statistics phase --------------------------------------------------------


@pytest.mark.parametrize("shape", [(64, 16, 1024), (8, 4, 1024), (256, 24)])
@pytest.mark.parametrize("relu", [True, False])
def test_percentile_is_exactly_brevitas(shape, relu):
    g = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(shape, generator=g) * 1.7 - 0.3).requires_grad_(True)
    stats = AbsPercentile(high_percentile_q=99.999, stats_reduce_dim=None)
    ref = stats(torch.relu(x).view(-1) if relu else x.view(-1))
    ref.backward()
    ref_grad = x.grad.clone()
    x.grad = None
    stats.forward = fastquant.types.MethodType(fastquant._fast_abs_percentile, stats)
    stats._fastquant_call = (relu, None)
    got = stats(x.view(-1))
    got.backward()
    assert torch.equal(got, ref)
    assert torch.equal(x.grad, ref_grad)  # one element: the selected value (no ties in continuous data)
    n = x.numel()
    assert (x.grad != 0).sum() == 1 and ref_grad.abs().sum() == 1


def test_percentile_takes_the_fast_route_where_it_applies():
    x = torch.randn(64, 16, 1024)
    v = x.view(-1)
    k = int(math.floor(0.01 * 99.999 * v.numel() + 0.5))
    found = fastquant._TopRank.find(v, v.numel() - k + 1, "relu")
    assert found is not None
    value, index = found
    assert value == torch.kthvalue(v, k)[0] and v[index] == value
    # A ReLU input that is mostly non-positive: the bound is not above zero, Brevitas' own code runs
    assert fastquant._TopRank.find(-x.abs().view(-1), v.numel() - k + 1, "relu") is None


# --- single quantizers ------------------------------------------------------------------------------------


def _act(kind: str) -> torch.nn.Module:
    if kind == "relu":
        return qnn.QuantReLU(act_quant=ReluActQuant, bit_width=4)
    if kind == "identity":
        return qnn.QuantIdentity(act_quant=SignedActQuant, bit_width=4)
    return qnn.QuantHardTanh(act_quant=InputQuant, bit_width=8)


@pytest.mark.parametrize("phase", ["stats", "learned"])
@pytest.mark.parametrize("kind", ["relu", "identity", "input"])
def test_quantizer_forward_and_gradients_match_brevitas(backend, kind, phase):
    torch.manual_seed(0)
    ref = _act(kind).train()
    if phase == "learned":
        for _, m in _stats_modules(ref):
            m.init_scale()
            with torch.no_grad():
                m.value.fill_(0.37)  # a scale that clips some values
    fast = copy.deepcopy(ref)
    x = torch.randn(32, 8, 512) * 2
    x[0, 0, :4] = torch.tensor([0.0, -0.0, 0.37 * 15.5, 0.37 * 14.5])  # zeros and exact rounding ties
    g = torch.randn(32, 8, 512)
    outs, grads = [], []
    for model, on in ((ref, False), (fast, True)):
        xi = x.clone().requires_grad_(True)
        with fast_quant(model, enabled=on) as n:
            assert n == (len(fast_quant_modules(model)) if on else 0)
            out = model(xi)
            (out * g).sum().backward()
        outs.append(out.detach())
        grads.append((xi.grad.clone(), _grads(model)))
    assert _no_trace(fast)
    assert torch.equal(outs[0], outs[1])
    # dL/dx: the same float ops, bit for bit; during the statistics phase the one element holding the percentile
    # also receives dL/dscale / threshold, and dL/dscale is summed in another order: equal to float rounding.
    differ = grads[0][0] != grads[1][0]
    assert int(differ.sum()) <= (1 if phase == "stats" and kind != "input" else 0)
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=0)
    _assert_grads_close(grads[0][1], grads[1][1])  # dL/dscale: summed in another order
    for (_, a), (_, b) in zip(_stats_modules(ref), _stats_modules(fast)):
        assert a.counter == b.counter and torch.equal(a.buffer, b.buffer)


def test_fake_quant_function_outside_brevitas(backend):
    x = torch.tensor([-1.0, 0.0, 0.04, 0.05, 0.15, 0.25, 1.49, 1.51, float("nan")]).repeat(8)
    s = torch.tensor(0.1, requires_grad=True)
    out = FakeQuant.apply(x.requires_grad_(True), s, 0.0, 15.0, True)
    ref = torch.clamp(torch.round(torch.relu(x.detach()) / 0.1), 0, 15) * torch.tensor(0.1)
    assert torch.equal(out[:8], ref[:8]) and torch.isnan(out[8])  # NaN stays NaN, as in Brevitas


# --- training steps ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["vgg10", "compact"])
def test_training_steps_match_brevitas(backend, arch):
    """Four Adam steps with and without the fast path, across the end of the statistics phase (2 steps here):
    at every step the same outputs, gradients to float rounding and the same statistics state. The fast model
    is re-synchronised to the reference's weights before each step (else float rounding in the gradients
    would grow into flipped quantization levels and the comparison would lose its point)."""
    torch.manual_seed(0)
    spec = ModelSpec(arch=arch, num_classes=6, weight_bits=4, act_bits=4,
                     **({"conv_filters": 8, "dense_width": 16} if arch == "vgg10" else {}))
    ref = build_model(spec).train()
    _stats_phase(ref, 2)
    fast = copy.deepcopy(ref)
    assert len(fast_quant_modules(fast)) >= 5
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-3)
    opt_fast = torch.optim.Adam(fast.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(4):
        x = torch.randn(16, 2, 1024, generator=g) * 0.7
        y = torch.randint(0, 6, (16,), generator=g)
        with torch.no_grad():
            for a, b in zip(ref.parameters(), fast.parameters()):
                b.copy_(a)
            for a, b in zip(ref.buffers(), fast.buffers()):
                b.copy_(a)
        results = []
        for model, opt, on in ((ref, opt_ref, False), (fast, opt_fast, True)):
            opt.zero_grad()
            with fast_quant(model, enabled=on):
                logits = _logits(model(x))
                F.cross_entropy(logits, y).backward()
            results.append((logits.detach(), _grads(model)))
            opt.step()
        assert torch.equal(results[0][0], results[1][0]), f"step {step}: outputs differ"
        _assert_grads_close(results[0][1], results[1][1])
        for (_, a), (_, b) in zip(_stats_modules(ref), _stats_modules(fast)):
            assert a.counter == b.counter == min(step + 1, 3)
            assert torch.equal(a.buffer, b.buffer)
    assert _no_trace(fast)


def _data(path, spec):
    splits = radioml.load_splits(path, val_fraction=0.2)
    return InMemoryData.from_file(path, splits, spec=spec, device="cpu", quiet=True)


def test_trainer_switch(tiny_h5, monkeypatch):
    calls = []
    orig = FakeQuant.apply
    monkeypatch.setattr(FakeQuant, "apply", lambda *a: calls.append(1) or orig(*a))
    spec = tiny_spec(conv_filters=8)
    data = _data(tiny_h5, spec)
    for on in (True, False):
        calls.clear()
        torch.manual_seed(0)
        trainer = Trainer(build_model(spec), tiny_config(fast_quant=on, scheduler="plateau"), data)
        r = trainer.train_epoch()
        assert np.isfinite(r["loss"])
        assert bool(calls) == on
        assert _no_trace(trainer.model)


def test_export_cost_and_verify_unchanged_after_fast_training(tiny_h5, tmp_path):
    """A model trained with the fast path exports to the same QONNX graph, cost and verification as the unchanged
    Brevitas model built fresh and given its state dict (strict), and the two give the same outputs."""
    spec = tiny_spec(conv_filters=8)
    data = _data(tiny_h5, spec)
    torch.manual_seed(0)
    trainer = Trainer(build_model(spec), tiny_config(fast_quant=True, scheduler="none"), data)
    for _ in range(2):
        trainer.train_epoch()
    trained = trainer.model.eval()
    assert _no_trace(trained)
    assert all(m.counter > 0 for _, m in _stats_modules(trained))  # the statistics phase did run
    fresh = build_model(spec)
    fresh.load_state_dict(trained.state_dict(), strict=True)
    fresh.eval()
    frames = torch.from_numpy(np.random.default_rng(3).uniform(-2, 2, size=(8, 2, 1024)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(_logits(trained(frames)), _logits(fresh(frames)))
    paths = [export_qonnx(m, tmp_path / f"{name}.onnx") for name, m in (("trained", trained), ("fresh", fresh))]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    costs = [onnx_cost(p, use_cache=False) for p in paths]
    assert (costs[0].bops, costs[0].weight_bits, costs[0].score) == (costs[1].bops, costs[1].weight_bits, costs[1].score)
    assert costs[0].bops > 0
    for model, path in zip((trained, fresh), paths):
        res = verify_export(model, path, frames.numpy())
        assert res.passed and res.argmax_agreement == 1.0
