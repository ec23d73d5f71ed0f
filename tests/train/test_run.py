"""train_run: run directory, resume after a kill, refusals, safe checkpoint loading."""

from __future__ import annotations

import json

import pytest
import torch

from amcprune.errors import AmcpruneError
from amcprune.train.run import train_run
from amcprune.train.trainer import Trainer
from amcprune.utils.atomic import read_jsonl
from amcprune.utils.checkpoint import load_checkpoint

from train_helpers import make_tiny_h5, tiny_config, tiny_spec


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (not even `except Exception`)."""


def _model_tensors(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def test_run_dir_format(tiny_h5, tmp_path):
    run = tmp_path / "run"
    summary = train_run(tiny_config(epochs=2), tiny_spec(), tiny_h5, run, quiet=True)
    assert (run / "config.yaml").is_file() and (run / "summary.json").is_file()
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "train_acc", "val_acc", "lr", "seconds", "samples_per_s"} <= set(rows[0])
    last = load_checkpoint(run / "checkpoints" / "last.pt")  # weights_only=True inside
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert last["epoch"] == 2 and last["metrics"] == rows and last["finished"]
    assert best["epoch"] == summary["best_epoch"]
    for key in ("spec", "model", "masks", "trainer", "data_fingerprint", "train_config"):
        assert key in last
    assert summary["epochs"] == 2 and 0 <= summary["test_acc"] <= 1
    # An existing run is not overwritten without --resume / --force.
    with pytest.raises(AmcpruneError, match="--resume"):
        train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, run, quiet=True)
    train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, run, quiet=True, force=True)
    assert len(read_jsonl(run / "metrics.jsonl")) == 1


def test_force_refuses_a_foreign_directory(tiny_h5, tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    with pytest.raises(AmcpruneError, match="does not look like"):
        train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, d, quiet=True, force=True)
    assert (d / "thesis.tex").read_text() == "precious"


def test_resume_after_kill_is_identical(tiny_h5, tmp_path, monkeypatch):
    cfg = tiny_config(epochs=3)
    full = tmp_path / "full"
    train_run(cfg, tiny_spec(), tiny_h5, full, quiet=True)

    killed = tmp_path / "killed"
    real = Trainer.train_epoch
    calls = {"n": 0}

    def dying(self, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed()  # dies in the middle of epoch 3
        return real(self, **kw)

    monkeypatch.setattr(Trainer, "train_epoch", dying)
    with pytest.raises(Killed):
        train_run(cfg, tiny_spec(), tiny_h5, killed, quiet=True)
    monkeypatch.setattr(Trainer, "train_epoch", real)
    assert [r["epoch"] for r in read_jsonl(killed / "metrics.jsonl")] == [1, 2]
    # Worst case of a kill between the checkpoint and the metrics append, plus a torn line.
    with open(killed / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 3, "train_loss": 9.9}) + "\n{\"epoch\": 4, \"trai")

    train_run(None, None, None, killed, resume=True, quiet=True)
    rows_full = read_jsonl(full / "metrics.jsonl")
    rows_killed = read_jsonl(killed / "metrics.jsonl")
    assert [r["epoch"] for r in rows_killed] == [1, 2, 3]
    for a, b in zip(rows_full, rows_killed):
        assert a["train_loss"] == b["train_loss"] and a["val_acc"] == b["val_acc"] and a["lr"] == b["lr"]
    sa, sb = _model_tensors(full), _model_tensors(killed)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # Resuming a finished run changes nothing.
    train_run(None, None, None, killed, resume=True, quiet=True)
    assert len(read_jsonl(killed / "metrics.jsonl")) == 3


def test_resume_checks_data_and_spec(tiny_h5, tmp_path):
    run = tmp_path / "run"
    train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, run, quiet=True)
    other = make_tiny_h5(tmp_path / "other.h5", seed=5)
    with pytest.raises(AmcpruneError, match="fingerprint"):
        train_run(None, None, other, run, resume=True, quiet=True)
    with pytest.raises(AmcpruneError, match="spec differs"):
        train_run(None, tiny_spec(conv_filters=8), None, run, resume=True, quiet=True)
    with pytest.raises(AmcpruneError, match="lr"):
        train_run(tiny_config(epochs=1, lr=0.5), None, None, run, resume=True, quiet=True)
    with pytest.raises(AmcpruneError, match="nothing to resume"):
        train_run(None, None, None, tmp_path / "none", resume=True, quiet=True)
    # More epochs extend a finished run.
    train_run(tiny_config(epochs=2), None, None, run, resume=True, quiet=True)
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2]


def test_init_from_checkpoint_and_wrong_arch(tiny_h5, tmp_path):
    src = tmp_path / "src"
    train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, src, quiet=True)
    ckpt = src / "checkpoints" / "last.pt"
    with pytest.raises(AmcpruneError) as err:
        train_run(tiny_config(epochs=1), tiny_spec(conv_filters=8), tiny_h5, tmp_path / "bad", quiet=True, init_from=ckpt)
    msg = str(err.value)
    assert "shape mismatch" in msg and "1.weight" in msg
    with pytest.raises(AmcpruneError) as err:
        train_run(tiny_config(epochs=1), tiny_spec(quantized=False), tiny_h5, tmp_path / "bad2", quiet=True, init_from=ckpt)
    assert "unexpected" in str(err.value) and "act_quant" in str(err.value)


def test_init_from_loads_weights(tiny_h5, tmp_path, monkeypatch):
    src = tmp_path / "src"
    train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, src, quiet=True)
    ckpt = src / "checkpoints" / "last.pt"
    seen = {}
    real = Trainer.__init__

    def spy(self, model, *a, **kw):
        seen["state"] = {k: v.clone() for k, v in model.state_dict().items()}
        real(self, model, *a, **kw)

    monkeypatch.setattr(Trainer, "__init__", spy)
    train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, tmp_path / "dst", quiet=True, init_from=ckpt)
    src_state = load_checkpoint(ckpt)["model"]
    assert all(torch.equal(seen["state"][k], src_state[k]) for k in src_state)


def test_malicious_checkpoint_is_refused(tiny_h5, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "amcprune-checkpoint/1", "model": {"x": Evil()}}, evil)
    assert not marker.exists()
    with pytest.raises(AmcpruneError, match="refused"):
        load_checkpoint(evil)
    with pytest.raises(AmcpruneError, match="refused"):
        train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, tmp_path / "run", quiet=True, init_from=evil)
    run = tmp_path / "run2"
    train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, run, quiet=True)
    evil.replace(run / "checkpoints" / "last.pt")
    with pytest.raises(AmcpruneError, match="refused"):
        train_run(tiny_config(epochs=2), None, None, run, resume=True, quiet=True)
    assert not marker.exists()


def test_zero_epochs_is_refused_before_anything_is_written(tiny_h5, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(AmcpruneError, match="epochs must be at least 1"):
        train_run(tiny_config(epochs=0), tiny_spec(), tiny_h5, run, quiet=True)
    assert not run.exists()


def test_resume_refuses_a_diverged_checkpoint(tiny_h5, tmp_path):
    run = tmp_path / "run"
    train_run(tiny_config(epochs=1), tiny_spec(), tiny_h5, run, quiet=True)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    for value in last["model"].values():
        if value.is_floating_point():
            value.fill_(float("nan"))
    torch.save(last, run / "checkpoints" / "last.pt")
    with pytest.raises(AmcpruneError, match="non-finite weights"):
        train_run(tiny_config(epochs=2), None, tiny_h5, run, resume=True, quiet=True)
