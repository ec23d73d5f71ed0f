"""``amcprune cost``: JSON and text output, every kind of MODEL, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.utils import prune

from amcprune.cli.main import main
from amcprune.export import export_qonnx
from amcprune.models import ModelSpec, build_model, prunable_layers
from amcprune.utils.checkpoint import model_state, save_checkpoint

SPEC = {"arch": "vgg10", "conv_filters": 8, "dense_width": 16, "weight_bits": 4, "act_bits": 4, "input_bits": 8}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A pruned small VGG10 as a run directory, a checkpoint, a bare state dict and a QONNX file."""
    root = tmp_path_factory.mktemp("cost-cli")
    torch.manual_seed(0)
    spec = ModelSpec(**SPEC)
    model = build_model(spec)
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 2, 1024) * 4 - 2)
    model.eval()
    for _, module in prunable_layers(model):
        prune.l1_unstructured(module, "weight", amount=0.5)
    ckpt = root / "model.pt"
    save_checkpoint(ckpt, {"spec": spec.model_dump(mode="json"), **model_state(model)})
    run = root / "run"
    save_checkpoint(run / "checkpoints" / "best.pt", {"spec": spec.model_dump(mode="json"), **model_state(model)})
    bare = root / "bare.pth"
    torch.save(model_state(model)["model"], bare)
    onnx_path = root / "model.onnx"
    export_qonnx(model, onnx_path)
    return {"ckpt": ckpt, "run": run, "bare": bare, "onnx": onnx_path, "root": root}


def run_json(capsys, *argv):
    assert main(["cost", *map(str, argv), "--json"]) == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    return json.loads(out)


def test_json_keys_and_same_figures_for_every_model_kind(files, capsys):
    by_onnx = run_json(capsys, files["onnx"])
    for key in ("bops", "weight_bits", "score", "weights", "nonzero_weights", "sparsity", "per_layer", "warnings"):
        assert key in by_onnx
    assert by_onnx["weights"] == 8 * 2 * 3 + 6 * 8 * 8 * 3 + 64 * 16 + 16 * 16 + 16 * 24
    assert by_onnx["weight_bits"] == 4 * by_onnx["nonzero_weights"]
    assert by_onnx["sparsity"] >= 0.5
    assert by_onnx["warnings"] == []
    by_ckpt = run_json(capsys, files["ckpt"])
    by_run = run_json(capsys, files["run"])
    by_bare = run_json(capsys, files["bare"], "--arch", "vgg10", "--weight-bits", "4", "--act-bits", "4",
                       "--input-bits", "8", "--filters", "8", "--dense", "16")
    for other in (by_ckpt, by_run, by_bare):
        for key in ("bops", "weight_bits", "score", "weights", "nonzero_weights"):
            assert other[key] == by_onnx[key], key


def test_text_output_and_per_layer_table(files, capsys):
    assert main(["cost", str(files["ckpt"]), "--per-layer"]) == 0
    out = capsys.readouterr().out
    for needle in ("bops:", "weight bits:", "score:", "non-zero", "sparsity", "Conv_0", "MatMul_0", "Gemm_0", "SCALEDINT<4>"):
        assert needle in out


def test_baseline_file(files, capsys):
    res = run_json(capsys, files["onnx"], "--baseline", files["onnx"])
    assert res["score"] == pytest.approx(1.0)


def test_warnings_go_to_stderr_in_text_mode(tmp_path, capsys):
    torch.manual_seed(1)
    path = tmp_path / "float.onnx"
    export_qonnx(build_model(ModelSpec(arch="vgg10", quantized=False, conv_filters=4, dense_width=8)), path)
    assert main(["cost", str(path)]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "no quantizers" in captured.err
    assert "warning:" not in captured.out
    res = run_json(capsys, path)
    assert any("no quantizers" in w for w in res["warnings"])


def _one_error_line(capsys, *argv):
    assert main(["cost", *map(str, argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "Traceback" not in err
    return err


def test_bad_inputs_exit_2_with_one_line(files, tmp_path, capsys):
    text = tmp_path / "readme.txt"
    text.write_text("not a model at all\n")
    assert "ONNX" in _one_error_line(capsys, text)
    data = files["onnx"].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 3])
    _one_error_line(capsys, truncated)
    trunc_ckpt = tmp_path / "truncated.pt"
    trunc_ckpt.write_bytes(files["ckpt"].read_bytes()[:500])
    _one_error_line(capsys, trunc_ckpt)
    assert "--arch" in _one_error_line(capsys, files["bare"])
    assert "does not fit" in _one_error_line(capsys, files["bare"], "--arch", "vgg10", "--bits", "8")
    _one_error_line(capsys, tmp_path / "missing.onnx")
    _one_error_line(capsys, tmp_path)  # a directory without checkpoints


def test_bits_sets_weights_and_activations_of_a_bare_state_dict(files, capsys):
    """--bits 4 reads the w4a4 state dict with the default 8-bit input, exactly as its checkpoint (it used to set
    the input to 4 bits as well)."""
    by_ckpt = run_json(capsys, files["ckpt"])
    by_bits = run_json(capsys, files["bare"], "--arch", "vgg10", "--bits", "4", "--filters", "8", "--dense", "16")
    for key in ("bops", "weight_bits", "score"):
        assert by_bits[key] == by_ckpt[key], key
    assert "--bits" in _one_error_line(capsys, files["bare"], "--arch", "vgg10", "--bits", "4", "--weight-bits", "4")


def test_model_options_must_agree_with_the_model_s_own_spec(files, capsys):
    same = run_json(capsys, files["ckpt"], "--arch", "vgg10", "--bits", "4", "--input-bits", "8", "--filters", "8")
    assert same["bops"] == run_json(capsys, files["ckpt"])["bops"]  # options that repeat the spec change nothing
    for source in (files["ckpt"], files["run"]):
        for args, words in ((["--bits", "8"], "weight_bits 8 (it has 4)"), (["--input-bits", "4"], "input_bits 4"),
                            (["--dense", "32"], "dense_width 32"), (["--arch", "compact"], "arch compact")):
            assert words in _one_error_line(capsys, source, *args)
    assert "ONNX" in _one_error_line(capsys, files["onnx"], "--bits", "4")
