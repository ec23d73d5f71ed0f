"""Helpers for the train-stage tests: tiny RadioML-layout files, small specs and configs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from amcprune.models import ModelSpec
from amcprune.train.config import TrainConfig


def make_tiny_h5(path: Path, n_classes: int = 4, snrs=(0, 10), fpp: int = 20, seed: int = 0, length: int = 1024) -> Path:
    """An easy problem in the RadioML layout: class c is a tone of frequency (c + 1) / 64 plus noise."""
    rng = np.random.default_rng(seed)
    n = n_classes * len(snrs) * fpp
    X = np.empty((n, length, 2), dtype=np.float32)
    Y = np.zeros((n, n_classes), dtype=np.int64)
    Z = np.empty((n, 1), dtype=np.int64)
    t = np.arange(length)
    row = 0
    for c in range(n_classes):
        for snr in snrs:
            phase = rng.uniform(0, 2 * np.pi, size=(fpp, 1))
            sig = np.exp(1j * (2 * np.pi * (c + 1) / 64 * t[None, :] + phase))
            noise = (rng.standard_normal((fpp, length)) + 1j * rng.standard_normal((fpp, length))) * np.sqrt(10 ** (-snr / 10) / 2)
            s = 0.5 * (sig + noise)
            X[row : row + fpp, :, 0] = s.real
            X[row : row + fpp, :, 1] = s.imag
            Y[row : row + fpp, c] = 1
            Z[row : row + fpp, 0] = snr
            row += fpp
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X)
        f.create_dataset("Y", data=Y)
        f.create_dataset("Z", data=Z)
    return path


def tiny_spec(**overrides):
    base = dict(arch="vgg10", num_classes=4, conv_filters=4, dense_width=8, weight_bits=4, act_bits=4)
    base.update(overrides)
    return ModelSpec(**base)


def tiny_config(**overrides):
    base = dict(epochs=3, batch_size=64, lr=0.01, val_fraction=0.2, device="cpu", quiet=True, eval_batch_size=64)
    base.update(overrides)
    return TrainConfig(**base)
