"""Test helper: write tiny (or lazily allocated full-size) HDF5 files in the RadioML 2018.01A layout.

Import it from any test as ``from helpers import layout``.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np


def write_layout(
    path,
    n_classes: int = 3,
    snrs=(-2, 0, 2),
    frames_per_pair: int = 8,
    frame_length: int = 1024,
    x: str = "index",
    y_dtype="int64",
    z_shape: str = "column",
    classes_attr=None,
    compression=None,
) -> Path:
    """Write a file ordered by class then SNR.

    ``x``: "index" (frame i holds the value i everywhere, so reads are checkable), "random", or "lazy" (X is
    allocated chunked and never written: costs no disk, reads as zeros).
    """
    path = Path(path)
    snrs = np.asarray(snrs, dtype=np.int64)
    n_pairs = n_classes * snrs.size
    n = n_pairs * frames_per_pair
    with h5py.File(path, "w") as f:
        if x == "lazy":
            f.create_dataset("X", shape=(n, frame_length, 2), dtype="float32", chunks=(min(64, n), frame_length, 2))
        else:
            dx = f.create_dataset("X", shape=(n, frame_length, 2), dtype="float32")
            rng = np.random.default_rng(0)
            step = 4096
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                if x == "index":
                    dx[lo:hi] = np.broadcast_to(
                        np.arange(lo, hi, dtype=np.float32)[:, None, None], (hi - lo, frame_length, 2)
                    )
                else:
                    dx[lo:hi] = rng.standard_normal((hi - lo, frame_length, 2), dtype=np.float32)
        per_class = snrs.size * frames_per_pair
        ychunk = (min(n, max(frames_per_pair, 1)), n_classes)
        dy = f.create_dataset(
            "Y", shape=(n, n_classes), dtype=y_dtype, chunks=ychunk if compression else None, compression=compression
        )
        zshape = (n, 1) if z_shape == "column" else (n,)
        dz = f.create_dataset("Z", shape=zshape, dtype="int64")
        z_class = np.repeat(snrs, frames_per_pair)
        for c in range(n_classes):
            lo, hi = c * per_class, (c + 1) * per_class
            y = np.zeros((per_class, n_classes), dtype=y_dtype)
            y[:, c] = 1
            dy[lo:hi] = y
            dz[lo:hi] = z_class.reshape(-1, 1) if z_shape == "column" else z_class
        if classes_attr is not None:
            f.attrs["classes"] = json.dumps(list(classes_attr))
    return path


def full_size_layout(path) -> Path:
    """The full RadioML 2018.01A layout (2,555,904 frames) with X never written; Y compressed, int64."""
    return write_layout(
        path, n_classes=24, snrs=range(-20, 31, 2), frames_per_pair=4096, x="lazy", compression="lzf"
    )
