"""Evaluation under Brevitas' quant_inference_mode (amcprune.train.fasteval) against plain Brevitas eval.

The logits must be identical bit for bit on every architecture, and the block must leave no trace: the model
afterwards trains, exports and costs exactly as one that was evaluated the plain way.
"""

from __future__ import annotations

import copy

import pytest
import torch
from brevitas.proxy.runtime_quant import ActQuantProxyFromInjector
import torch.nn.functional as F
from torch.nn.utils import prune

from amcprune.export import export_qonnx
from amcprune.models import ModelSpec, build_model
from amcprune.train.evaluate import _logits, evaluate_model, predict_batches
from amcprune.train.fasteval import fast_eval
from amcprune.train.trainer import Trainer

from train_helpers import tiny_config, tiny_spec

SPECS = {
    "vgg10": dict(arch="vgg10", conv_filters=8, dense_width=16, weight_bits=4, act_bits=4),
    "vgg10-8bit-stem": dict(arch="vgg10", conv_filters=8, dense_width=16, weight_bits=8, act_bits=8, stem_stride=2),
    "compact": dict(arch="compact", weight_bits=4, act_bits=4),
    "compact-winner-stem": dict(arch="compact-winner-stem"),
}


def _trained_a_little(spec: ModelSpec, steps: int = 3) -> torch.nn.Module:
    """A few SGD steps on random frames: learned scales and statistics away from their initial values."""
    torch.manual_seed(0)
    model = build_model(spec).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 2, 1024, generator=g)
        y = torch.randint(0, spec.num_classes, (16,), generator=g)
        opt.zero_grad()
        F.cross_entropy(_logits(model(x)), y).backward()
        opt.step()
    return model.eval()


def _batches(n_batches: int = 3, size: int = 8, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 2, 1024, generator=g) * 0.8, torch.zeros(size, dtype=torch.long),
             torch.zeros(size, dtype=torch.long)) for _ in range(n_batches)]


def _plain_logits(model, batches):
    with torch.no_grad():
        return torch.cat([_logits(model(x)) for x, _, _ in batches])


def _module_state(model):
    return [(name, sorted(m.__dict__), sorted(m._modules)) for name, m in model.named_modules()]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_same_logits_as_brevitas(name):
    model = _trained_a_little(ModelSpec(num_classes=6, **SPECS[name]))
    batches = _batches()
    ref = _plain_logits(model, batches)
    before = _module_state(model)
    with torch.no_grad(), fast_eval(model) as on:
        assert on
        got = torch.cat([_logits(model(x)) for x, _, _ in batches])
    assert torch.equal(ref, got)
    assert _module_state(model) == before  # no cache, handler or flag left behind
    assert torch.equal(_plain_logits(model, batches), ref)


def test_pruned_model_and_predictions():
    """torch.nn.utils.prune masks (weight = weight_orig * mask in a forward pre-hook) are seen through the cache,
    and predict_batches gives the same predictions and loss either way."""
    model = _trained_a_little(ModelSpec(num_classes=6, **SPECS["vgg10"]))
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear)):
            prune.l1_unstructured(m, "weight", amount=0.6)
    batches = _batches()
    fast = predict_batches(model, batches, fast=True)
    plain = predict_batches(model, batches, fast=False)
    assert all(torch.equal(a, b) for a, b in zip(fast[:3], plain[:3]))
    assert fast[3] == plain[3]


def test_float_model_is_left_alone():
    model = build_model(ModelSpec(arch="vgg10", num_classes=6, conv_filters=4, dense_width=8, quantized=False)).eval()
    with fast_eval(model) as on:
        assert not on
    with fast_eval(_trained_a_little(ModelSpec(num_classes=6, **SPECS["vgg10"])), enabled=False) as on:
        assert not on


def test_no_trace_on_training_and_export(tmp_path):
    """Evaluate one copy fast and one plain, train both one more step: the same scales reported and the same
    exported bytes. Brevitas' own context manager keeps the cached activation scales on exit, and ``scale()``
    would then report them instead of the trained ones."""
    base = _trained_a_little(ModelSpec(num_classes=6, **SPECS["compact"]))
    copies = [copy.deepcopy(base), copy.deepcopy(base)]
    x = torch.randn(16, 2, 1024, generator=torch.Generator().manual_seed(5))
    y = torch.arange(16) % 6
    for model, fast in zip(copies, (True, False)):
        with torch.no_grad(), fast_eval(model, enabled=fast):
            model.eval()(x)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)  # large: the scales must move
        F.cross_entropy(_logits(model(x)), y).backward()
        opt.step()
        model.eval()
    assert not torch.equal(_plain_logits(copies[0], [(x, y, y)]), _plain_logits(base, [(x, y, y)]))
    # what a quantizer reports (the export, the bits stage and shrinking read it): the trained scale, not a cache
    scales = [[p.scale() for p in m.modules() if isinstance(p, ActQuantProxyFromInjector) and p.is_quant_enabled]
              for m in copies]
    assert len(scales[0]) > 5 and all(torch.equal(a, b) for a, b in zip(*scales))
    paths = [export_qonnx(m, tmp_path / f"m{i}.onnx") for i, m in enumerate(copies)]
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_trainer_uses_the_switch(tiny_h5):
    from amcprune.data import radioml
    from amcprune.train.data import InMemoryData

    spec = tiny_spec(conv_filters=8)
    data = InMemoryData.from_file(tiny_h5, radioml.load_splits(tiny_h5, val_fraction=0.2), spec=spec, device="cpu",
                                  quiet=True)
    torch.manual_seed(0)
    trainer = Trainer(build_model(spec), tiny_config(scheduler="none"), data)
    trainer.train_epoch()
    fast = trainer.evaluate("val")
    plain = trainer.evaluate("val", fast=False)
    assert fast.accuracy == plain.accuracy and fast.loss == plain.loss
    assert evaluate_model(trainer.model, data, split="test", fast=True).accuracy == \
        evaluate_model(trainer.model, data, split="test", fast=False).accuracy
