"""Brevitas quantizer classes shared by every architecture.

Input quantizer (``InputQuant``): a ``QuantHardTanh`` with a *constant* scale. Measured in Brevitas 0.13.4:
signed integer, zero point 0, not narrow range, ``scale = 2.0 / 2**(bits-1)`` (the threshold
``max(|min_val|, |max_val|) = 2.0`` divided by ``2**(bits-1)``), rounding half to even (``torch.round``)
and clamping to ``[-2**(bits-1), 2**(bits-1) - 1]``::

    q = clamp(round(x / scale), -2**(bits-1), 2**(bits-1) - 1)      # int, fits int8 for bits <= 8
    x_hat = q * scale                                               # what the first layer sees

8 bits: scale 1/64, q in [-128, 127], so x in [-2, 2 - 1/64]; 4 bits: scale 1/4, q in [-8, 7].

Activation quantizers (``ReluActQuant``, ``SignedActQuant``): Brevitas' ``Uint8ActPerTensorFloat`` /
``Int8ActPerTensorFloat`` (learned scale initialised from runtime statistics over the first 300 training
steps), with one change: the scale parameter ``...scaling_impl.value`` is *always* in the state dict, also
before any training step. Stock Brevitas leaves it out until statistics were collected, so the state dict of
a freshly built model lacks keys that every trained checkpoint (including the 2021 challenge ones) has, and
strict loading / ``describe_mismatch`` would fail. Consequence (the same as stock Brevitas for any loaded
value): loading a state dict ends statistics collection and the loaded value is used as the learned scale.
"""

from __future__ import annotations

from brevitas.core.scaling import ParameterFromRuntimeStatsScaling
from brevitas.inject.enum import ScalingImplType
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8ActPerTensorFloatMinMaxInit,
    Int8WeightPerTensorFloat,
    Int32Bias,
    Uint8ActPerTensorFloat,
)

INPUT_RANGE = 2.0  # the challenge input quantizer clips to [-2, 2]


class StableStateRuntimeStatsScaling(ParameterFromRuntimeStatsScaling):
    """``ParameterFromRuntimeStatsScaling`` whose state dict always holds ``value``.

    Before statistics are collected (counter 0) the value saved is the initial one (what Brevitas saves with
    its ``_FULL_STATE_DICT`` flag); otherwise it is exactly what Brevitas saves.
    """

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        out = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        if prefix + "value" not in out:
            value = self.value if keep_vars else self.value.detach()
            out[prefix + "value"] = value
        return out


class InputQuant(Int8ActPerTensorFloatMinMaxInit):
    """Fixed-range input quantizer of the challenge baseline ([-2, 2], constant scale)."""

    bit_width = 8
    min_val = -INPUT_RANGE
    max_val = INPUT_RANGE
    scaling_impl_type = ScalingImplType.CONST


class ReluActQuant(Uint8ActPerTensorFloat):
    """Unsigned activation quantizer (QuantReLU's default) with a stable state dict."""

    scaling_impl = StableStateRuntimeStatsScaling


class SignedActQuant(Int8ActPerTensorFloat):
    """Signed activation quantizer (QuantIdentity's default) with a stable state dict."""

    scaling_impl = StableStateRuntimeStatsScaling


WeightQuant = Int8WeightPerTensorFloat  # Brevitas' default weight quantizer (per tensor, float scale)
BiasQuant = Int32Bias  # IntBias alone fails in Brevitas 0.13

__all__ = [
    "INPUT_RANGE",
    "BiasQuant",
    "InputQuant",
    "ReluActQuant",
    "SignedActQuant",
    "StableStateRuntimeStatsScaling",
    "WeightQuant",
]
