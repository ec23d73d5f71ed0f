"""``amcprune sweep``: one error line and exit 2 for bad input; --dry-run lists the trials."""

from __future__ import annotations

import sys

import pytest

from amcprune.cli.main import main


def write(tmp_path, text: str):
    p = tmp_path / "sweep.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, match", [
    ("base: {data: {synth: tiny}\n", "not valid YAML at line 2"),
    ("- just\n- a list\n", "expected a mapping"),
    ("base: {data: {synth: tiny}}\nbitz: [4]\n", "bitz: Extra inputs are not permitted"),
    ("base: {data: {synth: tiny}}\ngrid: {train.lrr: [1]}\n", "unknown train field 'lrr'"),
    ("base: {data: {synth: tiny}, modle: {}}\n", "base: modle"),
    ("base: {data: {synth: tiny}}\nexecutor: slurm\n", "executor"),
])
def test_bad_sweep_yaml_is_one_error_line(tmp_path, capsys, text, match):
    assert main(["sweep", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err and "Traceback" not in err


def test_missing_sweep_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.yaml")]) == 2
    assert "no such sweep file" in capsys.readouterr().err


def test_ray_missing_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    p = write(tmp_path, "base: {data: {synth: tiny}}\nbits: [4]\n")
    assert main(["sweep", str(p), "--executor", "ray", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --executor ray needs Ray, which is not installed: pip install 'amcprune[ray]'"
    assert not (tmp_path / "o" / "trials").exists()


def test_dry_run_lists_trials(tmp_path, capsys):
    p = write(tmp_path, "base: {data: {synth: tiny}}\nbits: [4, 1]\nseeds: [0, 1]\n")
    assert main(["sweep", str(p), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].endswith("bits-4_seed-0  new") and "invalid: " in lines[2]
