"""`amcprune train` and `amcprune evaluate` on tiny data, through `amcprune.cli.main.main`."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from amcprune.cli.main import main
from amcprune.utils.atomic import read_jsonl
from amcprune.utils.rundir import release_run_dir

_spec = importlib.util.spec_from_file_location("train_cli_helpers", Path(__file__).parents[1] / "train" / "train_helpers.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

TINY = ["--filters", "4", "--dense", "8", "--bits", "4", "--batch-size", "64", "--val-fraction", "0.2", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return helpers.make_tiny_h5(tmp_path_factory.mktemp("cli") / "tiny.h5")


def test_train_and_evaluate(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "test accuracy" in out
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "best.pt").is_file()
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2]

    # Refuses to overwrite; --resume extends; --force restarts.
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "2", *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--quiet"]) == 0
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
    assert main(["train", "--out", str(run), "--resume", "--lr", "0.5", "--quiet"]) == 2
    assert "lr" in capsys.readouterr().err

    ev = tmp_path / "ev"
    assert main(["evaluate", str(run), "--data", str(tiny), "--out", str(ev), "--snr", "0", "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "10 dB" in out
    js = json.loads((ev / "eval.json").read_text())
    assert js["split"] == "test" and "0" in js["confusion_by_snr"]
    assert (ev / "confusion_snr0.png").is_file() and (ev / "acc_vs_snr.png").is_file()
    assert main(["evaluate", str(run / "checkpoints" / "last.pt"), "--split", "val", "--device", "cpu", "-q"]) == 0


def test_bad_inputs_are_one_line_errors(tiny, tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, evil)
    assert main(["evaluate", str(evil), "--data", str(tiny), "-q"]) == 2
    assert main(["train", "--data", str(tiny), "--out", str(tmp_path / "r"), "--init-from", str(evil), *TINY]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "Traceback" not in err
    assert not marker.exists()
    assert main(["train", "--data", str(tiny), "--out", str(tmp_path / "r2"), "--scheduler", "step", *TINY]) == 2
    assert "scheduler" in capsys.readouterr().err


def test_sigkill_then_resume(tiny, tmp_path):
    run = tmp_path / "run"
    epochs = 12
    cmd = [sys.executable, "-m", "amcprune", "train", "--data", str(tiny), "--out", str(run), "--epochs", str(epochs), *TINY]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(read_jsonl(run / "metrics.jsonl")) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"finished or failed before the kill: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")]
    assert 2 <= len(done) < epochs
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_force_keeps_files_amcprune_did_not_write(tiny, tmp_path, capsys):
    # The reported case: any config.yaml made --force delete the whole checkpoints/ folder.
    k = tmp_path / "k"
    (k / "checkpoints").mkdir(parents=True)
    (k / "config.yaml").write_text("x")
    (k / "checkpoints" / "important.pt").write_text("y")
    assert main(["train", "--data", str(tiny), "--out", str(k), "--epochs", "1", *TINY, "--force"]) == 2
    assert "no record of the files amcprune wrote" in _one_error(capsys)
    assert (k / "checkpoints" / "important.pt").read_text() == "y"
    # A real run: --force replaces its files and keeps a file the user added among them.
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "1", *TINY]) == 0
    (run / "checkpoints" / "important.pt").write_text("mine")
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "1", *TINY, "--force"]) == 0
    assert (run / "checkpoints" / "important.pt").read_text() == "mine"
    assert (run / "checkpoints" / "best.pt").is_file() and len(read_jsonl(run / "metrics.jsonl")) == 1


def test_a_run_in_use_is_refused_with_the_holder_named(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "1", *TINY]) == 0
    release_run_dir(run)  # this test process stands in for the finished first run
    code = (
        "import time; from pathlib import Path; from amcprune.utils.rundir import lock_run_dir; "
        f"lock_run_dir(Path({str(run)!r})); print('locked', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 2
        assert f"in use by process {holder.pid}" in _one_error(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0  # no stale lock
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2]


@pytest.mark.parametrize("args, words", [
    (["--epochs", "0"], "--epochs"),  # used to make a run without a checkpoint
    (["--float", "--bits", "4"], "--float"),  # used to train a float model, ignoring --bits
])
def test_contradictory_options_are_refused(tiny, tmp_path, capsys, args, words):
    run = tmp_path / "run"
    i = TINY.index("--bits")
    base = TINY[:i] + TINY[i + 2 :]
    assert main(["train", "--data", str(tiny), "--out", str(run), *base, "--epochs", "1", *args]) == 2
    assert words in _one_error(capsys)
    assert not run.exists()


def test_checkpoint_with_nan_weights_cannot_start_a_run(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "1", *TINY]) == 0
    obj = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    key = next(k for k, v in obj["model"].items() if k.endswith("weight"))
    obj["model"][key].fill_(float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(obj, bad)
    capsys.readouterr()
    assert main(["train", "--data", str(tiny), "--out", str(tmp_path / "r2"), "--epochs", "1", *TINY, "--init-from", str(bad)]) == 2
    assert "non-finite weights" in _one_error(capsys)


def test_bits_and_weight_bits_together_are_refused(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "1", *TINY, "--weight-bits", "6"]) == 2
    assert "--bits" in _one_error(capsys) and not run.exists()


def test_init_from_a_checkpoint_keeps_its_spec_unless_options_change_it(tiny, tmp_path, capsys):
    """A 4-bit checkpoint used to start a run without model options used to become an 8-bit model silently."""
    first = tmp_path / "first"
    assert main(["train", "--data", str(tiny), "--out", str(first), "--epochs", "1", *TINY, "--input-bits", "6"]) == 0
    plain = ["--batch-size", "64", "--val-fraction", "0.2", "--device", "cpu", "--quiet", "--epochs", "1"]
    best = first / "checkpoints" / "best.pt"
    second = tmp_path / "second"
    assert main(["train", "--data", str(tiny), "--out", str(second), *plain, "--init-from", str(best)]) == 0
    spec = yaml.safe_load((second / "config.yaml").read_text())["model"]
    assert spec == yaml.safe_load((first / "config.yaml").read_text())["model"]
    assert (spec["weight_bits"], spec["act_bits"], spec["input_bits"], spec["conv_filters"]) == (4, 4, 6, 4)
    third = tmp_path / "third"
    assert main(["train", "--data", str(tiny), "--out", str(third), *plain, "--init-from", str(best), "--bits", "3"]) == 0
    spec = yaml.safe_load((third / "config.yaml").read_text())["model"]
    assert (spec["weight_bits"], spec["act_bits"], spec["input_bits"]) == (3, 3, 6)  # a deliberate change
    capsys.readouterr()
