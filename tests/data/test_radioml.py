import shutil

import h5py
import numpy as np
import pytest

from amcprune.data.classes import CLASSES
from amcprune.data.radioml import RadioMLFile, check_finite, data_fingerprint, iter_frames, read_frames
from amcprune.data.validate import validate_file
from amcprune.errors import AmcpruneError
from helpers import layout


SNRS = (-2, 0, 2)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """3 classes x 3 SNRs x 8 frames, frame i filled with the value i."""
    return layout.write_layout(tmp_path_factory.mktemp("rml") / "good.h5", n_classes=3, snrs=SNRS, frames_per_pair=8)


@pytest.fixture
def copy(good, tmp_path):
    dst = tmp_path / "copy.h5"
    shutil.copy(good, dst)
    return dst


def test_layout_properties(good):
    rf = RadioMLFile(good)
    assert rf.n_frames == 72
    assert rf.n_classes == 3
    assert rf.snrs_db == SNRS
    assert rf.frames_per_pair == 8
    assert rf.frame_length == 1024
    assert rf.class_names == ("class0", "class1", "class2")
    assert rf.labels_of(np.array([0, 23, 24, 71])).tolist() == [0, 0, 1, 2]
    assert rf.snrs_of(np.array([0, 8, 16, 24])).tolist() == [-2, 0, 2, -2]
    train, test = rf.prescribed_split()
    assert train.size + test.size == 72 and test.size == 9


def test_class_names_from_attribute_and_default(tmp_path):
    p = layout.write_layout(tmp_path / "a.h5", n_classes=2, snrs=(0,), frames_per_pair=4, classes_attr=["BPSK", "QPSK"])
    assert RadioMLFile(p).class_names == ("BPSK", "QPSK")
    p = layout.write_layout(tmp_path / "b.h5", n_classes=24, snrs=(0,), frames_per_pair=1, x="lazy")
    assert RadioMLFile(p).class_names == CLASSES
    p = layout.write_layout(tmp_path / "c.h5", n_classes=2, snrs=(0,), frames_per_pair=4, classes_attr=["BPSK"])
    with pytest.raises(AmcpruneError, match="lists 1 names but Y has 2 columns"):
        RadioMLFile(p)


def test_flat_z_and_small_int_y_accepted(tmp_path):
    p = layout.write_layout(tmp_path / "z.h5", n_classes=2, snrs=(4, 8), frames_per_pair=3, z_shape="flat", y_dtype="int8")
    rf = RadioMLFile(p)
    assert rf.snrs_db == (4, 8) and rf.frames_per_pair == 3
    _, y, snr = read_frames(p, [0, 11])
    assert y.tolist() == [0, 1] and snr.tolist() == [4, 8]


def _one_line(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_missing_file(tmp_path):
    p = tmp_path / "missing.h5"
    with pytest.raises(AmcpruneError, match="file not found") as e:
        RadioMLFile(p)
    _one_line(e, p)


def test_not_hdf5(tmp_path):
    p = tmp_path / "text.h5"
    p.write_text("not an hdf5 file\n")
    with pytest.raises(AmcpruneError, match="not an HDF5 file") as e:
        RadioMLFile(p)
    _one_line(e, p)
    with pytest.raises(AmcpruneError, match="not a file"):
        RadioMLFile(tmp_path)


@pytest.mark.parametrize("name", ["X", "Y", "Z"])
def test_missing_dataset(copy, name):
    with h5py.File(copy, "r+") as f:
        del f[name]
    with pytest.raises(AmcpruneError, match=f"missing dataset '{name}'") as e:
        RadioMLFile(copy)
    _one_line(e, copy)


def _replace(path, name, data):
    with h5py.File(path, "r+") as f:
        del f[name]
        f[name] = data


@pytest.mark.parametrize(
    "name,data,match",
    [
        ("X", np.zeros((72, 1024), np.float32), r"X has shape \(72, 1024\), expected \(N, L, 2\)"),
        ("X", np.zeros((72, 1024, 3), np.float32), "expected"),
        ("X", np.zeros((72, 512, 2), np.float32), "frames of 512 samples, expected 1024"),
        ("X", np.zeros((72, 1024, 2), np.int16), "X has dtype int16"),
        ("Y", np.zeros((71, 3), np.int64), r"Y has shape \(71, 3\), expected \(72, C\)"),
        ("Z", np.zeros((72, 2), np.int64), r"Z has shape \(72, 2\)"),
        ("Z", np.zeros((70, 1), np.int64), r"Z has shape \(70, 1\)"),
    ],
)
def test_inconsistent_shapes(copy, name, data, match):
    _replace(copy, name, data)
    with pytest.raises(AmcpruneError, match=match) as e:
        RadioMLFile(copy)
    _one_line(e, copy)


def test_y_not_one_hot_sampled(copy):
    with h5py.File(copy, "r+") as f:
        f["Y"][8] = [1, 1, 0]  # first frame of the second pair block
    with pytest.raises(AmcpruneError, match="Y is not one-hot: frame 8") as e:
        RadioMLFile(copy)
    _one_line(e, copy)


def test_y_not_one_hot_found_by_full_validation(copy):
    with h5py.File(copy, "r+") as f:
        f["Y"][12] = [0, 0, 2]  # inside a block: info samples only block ends
    RadioMLFile(copy)
    with pytest.raises(AmcpruneError, match="Y is not one-hot: frame 12"):
        validate_file(copy, quiet=True)
    with pytest.raises(AmcpruneError, match="Y is not one-hot: frame 12"):
        read_frames(copy, [12])


def test_y_wrong_class(copy):
    with h5py.File(copy, "r+") as f:
        f["Y"][30] = [0, 0, 1]  # frame 30 belongs to class 1
    RadioMLFile(copy)
    with pytest.raises(AmcpruneError, match="frame 30 has class 2, expected 1"):
        validate_file(copy, quiet=True)


def test_n_not_multiple(tmp_path):
    p = tmp_path / "odd.h5"
    with h5py.File(p, "w") as f:
        f["X"] = np.zeros((10, 1024, 2), np.float32)
        y = np.zeros((10, 2), np.int64)
        y[:5, 0] = 1
        y[5:, 1] = 1
        f["Y"] = y
        f["Z"] = np.array([0, 0, 0, 2, 2, 0, 0, 2, 2, 2]).reshape(-1, 1)
    with pytest.raises(AmcpruneError, match="10 frames is not a multiple of 2 classes x 2 SNRs = 4") as e:
        RadioMLFile(p)
    _one_line(e, p)


def test_snr_order(copy):
    with h5py.File(copy, "r+") as f:
        z = f["Z"][...]
        z[0:8], z[8:16] = z[8:16].copy(), z[0:8].copy()  # SNR blocks of class 0 swapped
        f["Z"][...] = z
    with pytest.raises(AmcpruneError, match=r"not ordered by class then SNR: frames 0\.\.7 \(class 0, SNR -2 dB\)"):
        RadioMLFile(copy)


def test_class_order_sampled(copy):
    with h5py.File(copy, "r+") as f:
        y = f["Y"][...]
        y[0:24], y[24:48] = y[24:48].copy(), y[0:24].copy()
        f["Y"][...] = y
    with pytest.raises(AmcpruneError, match="frame 0 has class 1, expected 0"):
        RadioMLFile(copy)


def test_read_frames_values(good):
    idx = np.array([5, 0, 71, 5, 40])
    X, y, snr = read_frames(good, idx, quiet=True)
    assert X.dtype == np.float32 and X.shape == (5, 1024, 2)
    assert y.dtype == np.int64 and snr.dtype == np.int64
    assert np.array_equal(X[:, 0, 0], idx.astype(np.float32))
    assert np.all(X == X[:, :1, :1])
    assert y.tolist() == [0, 0, 2, 0, 1]
    assert snr.tolist() == [-2, -2, 2, -2, 2]


def test_read_frames_dense_and_sparse_paths(tmp_path):
    p = layout.write_layout(tmp_path / "big.h5", n_classes=2, snrs=(0,), frames_per_pair=600, frame_length=1024)
    rf = RadioMLFile(p)
    rng = np.random.default_rng(0)
    for idx in (np.arange(1200), np.sort(rng.choice(1200, 30, replace=False)), np.array([599, 600])):
        X, y, snr = read_frames(rf, idx, quiet=True)
        assert np.array_equal(X[:, 3, 1], idx.astype(np.float32))
        assert np.array_equal(y, idx // 600)
    X, y, snr = read_frames(rf, np.array([], dtype=np.int64))
    assert X.shape == (0, 1024, 2) and y.shape == (0,)


def test_iter_frames_chunks(good):
    idx = np.array([70, 3, 3, 40, 9, 0])
    chunks = list(iter_frames(good, idx, chunk_frames=2, quiet=True))
    assert [c[0].tolist() for c in chunks] == [[0, 3], [9, 40], [70]]
    X = np.concatenate([c[1] for c in chunks])
    assert np.array_equal(X[:, 0, 0], np.array([0, 3, 9, 40, 70], np.float32))
    assert np.concatenate([c[2] for c in chunks]).tolist() == [0, 0, 0, 1, 2]


def test_read_frames_bad_indices(good):
    with pytest.raises(AmcpruneError, match="frame index 72 out of range"):
        read_frames(good, [0, 72])
    with pytest.raises(AmcpruneError, match="integers"):
        read_frames(good, [0.5])


def test_nan_inf_reported_with_count_and_indices(copy):
    with h5py.File(copy, "r+") as f:
        f["X"][3, 10, 0] = np.nan
        f["X"][50, 0, 1] = np.inf
        f["X"][51, 1023, 1] = -np.inf
    msg_re = r"3 frame\(s\) contain NaN or Inf \(frame indices: 3, 50, 51\)"
    with pytest.raises(AmcpruneError, match=msg_re) as e:
        read_frames(copy, np.arange(72), quiet=True)
    _one_line(e, copy)
    with pytest.raises(AmcpruneError, match=r"1 frame\(s\) contain NaN or Inf \(frame indices: 50\)"):
        read_frames(copy, [50, 60], quiet=True)
    X, _, _ = read_frames(copy, [4, 60], quiet=True)  # clean frames still read
    assert X.shape[0] == 2
    with pytest.raises(AmcpruneError, match=msg_re):
        check_finite(copy, quiet=True)
    with pytest.raises(AmcpruneError, match=r"1 frame\(s\)"):
        check_finite(copy, [3, 4], quiet=True)
    assert check_finite(copy, [4, 5], quiet=True) == 2
    with pytest.raises(AmcpruneError, match=msg_re):
        validate_file(copy, full=True, quiet=True)


def test_many_bad_frames_shows_first_few(copy):
    with h5py.File(copy, "r+") as f:
        f["X"][10:30, 0, 0] = np.nan
    with pytest.raises(AmcpruneError, match=r"20 frame\(s\) .*indices: 10, 11, 12, 13, 14, \.\.\.\)"):
        check_finite(copy, quiet=True)


def test_validate_ok(good):
    report = validate_file(good, quiet=True)
    assert report.n_frames == 72
    assert any(line.startswith("labels:") for line in report.checks)
    assert any("sampled frames" in line for line in report.checks)
    report = validate_file(good, full=True, quiet=True)
    assert any("all 72 frames of X free of NaN/Inf" in line for line in report.checks)


def test_data_fingerprint(good, copy, tmp_path):
    fp = data_fingerprint(good)
    assert len(fp) == 64
    assert data_fingerprint(copy) == fp  # name and mtime do not matter
    with h5py.File(copy, "r+") as f:
        f["X"][0, 0, 0] = 123.0
    assert data_fingerprint(copy) != fp
    other = layout.write_layout(tmp_path / "o.h5", n_classes=3, snrs=SNRS, frames_per_pair=8, classes_attr=["a", "b", "c"])
    assert data_fingerprint(other) != fp


def test_x_is_never_read_whole(good, monkeypatch):
    """RadioMLFile and data_fingerprint read only a sample of X (here: no full-X slice at all)."""
    seen = []
    orig = h5py.Dataset.__getitem__

    def spy(self, key):
        if self.name == "/X":
            seen.append(key)
            assert key is not Ellipsis and key != slice(None)
        return orig(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    RadioMLFile(good)
    assert seen == []
    data_fingerprint(good)
    assert seen and all(isinstance(k, slice) and k.stop - k.start <= 8 for k in seen)


def test_repeated_reads_reuse_the_validation(tmp_path, monkeypatch):
    p = layout.write_layout(tmp_path / "cache.h5", n_classes=2, snrs=(0,), frames_per_pair=4)
    calls = []
    orig = RadioMLFile._check
    monkeypatch.setattr(RadioMLFile, "_check", lambda self, f, n: (calls.append(1), orig(self, f, n))[1])
    for chunk in ([0, 1], [2, 3], [4]):
        read_frames(p, chunk, quiet=True)
    assert len(calls) == 1
    p.unlink()
    with pytest.raises(AmcpruneError, match="file not found"):
        read_frames(p, [0])
