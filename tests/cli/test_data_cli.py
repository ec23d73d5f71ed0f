import json
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import h5py
import numpy as np
import pytest

from amcprune.cli.main import main
from helpers import layout
from amcprune.data.split import prescribed_split, split_fingerprint




@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return layout.write_layout(
        tmp_path_factory.mktemp("cli") / "good.h5", n_classes=2, snrs=(0, 2, 4), frames_per_pair=20,
        classes_attr=["BPSK", "QPSK"],
    )


@pytest.fixture
def copy(good, tmp_path):
    dst = tmp_path / "copy.h5"
    shutil.copy(good, dst)
    return dst


def test_info_small(good, capsys):
    assert main(["data", "info", str(good)]) == 0
    out = capsys.readouterr().out.splitlines()
    _, test = prescribed_split(2, 3, 20)
    assert "frames: 120" in out
    assert "classes (2): BPSK, QPSK" in out
    assert "SNRs: 0..4 dB step 2 (3 values)" in out
    assert "frames per pair: 20" in out
    assert "train frames: 108" in out
    assert "test frames: 12" in out
    assert f"test-split sha256: {split_fingerprint(test)}" in out


def test_info_full_size_layout(tmp_path, capsys, monkeypatch):
    """The real dataset's layout (X allocated, never written): info must not read X beyond a small sample
    (the fingerprint's); counted in frames read, not in seconds, so that a busy machine cannot fail it."""
    import h5py

    path = layout.full_size_layout(tmp_path / "full.h5")
    frames_read = []
    original = h5py.Dataset.__getitem__

    def counting(self, args, **kwargs):
        out = original(self, args, **kwargs)
        if self.name == "/X":
            frames_read.append(out.shape[0] if getattr(out, "ndim", 0) == 3 else 1)
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    assert main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "frames: 2555904" in out
    assert "frames per pair: 4096" in out
    assert "SNRs: -20..30 dB step 2 (26 values)" in out
    assert "classes (24): OOK, 4ASK, 8ASK, BPSK, QPSK, 8PSK, 16PSK, 32PSK, 16APSK, 32APSK, 64APSK, 128APSK, " \
           "16QAM, 32QAM, 64QAM, 128QAM, 256QAM, AM-SSB-WC, AM-SSB-SC, AM-DSB-WC, AM-DSB-SC, FM, GMSK, OQPSK" in out
    assert "train frames: 2300064" in out
    assert "test frames: 255840" in out
    assert "test-split sha256: dc15c999a5f19af95014239145155eaf5a0ef50e96a62947b8887355fd107317" in out
    assert sum(frames_read) <= 2555904 // 1000, sum(frames_read)  # a sample (0.1 % at most), never the 21 GB


def test_validate_ok(good, capsys):
    assert main(["data", "validate", str(good), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ok  labels:" in out and out.rstrip().endswith("valid")
    assert main(["data", "validate", str(good), "--full", "--quiet"]) == 0
    assert "all 120 frames of X free of NaN/Inf" in capsys.readouterr().out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def _drop(path, name):
    with h5py.File(path, "r+") as f:
        del f[name]


def _replace(path, name, data):
    with h5py.File(path, "r+") as f:
        del f[name]
        f[name] = data


def _set(path, name, key, value):
    with h5py.File(path, "r+") as f:
        f[name][key] = value


def _not_multiple(path):
    with h5py.File(path, "r+") as f:
        for name in ("X", "Y", "Z"):
            data = f[name][:-1]
            del f[name]
            f[name] = data


BAD_CASES = {
    "missing dataset": (lambda p: _drop(p, "Y"), "missing dataset 'Y'"),
    "inconsistent shapes": (lambda p: _replace(p, "Z", np.zeros((7, 1), np.int64)), "Z has shape (7, 1), expected (120, 1)"),
    "x frame length": (lambda p: _replace(p, "X", np.zeros((120, 128, 2), np.float32)), "frames of 128 samples, expected 1024"),
    "y not one-hot": (lambda p: _set(p, "Y", 20, [1, 1]), "Y is not one-hot: frame 20"),
    "n not a multiple": (_not_multiple, "119 frames is not a multiple of 2 classes x 3 SNRs = 6"),
}


@pytest.mark.parametrize("command", ["info", "validate"])
@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_inputs(copy, capsys, command, case):
    corrupt, message = BAD_CASES[case]
    corrupt(copy)
    assert main(["data", command, str(copy), *(["--quiet"] if command == "validate" else [])]) == 2
    line = _error_line(capsys)
    assert str(copy) in line and message in line


def test_missing_and_not_hdf5(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5: file not found" in _error_line(capsys)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    assert main(["data", "validate", str(text)]) == 2
    assert "notes.txt: not an HDF5 file" in _error_line(capsys)


def test_nan_inf(copy, capsys):
    _set(copy, "X", (7, 0, 0), np.nan)
    _set(copy, "X", (100, 5, 1), np.inf)
    assert main(["data", "info", str(copy)]) == 0  # info does not read X frames beyond a sample
    capsys.readouterr()
    assert main(["data", "validate", str(copy), "--full", "--quiet"]) == 2
    line = _error_line(capsys)
    assert "2 frame(s) contain NaN or Inf (frame indices: 7, 100)" in line


def test_nan_in_sampled_frame_found_without_full(copy, capsys):
    _set(copy, "X", (19, 0, 0), np.inf)  # last frame of the first pair block
    assert main(["data", "validate", str(copy), "--quiet"]) == 2
    assert "1 frame(s) contain NaN or Inf (frame indices: 19)" in _error_line(capsys)


def test_subprocess_missing_file_exit_code(tmp_path):
    exe = Path(sys.executable).parent / "amcprune"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "amcprune"]
    proc = subprocess.run([*cmd, "data", "info", str(tmp_path / "missing.h5")], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing.h5: file not found" in lines[0]
    assert "Traceback" not in proc.stderr


def _fake_synth(monkeypatch, calls):
    """A stand-in for amcprune.data.synth with the agreed API, writing a tiny layout file."""
    module = types.ModuleType("amcprune.data.synth")
    module.PRESETS = {"tiny": {}, "quick": {}, "standard": {}, "full": {}}

    def synth_config(preset, **overrides):
        calls.append(("config", preset, overrides))
        return {"preset": preset, **overrides}

    def write_synthetic(config, out_path, workers=1, quiet=False, overwrite=True):
        calls.append(("write", config, Path(out_path), workers, quiet))
        names = config.get("classes", ["BPSK", "QPSK"])
        return layout.write_layout(out_path, n_classes=len(names), snrs=(0, 2), frames_per_pair=4, classes_attr=names)

    module.synth_config = synth_config
    module.write_synthetic = write_synthetic
    module.LEGACY_V1 = {"cfo_static": True, "ssb_sideband": "upper"}
    monkeypatch.setitem(sys.modules, "amcprune.data.synth", module)
    import amcprune.data

    monkeypatch.setattr(amcprune.data, "synth", module, raising=False)


def test_synth_passes_only_given_overrides(tmp_path, monkeypatch, capsys):
    calls = []
    _fake_synth(monkeypatch, calls)
    out = tmp_path / "s.h5"
    assert main(["data", "synth", "--out", str(out), "--quiet"]) == 0
    assert calls[0] == ("config", "quick", {})
    assert calls[1][2] == out and calls[1][3] >= 1 and calls[1][4] is True
    calls.clear()
    args = ["data", "synth", "--preset", "tiny", "--out", str(out), "--seed", "7", "--classes", "BPSK, QPSK,8PSK",
            "--snr-min", "-20", "--snr-max", "4", "--snr-step", "4", "--frames-per-pair", "3", "--workers", "2", "--force"]
    assert main(args) == 0
    assert calls[0] == ("config", "tiny", {"seed": 7, "classes": ["BPSK", "QPSK", "8PSK"], "snr_min": -20,
                                          "snr_max": 4, "snr_step": 4, "frames_per_pair": 3})
    assert calls[1][3] == 2 and calls[1][4] is False
    stdout = capsys.readouterr().out
    assert "frames: 24" in stdout and "classes (3): BPSK, QPSK, 8PSK" in stdout
    assert "size:" in stdout and "frames/s" in stdout


def test_synth_set_and_legacy_options(tmp_path, monkeypatch, capsys):
    calls = []
    _fake_synth(monkeypatch, calls)
    out = tmp_path / "s.h5"
    args = ["data", "synth", "--out", str(out), "--quiet", "--set", "cfo_static=false", "--set", "snr-definition=es_n0",
            "--set", "samples_per_symbol=[4, 8]", "--set", "cfo_max=0.001", "--legacy-v1", "--seed", "3"]
    assert main(args) == 0
    # JSON values where they parse, strings otherwise; --set wins over --legacy-v1, dashes become underscores
    assert calls[0] == ("config", "quick", {"cfo_static": False, "ssb_sideband": "upper", "snr_definition": "es_n0",
                                           "samples_per_symbol": [4, 8], "cfo_max": 0.001, "seed": 3})
    for bad, needle in ((["--set", "cfo_static"], "KEY=VALUE"), (["--set", "seed=1", "--seed", "2"], "--seed"),
                        (["--set", "agc=power", "--set", "agc=peak"], "twice")):
        assert main(["data", "synth", "--out", str(tmp_path / "b.h5"), "--quiet", *bad]) == 2
        assert needle in _error_line(capsys)


def test_synth_set_reaches_the_real_generator(tmp_path, capsys):
    out = tmp_path / "s.h5"
    base = ["data", "synth", "--preset", "tiny", "--classes", "FM", "--frames-per-pair", "2", "--workers", "1",
            "--quiet"]
    assert main([*base, "--out", str(out), "--set", "agc=peak", "--set", "fm_deviation_max=0.02"]) == 0
    with h5py.File(out) as f:
        cfg = json.loads(f.attrs["amcprune_synth_config"])
        assert cfg["agc"] == "peak" and cfg["fm_deviation_max"] == 0.02
        assert np.allclose(np.abs(f["X"][:]).max(axis=(1, 2)), 1.0, atol=1e-6)
    assert main([*base, "--out", str(tmp_path / "b.h5"), "--set", "nope=1"]) == 2
    assert "nope" in _error_line(capsys)
    assert main([*base, "--out", str(tmp_path / "c.h5"), "--set", "agc=loud"]) == 2
    assert "agc" in _error_line(capsys)
    assert not (tmp_path / "b.h5").exists() and not (tmp_path / "c.h5").exists()


def test_info_shows_the_generator_version(good, tmp_path, capsys):
    from amcprune.data.synth import GENERATOR_VERSION

    assert main(["data", "info", str(good)]) == 0
    assert "generator: none recorded (not an amcprune synthetic file)" in capsys.readouterr().out.splitlines()
    out = tmp_path / "s.h5"
    assert main(["data", "synth", "--preset", "tiny", "--classes", "BPSK", "--frames-per-pair", "1", "--workers", "1",
                 "--quiet", "--out", str(out)]) == 0
    assert f"generator: {GENERATOR_VERSION}" in capsys.readouterr().out.splitlines()
    assert main(["data", "info", str(out)]) == 0
    assert f"generator: {GENERATOR_VERSION} (current)" in capsys.readouterr().out.splitlines()
    with h5py.File(out, "r+") as f:
        f.attrs["generator_version"] = "amcprune-synth-1"
    assert main(["data", "info", str(out)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("generator:")]
    assert line == [f"generator: amcprune-synth-1 (this amcprune writes {GENERATOR_VERSION}: regenerate for current data)"]


def test_synth_bad_preset_is_usage_error(tmp_path, capsys):
    assert main(["data", "synth", "--preset", "huge", "--out", str(tmp_path / "x.h5")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_synth_real_generator(tmp_path, capsys):
    synth = pytest.importorskip("amcprune.data.synth")
    if not hasattr(synth, "write_synthetic"):
        pytest.skip("amcprune.data.synth is not written yet")
    out = tmp_path / "tiny.h5"
    args = ["data", "synth", "--preset", "tiny", "--out", str(out), "--classes", "BPSK,QPSK", "--snr-min", "0",
            "--snr-max", "2", "--snr-step", "2", "--frames-per-pair", "2", "--workers", "1", "--quiet", "--seed", "1"]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert out.exists() and "frames:" in stdout
    assert main(["data", "validate", str(out), "--full", "--quiet"]) == 0


def test_synth_real_generator_bad_options(tmp_path, capsys):
    synth = pytest.importorskip("amcprune.data.synth")
    if not hasattr(synth, "write_synthetic"):
        pytest.skip("amcprune.data.synth is not written yet")
    out = tmp_path / "bad.h5"
    assert main(["data", "synth", "--preset", "tiny", "--out", str(out), "--classes", "NOPE", "--quiet"]) == 2
    assert "NOPE" in _error_line(capsys)
    assert main(["data", "synth", "--preset", "tiny", "--out", str(out), "--snr-min", "10", "--snr-max", "0"]) == 2
    _error_line(capsys)
    assert main(["data", "synth", "--out", str(out), "--workers", "0"]) == 2
    assert "--workers" in _error_line(capsys)
    assert not out.exists()


def test_synth_never_replaces_a_file_without_force(good, tmp_path, capsys):
    # The reported case: `cp tiny.h5 x.h5; amcprune data synth --preset tiny --seed 5 --out x.h5` replaced it.
    out = tmp_path / "x.h5"
    shutil.copy(good, out)
    before = out.read_bytes()
    assert main(["data", "synth", "--preset", "tiny", "--seed", "5", "--out", str(out), "--workers", "1", "--quiet"]) == 2
    assert "already exists" in _error_line(capsys) and out.read_bytes() == before
    args = ["data", "synth", "--preset", "tiny", "--seed", "5", "--out", str(out), "--workers", "1", "--quiet",
            "--classes", "BPSK,QPSK", "--frames-per-pair", "2", "--force"]
    assert main(args) == 0
    assert out.read_bytes() != before


def test_synth_killed_by_sigterm_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "big.h5"
    cmd = [sys.executable, "-m", "amcprune", "data", "synth", "--preset", "quick", "--frames-per-pair", "400",
           "--out", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".big.h5.*.tmp")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert list(tmp_path.glob(".big.h5.*.tmp")), "the synth never started writing"
    time.sleep(0.5)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, (proc.returncode, err)
    assert list(tmp_path.iterdir()) == []


def test_synth_sweeps_what_a_sigkill_left(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".old.h5.amcprune-{int(dead.stdout)}-x1y2.tmp"
    stale.write_bytes(b"\0" * 1024)
    out = tmp_path / "new.h5"
    args = ["data", "synth", "--preset", "tiny", "--out", str(out), "--workers", "1", "--quiet",
            "--classes", "BPSK", "--frames-per-pair", "1"]
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.h5"]


def test_fingerprint_is_named_for_what_it_samples(good, copy, capsys):
    # The reported case: a NaN frame outside the sample left the "data fingerprint" unchanged.
    with h5py.File(copy, "r+") as f:
        f["X"][5, 0, 0] = np.nan  # frame 5: neither the first nor the middle frame of its pair block
    outputs = []
    for path in (good, copy):
        assert main(["data", "info", str(path), "--full", "--quiet"]) == 0
        lines = capsys.readouterr().out.splitlines()
        outputs.append({line.split(": ")[0]: line.split(": ")[1] for line in lines if "fingerprint" in line or "sha256 (" in line})
    sampled = "sampled data fingerprint (layout, Z, 2 frames per class x SNR)"
    full = "content sha256 (all of X, Y, Z)"
    assert outputs[0][sampled] == outputs[1][sampled]  # says what it is: a sample
    assert outputs[0][full] != outputs[1][full]  # and --full tells the two files apart
