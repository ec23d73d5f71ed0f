"""``amcprune evaluate``: bad options, outputs never replaced silently, and files that are not checkpoints."""

from __future__ import annotations

import importlib.util
import pickle
import shutil
from pathlib import Path

import h5py
import pytest
import torch

from amcprune.cli.main import main
from amcprune.data.radioml import load_splits
from amcprune.models import build_model
from amcprune.utils.checkpoint import model_state, save_checkpoint

_spec = importlib.util.spec_from_file_location("eval_cli_helpers", Path(__file__).parents[1] / "train" / "train_helpers.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-cli")
    data = helpers.make_tiny_h5(root / "tiny.h5")
    torch.manual_seed(0)
    spec = helpers.tiny_spec()
    model = build_model(spec)
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 2, 1024) * 4 - 2)
    ckpt = root / "model.pt"
    save_checkpoint(ckpt, {"spec": spec.model_dump(mode="json"), **model_state(model.eval())})
    return ckpt, data


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def _evaluate(ckpt, data, *extra):
    return main(["evaluate", str(ckpt), "--data", str(data), "--device", "cpu", "-q", *extra])


@pytest.mark.parametrize("args, words", [
    (["--batch-size", "0"], "--batch-size"),
    (["--limit", "-1"], "--limit"),
    (["--limit", "0"], "--limit"),
    (["--snr", "99"], "99 dB"),  # used to be ignored silently
])
def test_bad_options_are_one_line_errors(setup, capsys, args, words):
    ckpt, data = setup
    assert _evaluate(ckpt, data, *args) == 2
    assert words in _error(capsys)


def test_snr_error_names_the_available_snrs(setup, capsys):
    ckpt, data = setup
    assert _evaluate(ckpt, data, "--snr", "99") == 2
    assert "SNRs: 0, 10" in _error(capsys)
    assert _evaluate(ckpt, data, "--snr", "10") == 0


def test_out_is_never_replaced_without_force(setup, tmp_path, capsys):
    ckpt, data = setup
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    assert _evaluate(ckpt, data, "--out", str(a_file)) == 2  # used to be a traceback
    assert "not a directory" in _error(capsys) and a_file.read_text() == "mine"
    out = tmp_path / "ev"
    assert _evaluate(ckpt, data, "--out", str(out)) == 0
    before = (out / "eval.json").read_text()
    (out / "eval.json").write_text("edited")
    capsys.readouterr()
    assert _evaluate(ckpt, data, "--out", str(out)) == 2
    assert "already holds an evaluation" in _error(capsys) and (out / "eval.json").read_text() == "edited"
    assert _evaluate(ckpt, data, "--out", str(out), "--force") == 0
    assert (out / "eval.json").read_text() == before


def test_labels_that_are_not_one_hot_are_refused(setup, tmp_path, capsys):
    ckpt, data = setup
    bad = tmp_path / "bad.h5"
    shutil.copy(data, bad)
    train_frame = int(load_splits(bad).train[0])  # evaluate reads only the test split, train reads all
    with h5py.File(bad, "r+") as f:
        f["Y"][train_frame] = 1
    assert _evaluate(ckpt, bad) == 2
    assert "not one-hot" in _error(capsys)


def test_checkpoint_with_nan_weights_is_refused(setup, tmp_path, capsys):
    ckpt, data = setup
    obj = torch.load(ckpt, weights_only=True)
    key = next(k for k, v in obj["model"].items() if k.endswith("weight") and v.ndim == 3)
    obj["model"][key][0, 0, 0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(obj, bad)
    assert _evaluate(bad, data) == 2
    assert "non-finite weights" in _error(capsys)


def test_an_onnx_file_is_named_as_such(setup, tmp_path, capsys):
    ckpt, data = setup
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(onnx_path)]) == 0
    capsys.readouterr()
    renamed = tmp_path / "m.bin"  # the suffix must not be what decides it
    shutil.copy(onnx_path, renamed)
    for path in (onnx_path, renamed):
        assert _evaluate(path, data) == 2
        err = _error(capsys)
        assert "is an ONNX file" in err and "may run code" not in err


def test_a_foreign_pickle_gives_one_line_without_warnings(setup, tmp_path, capsys):
    ckpt, data = setup
    path = tmp_path / "p4.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert _evaluate(path, data) == 2
    _error(capsys)  # torch's pickle-protocol UserWarning used to precede the error line
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    assert _evaluate(text, data) == 2  # used to be a KeyError traceback
    assert "not a readable PyTorch checkpoint" in _error(capsys)
