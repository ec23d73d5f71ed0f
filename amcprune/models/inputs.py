"""Lossless int8 storage of model inputs for the fixed-range input quantizer.

The input quantizer of every built-in architecture is a ``QuantHardTanh`` with constant scale over
[-2, 2] (measured in Brevitas 0.13.4): signed, zero point 0, not narrow range,

    scale = 2.0 / 2**(bits - 1)
    q = clamp(round_half_to_even(x / scale), -2**(bits - 1), 2**(bits - 1) - 1)
    model input after quantization = q * scale

Since ``scale`` is a power of two, ``q * scale`` is exact in float32 and the quantizer maps it back to ``q``:
``model(dequantize_input(quantize_input_int8(x, spec), spec)) == model(x)`` bit for bit.
NaN inputs are not supported (they have no integer code).
"""

from __future__ import annotations

import torch

from amcprune.errors import AmcpruneError
from amcprune.models.quantizers import INPUT_RANGE
from amcprune.models.spec import ModelSpec


def input_quant_info(spec: ModelSpec) -> tuple[int, float, float] | None:
    """``(bits, min, max)`` of the fixed-range input quantizer when inputs can be stored as int8, else None.

    None for float models (no input quantizer: the Hardtanh clips but does not round) and above 8 bits.
    """
    if not spec.quantized or spec.input_bits > 8:
        return None
    return spec.input_bits, -INPUT_RANGE, INPUT_RANGE


def input_scale(spec: ModelSpec) -> float:
    """Scale of the input quantizer: ``2.0 / 2**(input_bits - 1)`` (1/64 at 8 bits)."""
    return INPUT_RANGE / 2 ** (spec.input_bits - 1)


def _require(spec: ModelSpec) -> tuple[int, float]:
    info = input_quant_info(spec)
    if info is None:
        raise AmcpruneError(
            f"inputs of this model cannot be stored as int8 (quantized={spec.quantized}, input_bits={spec.input_bits}); "
            "keep them as float"
        )
    return info[0], input_scale(spec)


def quantize_input_int8(x: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """The integer codes of the input quantizer for ``x`` (any shape), as int8."""
    bits, scale = _require(spec)
    q = torch.round(x.float() / scale)
    return torch.clamp(q, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).to(torch.int8)


def dequantize_input(q: torch.Tensor, spec: ModelSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Float model input from int8 codes: ``q * scale`` (exact)."""
    _, scale = _require(spec)
    return q.to(dtype) * scale
