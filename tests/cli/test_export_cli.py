"""``amcprune export``: both formats, verification, and one-line errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import onnx
import pytest
import torch

import amcprune.export as export_pkg
from amcprune.cli.export import verification_frames
from amcprune.cli.main import main
from amcprune.export.verify import compare_outputs
from amcprune.models import ModelSpec, build_model
from amcprune.utils.checkpoint import load_checkpoint, model_state, save_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-cli")
    torch.manual_seed(0)
    spec = ModelSpec(arch="vgg10", conv_filters=8, dense_width=16, weight_bits=4, act_bits=4)
    model = build_model(spec)
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 2, 1024) * 4 - 2)
    path = root / "model.pt"
    save_checkpoint(path, {"spec": spec.model_dump(mode="json"), **model_state(model.eval())})
    return path


@pytest.mark.parametrize("fmt", ["qonnx", "qcdq"])
def test_export_and_verify(ckpt, tmp_path, capsys, fmt):
    out = tmp_path / f"m.{fmt}.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--format", fmt, "--verify", "--frames", "4"]) == 0
    text = capsys.readouterr().out
    assert "max abs diff" in text and "argmax agreement 1.0000" in text
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert ("Quant" in ops) == (fmt == "qonnx")


def test_export_json(ckpt, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--verify", "--frames", "3", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["passed"] and rec["n"] == 3 and rec["format"] == "qonnx" and rec["max_abs_diff"] < 1e-4


def _tiny_radioml(path, n_classes=2, frames_per_pair=4):
    """A small file in the RadioML layout: frames ordered by class, then SNR -20..30 dB."""
    snrs = list(range(-20, 32, 2))
    n = n_classes * len(snrs) * frames_per_pair
    rng = np.random.default_rng(0)
    y = np.zeros((n, n_classes), np.int64)
    y[np.arange(n), np.repeat(np.arange(n_classes), len(snrs) * frames_per_pair)] = 1
    with h5py.File(path, "w") as f:
        f["X"] = rng.normal(size=(n, 1024, 2)).astype(np.float32)
        f["Y"] = y
        f["Z"] = np.tile(np.repeat(np.array(snrs), frames_per_pair), n_classes)[:, None].astype(np.int64)
    return path


def test_verification_frames_from_test_split(tmp_path):
    data = _tiny_radioml(tmp_path / "tiny.h5")
    x = verification_frames(5, data)
    assert x.shape == (5, 2, 1024) and x.dtype == np.float32
    rnd = verification_frames(3)
    assert rnd.shape == (3, 2, 1024) and rnd.min() >= -2 and rnd.max() <= 2


def test_export_verify_with_data_file(ckpt, tmp_path, capsys):
    data = _tiny_radioml(tmp_path / "tiny.h5")
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--verify", "--frames", "3", "--data", str(data)]) == 0
    assert "test split of" in capsys.readouterr().out


def test_export_bad_inputs(ckpt, tmp_path, capsys):
    assert main(["export", str(ckpt), "--out", str(tmp_path / "x.onnx"), "--format", "tflite"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: unknown --format")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["export", str(junk), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "x.onnx").exists()


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_failed_verification_leaves_no_file(ckpt, tmp_path, capsys, monkeypatch):
    # The reported case: a failed --verify left the unverified .onnx under the output name.
    def disagreeing(model, path, frames, fmt=None, raise_on_failure=True):
        ref = np.zeros((len(frames), 24))
        ref[:, 0] = 1.0
        return compare_outputs(ref, ref[:, ::-1].copy(), fmt=fmt, output_step=0.01)

    monkeypatch.setattr(export_pkg, "verify_export", disagreeing)
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--verify", "--frames", "2"]) == 2
    assert "not written" in _error(capsys)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"the previous good export")
    assert main(["export", str(ckpt), "--out", str(out), "--verify", "--frames", "2", "--force"]) == 2
    _error(capsys)
    assert out.read_bytes() == b"the previous good export" and list(tmp_path.iterdir()) == [out]


def test_export_never_replaces_without_force(ckpt, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep")
    assert main(["export", str(ckpt), "--out", str(out)]) == 2
    assert "already exists" in _error(capsys) and out.read_bytes() == b"keep"
    assert main(["export", str(ckpt), "--out", str(out), "--force"]) == 0
    assert onnx.load(str(out)).graph.node
    # --out naming a directory used to end in a traceback
    assert main(["export", str(ckpt), "--out", str(tmp_path)]) == 2
    assert "is a directory" in _error(capsys)


def test_export_verify_zero_frames_writes_nothing(ckpt, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--verify", "--frames", "0"]) == 2
    assert "--frames" in _error(capsys) and not out.exists()


def test_random_bytes_are_not_called_onnx(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("junk.bin", "junk.onnx"):
        junk = tmp_path / name
        junk.write_bytes(b"\x11" + rng.bytes(4000))
        assert main(["export", str(junk), "--out", str(tmp_path / "x.onnx")]) == 2
        err = _error(capsys)
        assert "already an ONNX file" not in err and ("not a readable" in err or "not an ONNX" in err)
    assert not (tmp_path / "x.onnx").exists()


def test_checkpoint_with_nan_weights_is_refused(ckpt, tmp_path, capsys):
    obj = load_checkpoint(ckpt)
    key = next(k for k, v in obj["model"].items() if k.endswith("weight") and v.ndim == 3)
    obj["model"][key][0, 0, 0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(obj, bad)
    assert main(["export", str(bad), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "non-finite weights" in _error(capsys) and not (tmp_path / "x.onnx").exists()


def test_export_options_must_agree_with_the_checkpoint(ckpt, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--bits", "4", "--input-bits", "8"]) == 0  # repeats its spec
    capsys.readouterr()
    for args, words in ((["--bits", "8"], "weight_bits 8 (it has 4)"), (["--input-bits", "4"], "input_bits 4 (it has 8)")):
        other = tmp_path / "other.onnx"
        assert main(["export", str(ckpt), "--out", str(other), *args]) == 2
        assert words in _error(capsys) and not other.exists()


def test_export_of_a_512_sample_model(tmp_path, capsys):
    torch.manual_seed(0)
    spec = ModelSpec(arch="vgg10", conv_filters=4, dense_width=8, weight_bits=4, act_bits=4, input_length=512)
    model = build_model(spec)
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 2, 512) * 4 - 2)
    path = tmp_path / "m512.pt"
    save_checkpoint(path, {"spec": spec.model_dump(mode="json"), **model_state(model.eval())})
    out = tmp_path / "m512.onnx"
    assert main(["export", str(path), "--out", str(out), "--verify", "--frames", "3"]) == 0
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 2, 512]
    capsys.readouterr()
    data = _tiny_radioml(tmp_path / "tiny.h5")  # 1024-sample frames
    assert main(["export", str(path), "--out", str(tmp_path / "x.onnx"), "--verify", "--data", str(data)]) == 2
    assert "takes 512" in _error(capsys)
