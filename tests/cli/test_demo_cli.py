"""``amcprune demo`` end to end with the hidden test preset, resuming, and its errors."""

from __future__ import annotations

import pytest

from amcprune.cli.main import main


def test_demo_tiny_end_to_end_and_rerun(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo-out"
    assert main(["demo", "--out", str(out), "--preset", "tiny", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "demo finished: demo-tiny" in text
    for key in ("accuracy (test)", "sparsity", "measured compression", "bops", "weight bits", "score", "report"):
        assert key in text
    assert str(out / "report.html") in text
    assert (out / "report.html").is_file() and (out / "prune" / "final.onnx").is_file()
    assert len(list((out / "data").glob("synth-tiny.h5"))) == 1

    def boom(*a, **k):
        raise AssertionError("finished stages must not run again")

    monkeypatch.setattr("amcprune.pipeline.trial.train_run", boom)
    monkeypatch.setattr("amcprune.pipeline.trial.write_synthetic", boom)
    assert main(["demo", "--out", str(out), "--preset", "tiny", "--quiet"]) == 0
    assert "demo finished" in capsys.readouterr().out

    # Another config in the same directory is refused with one line.
    assert main(["demo", "--out", str(out), "--preset", "tiny", "--quiet", "--set", "seed=3"]) == 2
    assert "different config" in capsys.readouterr().err


@pytest.mark.parametrize("args, match", [
    (["--preset", "huge"], "unknown demo preset 'huge' (choose from quick, gpu)"),
    (["--set", "nope=1"], "unknown trial field 'nope'"),
    (["--set", "bits"], "expected KEY=VALUE"),
    (["--data", "/nonexistent.h5"], "no such data file"),
])
def test_demo_errors(tmp_path, capsys, args, match):
    assert main(["demo", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err
