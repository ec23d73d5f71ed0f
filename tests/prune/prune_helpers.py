"""Helpers of the prune-stage tests: a tiny learnable problem, a tiny quantized VGG10, a trained start checkpoint."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

LENGTH = 128
N_CLASSES = 4


def tones(n_per_class: int, seed: int, length: int = LENGTH, n_classes: int = N_CLASSES, snr_db: float = 20.0):
    """Class c is a complex tone of frequency (c + 1) / 64 with a random phase, plus noise: (X (n, L, 2), y, snr)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    xs, ys = [], []
    for c in range(n_classes):
        phase = rng.uniform(0, 2 * np.pi, size=(n_per_class, 1))
        sig = np.exp(1j * (2 * np.pi * (c + 1) / 64 * t[None, :] + phase))
        noise = (rng.standard_normal((n_per_class, length)) + 1j * rng.standard_normal((n_per_class, length)))
        s = 0.5 * (sig + noise * np.sqrt(10 ** (-snr_db / 10) / 2))
        xs.append(np.stack([s.real, s.imag], axis=-1).astype(np.float32))
        ys.append(np.full(n_per_class, c))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    return x, y, np.full(len(y), int(snr_db))


def tiny_spec(**overrides):
    from amcprune.models import ModelSpec

    base = dict(arch="vgg10", num_classes=N_CLASSES, conv_filters=4, dense_width=8, weight_bits=4, act_bits=4,
                input_length=LENGTH)
    base.update(overrides)
    return ModelSpec(**base)


def tiny_train_config(**overrides):
    from amcprune.train.config import TrainConfig

    base = dict(epochs=2, batch_size=16, lr=0.02, val_fraction=0.2, device="cpu", quiet=True, eval_batch_size=256,
                seed=0)
    base.update(overrides)
    return TrainConfig(**base)


def tiny_data(spec=None, n_train=48, n_val=16, n_test=16):
    from amcprune.train.data import InMemoryData

    spec = spec or tiny_spec()
    return InMemoryData.from_arrays(
        {"train": tones(n_train, 1), "val": tones(n_val, 2), "test": tones(n_test, 3)}, spec=spec, device="cpu"
    )


def trained_checkpoint(path: Path, spec=None, data=None, epochs: int = 2, seed: int = 0) -> Path:
    """Train the tiny model a little and save it as an amcprune checkpoint (with its train config)."""
    from amcprune.models import build_model
    from amcprune.train.trainer import Trainer
    from amcprune.utils.checkpoint import model_state, save_checkpoint

    spec = spec or tiny_spec()
    data = data or tiny_data(spec)
    cfg = tiny_train_config(seed=seed)
    torch.manual_seed(seed)
    model = build_model(spec)
    trainer = Trainer(model, cfg, data, quiet=True)
    for _ in range(epochs):
        trainer.train_epoch()
    save_checkpoint(path, {"kind": "train", "spec": spec.model_dump(mode="json"), **model_state(model),
                           "train_config": cfg.model_dump(mode="json")})
    return path


def write_h5(path: Path, n_classes: int = N_CLASSES, snrs=(0, 10), fpp: int = 20, length: int = LENGTH, seed: int = 0) -> Path:
    """A RadioML-layout HDF5 file of the tone problem (ordered by class, then SNR)."""
    rng = np.random.default_rng(seed)
    n = n_classes * len(snrs) * fpp
    X = np.empty((n, length, 2), dtype=np.float32)
    Y = np.zeros((n, n_classes), dtype=np.int64)
    Z = np.empty((n, 1), dtype=np.int64)
    row = 0
    for c in range(n_classes):
        for snr in snrs:
            x, _, _ = tones(fpp, int(rng.integers(1 << 30)), length=length, n_classes=n_classes, snr_db=snr)
            X[row : row + fpp] = x[c * fpp : (c + 1) * fpp]
            Y[row : row + fpp, c] = 1
            Z[row : row + fpp, 0] = snr
            row += fpp
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X)
        f.create_dataset("Y", data=Y)
        f.create_dataset("Z", data=Z)
    return path
