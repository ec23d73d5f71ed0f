import hashlib

import numpy as np
import pytest

from amcprune.data.radioml import RadioMLFile, load_splits
from amcprune.data.split import carve_validation, n_test_per_pair, prescribed_split, split_fingerprint
from amcprune.errors import AmcpruneError
from helpers import layout




def reference_split(n_classes, n_snrs, frames_per_pair):
    """The challenge's code, written literally (legacy global seeding, shuffle of a list per pair)."""
    saved = np.random.get_state()
    try:
        np.random.seed(2018)
        train_indices = []
        test_indices = []
        for mod in range(0, n_classes):
            for snr_idx in range(0, n_snrs):
                start_idx = n_snrs * frames_per_pair * mod + frames_per_pair * snr_idx
                indices_subclass = list(range(start_idx, start_idx + frames_per_pair))
                split = int(np.ceil(0.1 * frames_per_pair))
                np.random.shuffle(indices_subclass)
                train_indices_subclass = indices_subclass[split:]
                test_indices_subclass = indices_subclass[:split]
                if snr_idx >= 0:
                    train_indices.extend(train_indices_subclass)
                test_indices.extend(test_indices_subclass)
        return train_indices, test_indices
    finally:
        np.random.set_state(saved)


@pytest.mark.parametrize("n_classes,n_snrs,fpp", [(2, 3, 7), (3, 2, 64), (4, 5, 100), (1, 1, 1), (2, 2, 4096)])
def test_split_equals_reference(n_classes, n_snrs, fpp):
    ref_train, ref_test = reference_split(n_classes, n_snrs, fpp)
    train, test = prescribed_split(n_classes, n_snrs, fpp)
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert np.array_equal(train, np.sort(ref_train))
    assert np.array_equal(test, np.sort(ref_test))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_split_does_not_touch_global_rng():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    prescribed_split(2, 2, 16)
    assert np.random.random() == expected


def test_full_layout_sizes_and_reference():
    train, test = prescribed_split(24, 26, 4096)
    assert test.size == 255_840 and train.size == 2_300_064
    assert n_test_per_pair(4096) == 410
    assert np.all(np.bincount(test // 4096, minlength=624) == 410)
    assert np.all(np.bincount(train // 4096, minlength=624) == 4096 - 410)
    covered = np.zeros(2_555_904, dtype=np.int8)
    covered[train] += 1
    covered[test] += 1
    assert np.all(covered == 1)  # a partition of all frames
    ref_train, ref_test = reference_split(24, 26, 4096)
    assert np.array_equal(test, np.sort(np.asarray(ref_test, dtype=np.int64), kind="stable"))
    assert np.array_equal(train, np.sort(np.asarray(ref_train, dtype=np.int64), kind="stable"))


def test_split_fingerprint():
    _, test = prescribed_split(24, 26, 4096)
    fp = split_fingerprint(test)
    assert fp == hashlib.sha256(np.sort(test).astype("<i8").tobytes()).hexdigest()
    assert fp == split_fingerprint(test[::-1].copy())  # order-independent
    assert fp == "dc15c999a5f19af95014239145155eaf5a0ef50e96a62947b8887355fd107317"  # regression pin
    assert split_fingerprint(prescribed_split(24, 26, 4096, seed=2019)[1]) != fp


def test_split_bad_arguments():
    with pytest.raises(AmcpruneError):
        prescribed_split(0, 26, 4096)
    with pytest.raises(AmcpruneError):
        prescribed_split(24, 26, 4096, test_fraction=1.5)


def test_carve_validation_deterministic_and_per_pair():
    train, test = prescribed_split(3, 4, 50)
    tr1, val1 = carve_validation(train, 50, 0.2, val_seed=1)
    tr2, val2 = carve_validation(train, 50, 0.2, val_seed=1)
    tr3, val3 = carve_validation(train, 50, 0.2, val_seed=2)
    assert np.array_equal(val1, val2) and np.array_equal(tr1, tr2)
    assert not np.array_equal(val1, val3)
    assert np.array_equal(np.union1d(tr1, val1), train)
    assert np.intersect1d(tr1, val1).size == 0
    assert np.intersect1d(val1, test).size == 0
    # 45 train frames per pair -> 9 validation frames from every pair
    assert np.all(np.bincount(val1 // 50, minlength=12) == 9)
    assert carve_validation(train, 50, 0.0)[1].size == 0
    with pytest.raises(AmcpruneError):
        carve_validation(train, 50, 1.0)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "small.h5"
    return layout.write_layout(path, n_classes=3, snrs=(-4, -2, 0, 2), frames_per_pair=40, frame_length=16)


def _rf(path):
    return RadioMLFile(path, frame_length=16)


def test_load_splits_plain(small_file):
    rf = _rf(small_file)
    s = load_splits(rf)
    train, test = prescribed_split(3, 4, 40)
    assert np.array_equal(s.train, train) and np.array_equal(s.test, test) and s.val.size == 0
    assert s.test_sha256 == split_fingerprint(test)
    assert s.sizes() == {"train": train.size, "val": 0, "test": test.size}


def test_filters_after_split(small_file):
    rf = _rf(small_file)
    full_train, full_test = prescribed_split(3, 4, 40)
    s = load_splits(rf, snr_min=-2, snr_max=0, classes=["class0", 2])
    assert s.train.size > 0
    # exactly the prescribed train frames that pass the filter: no reshuffle
    snr = rf.snrs_of(full_train)
    cls = rf.labels_of(full_train)
    expected = full_train[(snr >= -2) & (snr <= 0) & np.isin(cls, [0, 2])]
    assert np.array_equal(s.train, expected)
    # test is the whole prescribed test split unless asked
    assert np.array_equal(s.test, full_test)
    assert np.intersect1d(s.train, full_test).size == 0
    s2 = load_splits(rf, snr_min=-2, filter_test=True)
    assert np.all(rf.snrs_of(s2.test) >= -2)
    assert np.array_equal(s2.test, full_test[rf.snrs_of(full_test) >= -2])
    assert s2.test_sha256 == split_fingerprint(full_test)
    # skipping loop iterations (the wrong way to filter) would give another split
    rng = np.random.RandomState(2018)
    wrong_test = []
    for mod in range(3):
        for snr_idx in range(1, 4):  # SNR -4 dB skipped
            idx = np.arange((mod * 4 + snr_idx) * 40, (mod * 4 + snr_idx + 1) * 40)
            rng.shuffle(idx)
            wrong_test.extend(idx[:4])
    assert not np.array_equal(np.sort(wrong_test), s2.test)


def test_val_from_train_only(small_file):
    rf = _rf(small_file)
    full_train, full_test = prescribed_split(3, 4, 40)
    s = load_splits(rf, val_fraction=0.25, val_seed=3, snr_min=0)
    assert s.val.size > 0
    assert np.intersect1d(s.val, s.train).size == 0
    assert np.intersect1d(s.val, s.test).size == 0
    assert np.all(np.isin(s.val, full_train))
    assert np.all(rf.snrs_of(s.val) >= 0) and np.all(rf.snrs_of(s.train) >= 0)
    # the carve does not depend on the filter
    s_all = load_splits(rf, val_fraction=0.25, val_seed=3)
    assert np.array_equal(s.val, s_all.val[rf.snrs_of(s_all.val) >= 0])
    assert np.array_equal(load_splits(rf, val_fraction=0.25, val_seed=3).val, s_all.val)


def test_load_splits_errors(small_file):
    rf = _rf(small_file)
    with pytest.raises(AmcpruneError, match="unknown class 'QPSK'"):
        load_splits(rf, classes=["QPSK"])
    with pytest.raises(AmcpruneError, match="no training frames"):
        load_splits(rf, snr_min=10)
    with pytest.raises(AmcpruneError, match="snr_min"):
        load_splits(rf, snr_min=2, snr_max=0)
