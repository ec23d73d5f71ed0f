"""The prescribed RadioML 2018.01A train/test split of the ITU-ML5G-PS-007 challenge, and a validation carve.

The challenge code seeds numpy's legacy global generator with 2018, then loops over modulation 0..23 and
SNR index 0..25, shuffles the 4096 indices of that (class, SNR) pair with ``np.random.shuffle`` and sends
the first ``ceil(0.1 * 4096) = 410`` to the test set and the rest to training. ``np.random.RandomState(2018)``
produces the same stream without touching numpy's global state. Any filtering (SNR, class) must be applied
to the result, never by skipping loop iterations, or every later shuffle changes and test frames leak into
training.
"""

from __future__ import annotations

import hashlib

import numpy as np

from amcprune.errors import AmcpruneError

CHALLENGE_SEED = 2018
CHALLENGE_TEST_FRACTION = 0.1


def n_test_per_pair(frames_per_pair: int, test_fraction: float = CHALLENGE_TEST_FRACTION) -> int:
    """Test frames per (class, SNR) pair, computed exactly as the challenge code does."""
    return int(np.ceil(test_fraction * frames_per_pair))


def prescribed_split(
    n_classes: int,
    n_snrs: int,
    frames_per_pair: int,
    seed: int = CHALLENGE_SEED,
    test_fraction: float = CHALLENGE_TEST_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_idx, test_idx)``, sorted int64 arrays, reproducing the challenge split.

    Frames are assumed ordered by class, then SNR, ``frames_per_pair`` per pair. For the full dataset
    (24, 26, 4096) this gives 2,300,064 train and 255,840 test frames.
    """
    for name, value in (("n_classes", n_classes), ("n_snrs", n_snrs), ("frames_per_pair", frames_per_pair)):
        if int(value) != value or value < 1:
            raise AmcpruneError(f"prescribed split: {name} must be a positive integer, got {value!r}")
    if not 0.0 <= test_fraction <= 1.0:
        raise AmcpruneError(f"prescribed split: test_fraction must be in [0, 1], got {test_fraction!r}")
    n_classes, n_snrs, frames_per_pair = int(n_classes), int(n_snrs), int(frames_per_pair)
    n_test = n_test_per_pair(frames_per_pair, test_fraction)
    n_pairs = n_classes * n_snrs

    rng = np.random.RandomState(seed)
    test_parts = np.empty((n_pairs, n_test), dtype=np.int64)
    train_parts = np.empty((n_pairs, frames_per_pair - n_test), dtype=np.int64)
    pair = 0
    for mod in range(n_classes):
        for snr_idx in range(n_snrs):
            start = (mod * n_snrs + snr_idx) * frames_per_pair
            indices = np.arange(start, start + frames_per_pair, dtype=np.int64)
            rng.shuffle(indices)  # same draws as np.random.shuffle on a list after np.random.seed(seed)
            test_parts[pair] = indices[:n_test]
            train_parts[pair] = indices[n_test:]
            pair += 1
    # Pairs are disjoint and increasing, so sorting within each pair sorts the whole.
    train = np.sort(train_parts, axis=1).ravel()
    test = np.sort(test_parts, axis=1).ravel()
    return train, test


def split_fingerprint(test_idx: np.ndarray) -> str:
    """SHA-256 hex digest of the sorted test indices as little-endian int64 bytes."""
    idx = np.sort(np.asarray(test_idx, dtype=np.int64).ravel())
    return hashlib.sha256(idx.astype("<i8", copy=False).tobytes()).hexdigest()


def carve_validation(
    train_idx: np.ndarray, frames_per_pair: int, val_fraction: float, val_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split sorted training indices into ``(train, val)``, per (class, SNR) pair, deterministically.

    Each pair gives ``round(val_fraction * its train frames)`` frames to validation, chosen by a numpy
    ``Generator`` seeded with ``val_seed``. Only training indices are used, so validation never touches test.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise AmcpruneError(f"validation fraction must be in [0, 1), got {val_fraction!r}")
    train_idx = np.sort(np.asarray(train_idx, dtype=np.int64))
    if val_fraction == 0.0 or train_idx.size == 0:
        return train_idx, np.empty(0, dtype=np.int64)
    pair_of = train_idx // int(frames_per_pair)
    # Group boundaries of each pair within the sorted train indices.
    bounds = np.flatnonzero(np.diff(pair_of)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [train_idx.size]))
    rng = np.random.default_rng(val_seed)
    keys = rng.random(train_idx.size)  # one key per train frame, drawn in file order
    is_val = np.zeros(train_idx.size, dtype=bool)
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        n_val = int(round(val_fraction * (hi - lo)))
        if n_val:
            order = np.argsort(keys[lo:hi], kind="stable")
            is_val[lo + order[:n_val]] = True
    return train_idx[~is_val], train_idx[is_val]
