"""Faster evaluation of Brevitas models through Brevitas' own ``quant_inference_mode``.

In eval mode Brevitas re-quantizes every weight and runs its general activation quantizer (a chain of
full-length element-wise ops, plus quant-tensor bookkeeping) on every batch. ``quant_inference_mode`` runs one
ordinary forward pass, then switches every quantizer to an inference handler that reads the cached scale, zero
point and (with ``cache_quant_weight``) the cached quantized weight: the same float operations on the same
values, so the logits are the same bit for bit (tests/train/test_fasteval.py checks each architecture).

What the context manager leaves behind is the reason for this wrapper: on exit Brevitas 0.13 keeps the cached
activation and bias metadata (``_cached_act``, ``_cached_bias``), which ``proxy.scale()`` and the QONNX export
then read instead of the current learned scale, and an ``export_handler`` slot in ``_modules``. So every
caching and export attribute of every module is saved on entry and put back on exit: after the block the model
is what it was, and training, export and cost see no trace of the evaluation.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from torch import nn

# Module attributes quant_inference_mode sets, caches or replaces (Brevitas 0.13 proxies and layers).
_STATE_PREFIXES = ("_cached_", "cache_", "_cache_", "skip_create_quant_tensor", "_export_mode", "export_handler",
                   "return_quant_tensor", "_return_quant_tensor")


def _has_quantizers(model: nn.Module) -> bool:
    from brevitas.proxy.quant_proxy import QuantProxyFromInjector

    return any(isinstance(m, QuantProxyFromInjector) and m.is_quant_enabled for m in model.modules())


def _snapshot(model: nn.Module) -> list[tuple[nn.Module, dict[str, Any], set[str]]]:
    return [(m, {k: v for k, v in m.__dict__.items() if k.startswith(_STATE_PREFIXES)}, set(m._modules))
            for m in model.modules()]


def _restore(saved: list[tuple[nn.Module, dict[str, Any], set[str]]]) -> None:
    for m, attrs, children in saved:
        for name in [k for k in m._modules if k not in children]:  # e.g. an export_handler slot
            del m._modules[name]
        for name in [k for k in m.__dict__ if k.startswith(_STATE_PREFIXES) and k not in attrs]:
            del m.__dict__[name]
        m.__dict__.update(attrs)  # bypasses the properties' setters: the saved values themselves come back


@contextlib.contextmanager
def fast_eval(model: nn.Module, enabled: bool = True) -> Iterator[bool]:
    """Inside the block, eval-mode forward passes of ``model`` run under Brevitas' ``quant_inference_mode``
    with cached quantized weights; yields whether it is on (off for a float model or ``enabled=False``).

    Only for a model that does not change inside the block (no training, no pruning): the first forward pass
    fixes the cached weights and scales. The model must be in eval mode for its forward passes."""
    if not enabled or not _has_quantizers(model):
        yield False
        return
    from brevitas.export.inference import quant_inference_mode

    saved = _snapshot(model)
    try:
        with quant_inference_mode(model, cache_quant_weight=True):
            yield True
    finally:
        _restore(saved)
