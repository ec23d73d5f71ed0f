"""Helpers for the cost tests: the 2021 challenge VGG10 written independently of amcprune.models."""

from __future__ import annotations

import torch
from torch import nn

# (label as a 2021 FINN-era file spells it, as qonnx 1.0 spells it)
LABEL_FORMS = [
    ("INT4", "INT4"), ("UINT4", "UINT4"), ("SCALEDINT4", "SCALEDINT<4>"), ("SCALEDUINT4", "SCALEDINT<4>"),
    ("INT16", "INT16"), ("UINT3", "UINT3"), ("SCALEDINT12", "SCALEDINT<12>"), ("SCALEDUINT6", "SCALEDINT<6>"),
    ("BIPOLAR", "BIPOLAR"), ("TERNARY", "TERNARY"), ("BINARY", "BINARY"), ("FLOAT32", "FLOAT32"),
]


def calibrate(model: nn.Module, n: int = 16, steps: int = 2, length: int = 1024, seed: int = 0) -> nn.Module:
    """A few train-mode forwards on random frames so BatchNorm statistics and activation scales are not trivial."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.rand(n, 2, length, generator=g) * 4 - 2)
    return model.eval()
